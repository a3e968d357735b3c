package h2transport_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/dintero-facade/dintero-facade/internal/h2transport"
)

// BenchmarkTransportHTTP2 is one request through the transport to an
// HTTP/2 server on loopback over TLS, on a connection already up: its
// allocations are the client's and the server's together, so compare
// runs, not figures.
func BenchmarkTransportHTTP2(b *testing.B) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	tr := h2transport.New(5 * time.Second)
	tr.Std.TLSClientConfig = srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	defer tr.CloseIdleConnections()
	req, err := http.NewRequest(http.MethodDelete, srv.URL+"/v1/accounts/T123/auth/client-grants/g", nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		resp, err := tr.RoundTrip(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}
