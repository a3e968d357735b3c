package dinterotest

import (
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	neturl "net/url"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Fault handlers misbehave the ways a real network and a real Dintero do.
// Install them with HandleRaw.

// Reset closes the connection without an answer, with an RST.
func Reset(w http.ResponseWriter, _ *http.Request) {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err != nil {
		return
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

// ResetMidBody sends a 200 with a Content-Length, half the body, and then
// resets the connection.
func ResetMidBody(body []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		_, _ = buf.WriteString("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ")
		_, _ = buf.WriteString(strconv.Itoa(len(body)))
		_, _ = buf.WriteString("\r\n\r\n")
		_, _ = buf.Write(body[:len(body)/2])
		_ = buf.Flush()
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		_ = conn.Close()
	}
}

// Stall holds the request without answering until the client gives up.
func Stall(_ http.ResponseWriter, r *http.Request) {
	<-r.Context().Done()
}

// StallBody sends the headers and a first byte of the body, then nothing
// until the client gives up.
func StallBody(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte("{"))
	w.(http.Flusher).Flush()
	<-r.Context().Done()
}

// Body answers status with body as it is, with contentType.
func Body(status int, contentType string, body []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", contentType)
		w.WriteHeader(status)
		_, _ = w.Write(body)
	}
}

// Huge answers 200 with a JSON body of n bytes, streamed without holding
// it in memory.
func Huge(n int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		chunk := make([]byte, 64<<10)
		for i := range chunk {
			chunk[i] = ' '
		}
		for sent := 0; sent < n; sent += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}
}

// RateLimited answers 429 with retryAfter (omitted when empty).
func RateLimited(retryAfter func() string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		if retryAfter != nil {
			w.Header().Set("Retry-After", retryAfter())
		}
		WriteError(w, http.StatusTooManyRequests, "TOO_MANY_REQUESTS", "rate limit exceeded")
	}
}

// RedirectToSelf answers 302 to the same URL, a redirect loop for a client
// that follows redirects.
func RedirectToSelf(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Location", r.URL.String())
	w.WriteHeader(http.StatusFound)
}

// SilentServer accepts TCP connections and never reads or answers. It
// returns its base URL and a stop that closes it and its connections; it
// is closed when the test ends at the latest.
func SilentServer(t testing.TB) (url string, stop func()) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			l.Close()
			<-done
			mu.Lock()
			for _, c := range conns {
				c.Close()
			}
			mu.Unlock()
		})
	}
	t.Cleanup(stop)
	return "http://" + l.Addr().String() + "/v1", stop
}

// ServeAt makes base, a loopback base URL from SilentServer or RefusingURL
// whose listener is closed, serve the fake from now on: the fault is over.
// stop closes it; the test's end does at the latest.
func (s *Server) ServeAt(t testing.TB, base string) (stop func()) {
	t.Helper()
	u, err := neturl.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", u.Host)
	if err != nil {
		t.Fatalf("dinterotest: %s cannot be served again: %v", u.Host, err)
	}
	// A proxy to the fake, whose spec check knows the fake's own address.
	target, err := neturl.Parse(s.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{}
	proxy := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(target) }, Transport: tr}
	srv := &http.Server{Handler: proxy, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() { _ = srv.Serve(l); close(done) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			_ = srv.Close()
			<-done
			tr.CloseIdleConnections()
		})
	}
	t.Cleanup(stop)
	return stop
}

// RefusingURL returns a loopback base URL where nothing listens, so that
// connections are refused.
func RefusingURL(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr + "/v1"
}

// LoseAnswer lets next (the mock) act on the request, then resets the
// connection instead of answering: Dintero did the work and the answer was
// lost on the way.
func LoseAnswer(next http.Handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(httptest.NewRecorder(), r)
		Reset(w, r)
	}
}

// ActThen lets next (the mock) act on the request, then answers with fault
// instead: a proxy in front of Dintero that lost the answer (a 502, a 504)
// after Dintero did the work.
func ActThen(next http.Handler, fault http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(httptest.NewRecorder(), r)
		fault(w, r)
	}
}

// Times answers the first n requests with fault, and lets next answer the
// rest.
func Times(n int, fault http.HandlerFunc, next http.Handler) http.HandlerFunc {
	var mu sync.Mutex
	seen := 0
	return func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen++
		mine := seen
		mu.Unlock()
		if mine <= n {
			fault(w, r)
			return
		}
		next.ServeHTTP(w, r)
	}
}

// Status answers status with Dintero's error body.
func Status(status int) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		WriteError(w, status, "", http.StatusText(status))
	}
}
