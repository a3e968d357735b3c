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

// FastDintero is a handler that answers like Dintero on a good day without
// checking anything: the grant for DELETE, a 302 for authorize and a token
// for the token endpoint. It is for benchmarks; tests use Server.
func FastDintero() http.Handler {
	grant := GrantJSON("3d5c2f3a-6a1e-4e55-9d2f-2f1b8f0c9a77")
	mux := http.NewServeMux()
	mux.HandleFunc("DELETE /v1/accounts/{oid}/auth/client-grants/{id}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Request-Id", RequestID)
		_, _ = w.Write(grant)
	})
	mux.HandleFunc("POST /v1/accounts/{oid}/auth/authorize", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", "https://app.example.com/cb?id_token="+IDToken+"&state=s")
		w.WriteHeader(http.StatusFound)
	})
	mux.HandleFunc("POST /v1/accounts/{oid}/auth/token", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"access_token":"` + AccessToken(1) + `","token_type":"Bearer","expires_in":3600}`))
	})
	return mux
}
