package upstream_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/dintero-facade/dintero-facade/internal/dinteromock"
	"github.com/dintero-facade/dintero-facade/internal/dinterotest"
	"github.com/dintero-facade/dintero-facade/upstream"
)

func TestHTTP2ToHTTPS(t *testing.T) {
	fake := dinterotest.New(t)
	fake.AddGrants("T123", "g")
	var proto atomic.Value
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proto.Store(r.Proto)
		fake.Mock.ServeHTTP(w, r)
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	tr := upstream.NewTransport(5 * time.Second)
	defer tr.CloseIdleConnections()
	tr.Std.TLSClientConfig = srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	c, err := upstream.New(upstream.Options{BaseURL: srv.URL + "/v1", Transport: tr})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.DeleteClientGrant(context.Background(), caller(fake), "T123", "g"); err != nil {
		t.Fatal(err)
	}
	if got := proto.Load(); got != "HTTP/2.0" {
		t.Errorf("got %v; want HTTP/2.0", got)
	}
}

// TestTracingTransportClosesIdleConnections: the query-hiding wrapping of
// the tracing transport passes CloseIdleConnections on, so that a stopping
// facade closes its connections to Dintero with tracing on too.
func TestTracingTransportClosesIdleConnections(t *testing.T) {
	closed := &closeCounter{}
	rt := upstream.TracingTransport(closed, nil, nil)
	c, ok := rt.(interface{ CloseIdleConnections() })
	if !ok {
		t.Fatal("the tracing transport has no CloseIdleConnections")
	}
	c.CloseIdleConnections()
	if closed.n.Load() != 1 {
		t.Errorf("the transport underneath was told %d times; want 1", closed.n.Load())
	}
}

type closeCounter struct{ n atomic.Int32 }

func (c *closeCounter) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, errors.New("not used")
}
func (c *closeCounter) CloseIdleConnections() { c.n.Add(1) }

// tlsServer is a TLS server of the mock that counts the connections it
// accepts and adds latency to every answer; h2 says whether it offers
// HTTP/2.
// connCounts are the connections a test server accepted and closed.
type connCounts struct{ accepted, closed atomic.Int64 }

func tlsServer(t *testing.T, fake *dinterotest.Server, latency time.Duration, h2 bool, maxStreams ...int) (*httptest.Server, *connCounts) {
	t.Helper()
	counts := &connCounts{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(latency):
		case <-r.Context().Done():
			return
		}
		fake.Mock.ServeHTTP(w, r)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			counts.accepted.Add(1)
		case http.StateClosed:
			counts.closed.Add(1)
		}
	}
	srv.EnableHTTP2 = h2
	if len(maxStreams) > 0 {
		srv.Config.HTTP2 = &http.HTTP2Config{MaxConcurrentStreams: maxStreams[0]}
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, counts
}

// tlsClient is a client of srv through a fresh Transport.
func tlsClient(t *testing.T, srv *httptest.Server, headerTimeout time.Duration) (*upstream.Client, *upstream.Transport) {
	t.Helper()
	tr := upstream.NewTransport(headerTimeout)
	tr.Std.TLSClientConfig = srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	t.Cleanup(tr.CloseIdleConnections)
	c, err := upstream.New(upstream.Options{BaseURL: srv.URL + "/v1", Transport: tr, MaxConcurrent: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return c, tr
}

// TestColdStartDialsOnce: 300 calls at once at a fresh client open one
// connection while the protocol is unknown, and then only as the server's
// stream limit asks (net/http's own pool opens about one per call).
func TestColdStartDialsOnce(t *testing.T) {
	// Stateless: every DELETE finds its grant.
	fake := dinterotest.New(t, dinterotest.Options{Mock: dinteromock.Options{Stateless: true}})
	srv, accepted := tlsServer(t, fake, 50*time.Millisecond, true)
	c, _ := tlsClient(t, srv, 5*time.Second)
	call := caller(fake)
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range 300 {
		wg.Go(func() {
			if _, _, err := c.DeleteClientGrant(context.Background(), call, "T123", "g"); err != nil {
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	if failed.Load() != 0 {
		t.Errorf("%d calls failed", failed.Load())
	}
	// The server allows 250 streams per connection; the client assumes
	// 100 until the server's settings arrive.
	if n := accepted.accepted.Load(); n < 1 || n > 4 {
		t.Errorf("300 calls at once opened %d connections; want 1 to 4", n)
	}
}

// TestHTTP1Host: a host that answers with HTTP/1.1 is served through
// net/http's own pool, after the one dial that learned it: concurrent
// calls each get a connection at once, as HTTP/1.1 needs.
func TestHTTP1Host(t *testing.T) {
	fake := dinterotest.New(t)
	fake.AddGrants("T123", "g1", "g2")
	var proto atomic.Value
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proto.Store(r.Proto)
		fake.Mock.ServeHTTP(w, r)
	}))
	srv.StartTLS()
	t.Cleanup(srv.Close)
	c, _ := tlsClient(t, srv, 5*time.Second)
	for _, id := range []string{"g1", "g2"} {
		if _, _, err := c.DeleteClientGrant(context.Background(), caller(fake), "T123", id); err != nil {
			t.Fatal(err)
		}
	}
	if got := proto.Load(); got != "HTTP/1.1" {
		t.Errorf("got %v; want HTTP/1.1", got)
	}
	// 20 calls at once to a host that takes 200 ms: in parallel, not one
	// connection after another.
	slow, counts := tlsServer(t, dinterotest.New(t, dinterotest.Options{Mock: dinteromock.Options{Stateless: true}}), 200*time.Millisecond, false)
	sc, _ := tlsClient(t, slow, 5*time.Second)
	if _, _, err := sc.DeleteClientGrant(context.Background(), caller(fake), "T123", "g"); err != nil {
		t.Fatal(err)
	}
	// The dial that learned the protocol is closed; net/http's pool dials
	// its own.
	if n := counts.accepted.Load(); n != 2 {
		t.Errorf("the first call to an HTTP/1.1 host made %d connections; want 2", n)
	}
	start := time.Now()
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() { _, _, _ = sc.DeleteClientGrant(context.Background(), caller(fake), "T123", "g") })
	}
	wg.Wait()
	if took := time.Since(start); took > 1500*time.Millisecond {
		t.Errorf("20 calls at once took %v; want about 200 ms", took)
	}
}

// TestDeadConnectionReplaced: a connection the server closed leaves the
// pool, and the next call dials a new one.
func TestDeadConnectionReplaced(t *testing.T) {
	fake := dinterotest.New(t, dinterotest.Options{Mock: dinteromock.Options{Stateless: true}})
	srv, accepted := tlsServer(t, fake, 0, true)
	c, _ := tlsClient(t, srv, 5*time.Second)
	for i := range 2 {
		if _, _, err := c.DeleteClientGrant(context.Background(), caller(fake), "T123", "g"); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		srv.CloseClientConnections()
		time.Sleep(50 * time.Millisecond)
	}
	if n := accepted.accepted.Load(); n != 2 {
		t.Errorf("got %d connections; want 2, one per call", n)
	}
}

// TestCloseIdleConnections closes the pool's idle connections while the
// server is up.
func TestCloseIdleConnections(t *testing.T) {
	fake := dinterotest.New(t, dinterotest.Options{Mock: dinteromock.Options{Stateless: true}})
	srv, counts := tlsServer(t, fake, 0, true)
	closed := &counts.closed
	c, tr := tlsClient(t, srv, 5*time.Second)
	if _, _, err := c.DeleteClientGrant(context.Background(), caller(fake), "T123", "g"); err != nil {
		t.Fatal(err)
	}
	tr.CloseIdleConnections()
	deadline := time.Now().Add(2 * time.Second)
	for closed.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if closed.Load() != 1 {
		t.Error("the idle connection was not closed")
	}
}

// TestHTTP2HeaderTimeout: over HTTP/2 too, Dintero's silence after the
// request is cut at the header timeout, as a timeout of Dintero's.
func TestHTTP2HeaderTimeout(t *testing.T) {
	fake := dinterotest.New(t)
	fake.AddGrants("T123", "g")
	srv, _ := tlsServer(t, fake, 2*time.Second, true)
	c, _ := tlsClient(t, srv, 200*time.Millisecond)
	start := time.Now()
	_, meta, err := c.DeleteClientGrant(context.Background(), caller(fake), "T123", "g")
	if !errors.Is(err, upstream.ErrTransport) || time.Since(start) > 1500*time.Millisecond {
		t.Errorf("got %v after %v; want a transport error at about 3 × 200 ms", err, time.Since(start))
	}
	if len(meta.Uncertain) == 0 || meta.Uncertain[0] != "no answer: timeout" {
		t.Errorf("got uncertain attempts %q; want timeouts", meta.Uncertain)
	}
}

// TestWarmDials: Warm opens the connection the first call then uses.
func TestWarmDials(t *testing.T) {
	fake := dinterotest.New(t)
	fake.AddGrants("T123", "g")
	srv, accepted := tlsServer(t, fake, 0, true)
	c, tr := tlsClient(t, srv, 5*time.Second)
	if err := tr.Warm(context.Background(), srv.URL+"/v1"); err != nil {
		t.Fatal(err)
	}
	if n := accepted.accepted.Load(); n != 1 {
		t.Fatalf("Warm opened %d connections; want 1", n)
	}
	if _, _, err := c.DeleteClientGrant(context.Background(), caller(fake), "T123", "g"); err != nil {
		t.Fatal(err)
	}
	if n := accepted.accepted.Load(); n != 1 {
		t.Errorf("the first call opened another connection: %d", n)
	}
}

// TestFewStreamsPerConnection: a server that allows one stream per
// connection (fewer than the 100 a client assumes before its settings
// arrive) gets every call through, on a few connections.
func TestFewStreamsPerConnection(t *testing.T) {
	fake := dinterotest.New(t, dinterotest.Options{Mock: dinteromock.Options{Stateless: true}})
	srv, accepted := tlsServer(t, fake, 20*time.Millisecond, true, 1)
	c, _ := tlsClient(t, srv, 5*time.Second)
	call := caller(fake)
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range 50 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if _, _, err := c.DeleteClientGrant(ctx, call, "T123", "g"); err != nil {
				failed.Add(1)
				t.Log(err)
			}
		})
	}
	wg.Wait()
	if n := failed.Load(); n != 0 {
		t.Errorf("%d of 50 calls failed", n)
	}
	if n := accepted.accepted.Load(); n > 50 {
		t.Errorf("%d connections for 50 calls", n)
	}
}

// goawayServer serves the mock over TLS and HTTP/2, except that its first
// connection answers the first request with a graceful GOAWAY that says no
// stream was processed.
func goawayServer(t *testing.T, fake *dinterotest.Server) (url string, served *atomic.Int64) {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	srv.Close() // only its certificate is used
	cfg := &tls.Config{Certificates: srv.TLS.Certificates, NextProtos: []string{"h2"}}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served = &atomic.Int64{}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		fake.Mock.ServeHTTP(w, r)
	})
	// Connections after the first go to a net/http server.
	later := &chanListener{conns: make(chan net.Conn), done: make(chan struct{}), addr: l.Addr()}
	hs := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second}
	var conns atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() { _ = hs.Serve(later) })
	t.Cleanup(func() { l.Close(); hs.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			first := conns.Add(1) == 1
			wg.Go(func() {
				tc := tls.Server(c, cfg)
				if tc.Handshake() != nil {
					tc.Close()
					return
				}
				if !first {
					select {
					case later.conns <- tc:
					case <-later.done:
						tc.Close()
					}
					return
				}
				defer tc.Close()
				br := bufio.NewReader(tc)
				if _, err := io.ReadFull(br, make([]byte, len(http2.ClientPreface))); err != nil {
					return
				}
				fr := http2.NewFramer(tc, br)
				_ = fr.WriteSettings()
				for {
					f, err := fr.ReadFrame()
					if err != nil {
						return
					}
					switch f := f.(type) {
					case *http2.SettingsFrame:
						if !f.IsAck() {
							_ = fr.WriteSettingsAck()
						}
					case *http2.HeadersFrame:
						_ = fr.WriteGoAway(0, http2.ErrCodeNo, nil)
						time.Sleep(50 * time.Millisecond)
						return
					}
				}
			})
		}
	})
	return "https://" + l.Addr().String(), served
}

// TestUnprocessedSentAgain: a request the server provably did not process
// (a graceful GOAWAY below its stream) is sent again on a new connection,
// authorize's POST too, and reaches Dintero once.
func TestUnprocessedSentAgain(t *testing.T) {
	fake := dinterotest.New(t)
	fake.AddCode(allParams.OID, allParams.VerificationCode)
	base, served := goawayServer(t, fake)
	tr := upstream.NewTransport(5 * time.Second)
	tr.Std.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
	t.Cleanup(tr.CloseIdleConnections)
	// Straight through the transport: a POST with a body meets the GOAWAY
	// and is sent again, once, on a new connection.
	body := `{"grant_type":"client_credentials","audience":"` + dinteromock.Audience("T123") + `"}`
	req, err := http.NewRequest(http.MethodPost, base+"/v1/accounts/T123/auth/token", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(dinterotest.ClientID, dinterotest.ClientSecret)
	req.Header.Set("Content-Type", "application/json")
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("a POST after a graceful GOAWAY: %v; want it sent again", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || served.Load() != 1 {
		t.Fatalf("got HTTP %d, %d served; want 200, once", resp.StatusCode, served.Load())
	}
	served.Store(0)
	c, err := upstream.New(upstream.Options{BaseURL: base + "/v1", Transport: tr})
	if err != nil {
		t.Fatal(err)
	}
	rd, meta, err := c.Authorize(context.Background(), callerAt(fake, allParams.OID), allParams)
	if err != nil || rd.Identity.Result != upstream.Verified {
		t.Fatalf("got %v, %+v; want the code redeemed after the GOAWAY", err, rd)
	}
	if n := served.Load(); n != 2 || meta.Attempts != 1 {
		t.Errorf("Dintero served %d requests, authorize took %d attempts; want 2 and 1", n, meta.Attempts)
	}
}

// chanListener is a net.Listener of the connections sent on conns.
type chanListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
	addr  net.Addr
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }

// TestDefaultPortSharesPool: a URL that names the default port and one
// that leaves it out reach one host, so they share one pool and one
// connection; another host has a pool of its own.
func TestDefaultPortSharesPool(t *testing.T) {
	fake := dinterotest.New(t, dinterotest.Options{Mock: dinteromock.Options{Stateless: true}})
	srv, counts := tlsServer(t, fake, 0, true)
	tr := upstream.NewTransport(5 * time.Second)
	tr.Std.TLSClientConfig = srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	tr.Std.TLSClientConfig.ServerName = "example.com" // httptest's certificate
	var dialed []string
	tr.Std.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		dialed = append(dialed, addr)
		return (&net.Dialer{}).DialContext(ctx, network, srv.Listener.Addr().String())
	}
	t.Cleanup(tr.CloseIdleConnections)
	for _, u := range []string{"https://dintero.test/v1/", "https://dintero.test:443/v1/", "https://dintero.test/v1/", "https://other.test/v1/", "https://dintero.test/v1/"} {
		req, err := http.NewRequest(http.MethodGet, u, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatalf("%s: %v", u, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if n := counts.accepted.Load(); n != 2 || !slices.Equal(dialed, []string{"dintero.test:443", "other.test:443"}) {
		t.Errorf("four calls to one host, spelled two ways, and one to another opened %d connections, dialing %q; want 2, to dintero.test:443 and other.test:443", n, dialed)
	}
}
