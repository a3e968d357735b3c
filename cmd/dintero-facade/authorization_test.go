package main

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/dintero-facade/dintero-facade/internal/dinteromock"
	"github.com/dintero-facade/dintero-facade/internal/dinterotest"
)

// TestGatewayBadAuthorization: through the JSON gateway too, an
// authorization that is blank (an unset $TOKEN) or not "Bearer <token>"
// is refused 401 BAD_AUTHORIZATION before anything reaches Dintero, with
// the facade's credentials at hand all the same; Authorize says its code
// was not sent.
func TestGatewayBadAuthorization(t *testing.T) {
	fake := dinterotest.New(t)
	fake.AddCode("T123", "v1")
	fake.AddGrants("T123", "g")
	f := startFacade(t, fake.URL, []string{"--warm-timeout", "0"}, map[string]string{"DINTERO_CLIENT_ID": dinterotest.ClientID, "DINTERO_CLIENT_SECRET": dinterotest.ClientSecret, "DINTERO_ACCOUNT_ID": "T123"})
	q := url.Values{"audience": {dinteromock.Audience("T123")}, "response_type": {"authenticate"}, "client_id": {dinterotest.App}, "verification_code": {"v1"}}
	for _, auth := range []string{"Bearer ", "Bearer", "Basic dXNlcjpwdw==", "Bearer a b"} {
		for _, call := range []struct{ method, path string }{
			{http.MethodPost, "/v1/accounts/T123/auth/authorize?" + q.Encode()},
			{http.MethodDelete, "/v1/accounts/T123/auth/client-grants/g"},
		} {
			code, _, body := f.do(t, call.method, call.path, map[string]string{"Authorization": auth})
			if code != http.StatusUnauthorized || !strings.Contains(string(body), "BAD_AUTHORIZATION") {
				t.Errorf("%s with %q: got %d %s; want 401 BAD_AUTHORIZATION", call.method, auth, code, body)
			}
			if call.method == http.MethodPost && !strings.Contains(string(body), `"verificationCodeSent":"false"`) {
				t.Errorf("authorize with %q: %s; want verification_code_sent false", auth, body)
			}
		}
	}
	if n := len(fake.Requests()); n != 0 {
		t.Errorf("%d requests reached Dintero; want none", n)
	}
}
