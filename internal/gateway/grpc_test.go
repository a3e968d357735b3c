package gateway_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/dintero-facade/dintero-facade/internal/gateway"
)

// TestRefuseGRPC: a request of any gRPC content type (gRPC-Web's, over
// HTTP/1.1, among them) gets a trailers-only FailedPrecondition whose message
// is percent-encoded as PROTOCOL-HTTP2 says; any other request passes.
func TestRefuseGRPC(t *testing.T) {
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	h := gateway.RefuseGRPC(next, func() string { return "gRPC is 100% on :9090 – here" })
	for _, tc := range []struct {
		contentType, wantType string
	}{
		{"application/grpc", "application/grpc"},
		{"application/grpc+proto", "application/grpc+proto"},
		{"Application/gRPC-Web+proto; charset=x", "application/grpc-web+proto"},
		{"application/grpc-web-text", "application/grpc-web-text"},
	} {
		r := httptest.NewRequest(http.MethodPost, "/dintero.auth.v1.AuthService/Authorize", nil)
		r.Header.Set("Content-Type", tc.contentType)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		got := w.Result()
		if got.StatusCode != http.StatusOK || got.Header.Get("Content-Type") != tc.wantType || got.Header.Get("Grpc-Status") != "9" ||
			got.Header.Get("Grpc-Message") != "gRPC is 100%25 on :9090 %E2%80%93 here" || w.Body.Len() != 0 {
			t.Errorf("%s: got %d %v %q; want 200, %s, grpc-status 9, the message percent-encoded, no body", tc.contentType, got.StatusCode, got.Header, w.Body, tc.wantType)
		}
	}
	for _, ct := range []string{"", "application/json", "text/plain", "not a media type/;"} {
		r := httptest.NewRequest(http.MethodPost, "/v1/accounts/T123/auth/authorize:redeem", nil)
		if ct != "" {
			r.Header.Set("Content-Type", ct)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusTeapot || w.Header().Get("Grpc-Status") != "" {
			t.Errorf("Content-Type %q: got %d %v; want it passed on", ct, w.Code, w.Header())
		}
	}
}
