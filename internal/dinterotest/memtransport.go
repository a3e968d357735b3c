package dinterotest

import (
	"net/http"
	"net/http/httptest"
)

// MemTransport is an http.RoundTripper that serves each request with a
// handler in memory: no sockets, so benchmarks measure the client's own
// cost per call.
type MemTransport struct{ Handler http.Handler }

// RoundTrip serves r with the handler.
func (m MemTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	m.Handler.ServeHTTP(rec, r)
	res := rec.Result()
	res.Request = r
	return res, nil
}
