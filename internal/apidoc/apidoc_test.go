package apidoc_test

import (
	"strings"
	"testing"

	"github.com/dintero-facade/dintero-facade/gen/openapiv2"
	"github.com/dintero-facade/dintero-facade/internal/apidoc"
)

// TestV3: the generated document converts and validates, its token an
// http bearer scheme; a document that declares no bearer token, one that
// does not validate, and one that is not JSON are refused, saying why.
func TestV3(t *testing.T) {
	doc, err := apidoc.V3(openapiv2.JSON)
	if err != nil {
		t.Fatal(err)
	}
	if s := doc.Components.SecuritySchemes["bearer"].Value; s.Type != "http" || s.Scheme != "bearer" || s.Description == "" {
		t.Errorf("got %+v; want the http bearer scheme with its description", s)
	}
	const noToken = `{"swagger":"2.0","info":{"title":"t","version":"1"},"paths":{}}`
	const undeclaredParam = `{"swagger":"2.0","info":{"title":"t","version":"1"},"securityDefinitions":{"bearer":{"type":"apiKey","in":"header","name":"Authorization"}},
		"paths":{"/x/{id}":{"get":{"responses":{"200":{"description":"d"}}}}}}`
	for _, tc := range []struct{ doc, want string }{
		{noToken, `declares no "bearer" apiKey`},
		{undeclaredParam, "not valid"},
		{"{", "reading the OpenAPI 2 document"},
	} {
		if _, err := apidoc.V3([]byte(tc.doc)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("got %v; want an error saying %q", err, tc.want)
		}
	}
}
