package dinterotest

import (
	"net/http"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

// TestCheckSpec: an operation is Dintero's only at the method and path
// the spec gives its operationId.
func TestCheckSpec(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromData(spec)
	if err != nil {
		t.Fatal(err)
	}
	const id, path = "aid_auths_keys_get", "/accounts/{oid}/auth/keys"
	for _, tc := range []struct {
		name, id, method, path string
		ok                     bool
	}{
		{"as the spec has it", id, http.MethodGet, path, true},
		{"another method", id, http.MethodPost, path, false},
		{"another path", id, http.MethodGet, "/accounts/{oid}/auth/jwks", false},
		{"an operationId the spec has not", "aid_auths_keys_list", http.MethodGet, path, false},
	} {
		if err := checkSpec(doc, tc.id, tc.method, tc.path); (err == nil) != tc.ok {
			t.Errorf("%s: got %v; want ok %v", tc.name, err, tc.ok)
		}
	}
}
