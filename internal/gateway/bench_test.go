package gateway_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/dintero-facade/dintero-facade/internal/dinterotest"
	"github.com/dintero-facade/dintero-facade/service"
	"github.com/dintero-facade/dintero-facade/upstream"
)

const grantJSON = `{"id":"3d5c2f3a-6a1e-4e55-9d2f-2f1b8f0c9a77","client_id":"c","audience":"https://api.dintero.com/v1/accounts/T12345678","scope":["admin:accounts"],"type":"client_credentials","created_at":"2024-01-01T00:00:00Z","updated_at":"2024-01-01T00:00:00Z","deleted_at":"2024-01-02T00:00:00Z","created_by":"x","deleted_by":"y"}`

// BenchmarkGateway is the cost of a DeleteClientGrant through the
// gateway, in process, the service's included (interceptor, log line at
// info level to io.Discard, the upstream client against a stub in
// memory); service's BenchmarkDeleteClientGrant is a call without it.
func BenchmarkGateway(b *testing.B) {
	stub := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, grantJSON)
	})
	up, err := upstream.New(upstream.Options{BaseURL: "https://api.dintero.com/v1", Transport: dinterotest.MemTransport{Handler: stub}})
	if err != nil {
		b.Fatal(err)
	}
	h := handler(b, service.New(up, service.Options{}), slog.New(slog.NewJSONHandler(io.Discard, nil)))
	req := httptest.NewRequest(http.MethodDelete, "/v1/accounts/T12345678/auth/client-grants/3d5c2f3a-6a1e-4e55-9d2f-2f1b8f0c9a77", nil)
	req.Header.Set("Authorization", "Bearer tok")
	req.Header.Set("User-Agent", "bench")
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatalf("got %d %s", w.Code, w.Body)
		}
	}
}
