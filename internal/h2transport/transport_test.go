package h2transport_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dintero-facade/dintero-facade/internal/dinteromock"
	"github.com/dintero-facade/dintero-facade/internal/dinterotest"
	"github.com/dintero-facade/dintero-facade/internal/h2transport"
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
	tr := h2transport.New(5 * time.Second)
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

// tlsClient is a client of srv through a fresh Transport, with mod's
// options.
func tlsClient(t *testing.T, srv *httptest.Server, headerTimeout time.Duration, mod ...func(*upstream.Options)) (*upstream.Client, *h2transport.Transport) {
	t.Helper()
	tr := h2transport.New(headerTimeout)
	tr.Std.TLSClientConfig = srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	t.Cleanup(tr.CloseIdleConnections)
	opts := upstream.Options{BaseURL: srv.URL + "/v1", Transport: tr, MaxConcurrent: 1000}
	for _, m := range mod {
		m(&opts)
	}
	c, err := upstream.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return c, tr
}

// TestColdStartDialsOnce: 1,000 calls at once at a fresh client dial the
// host once while none is up, and then one connection at a time as the
// stream limits ask (before a connection's SETTINGS arrive, x/net assumes
// 100 streams): at most 10 connections, with the server's limit above or
// below the load; net/http's own pool dials about once per call.
func TestColdStartDialsOnce(t *testing.T) {
	for _, limit := range []int{0, 100} {
		t.Run(fmt.Sprintf("server limit %d", limit), func(t *testing.T) {
			// Stateless: every DELETE finds its grant.
			fake := dinterotest.New(t, dinterotest.Options{CountOnly: true, Mock: dinteromock.Options{Stateless: true}})
			var srv *httptest.Server
			var counts *connCounts
			if limit > 0 {
				srv, counts = tlsServer(t, fake, 50*time.Millisecond, true, limit)
			} else {
				srv, counts = tlsServer(t, fake, 50*time.Millisecond, true)
			}
			c, _ := tlsClient(t, srv, 10*time.Second)
			call := caller(fake)
			var wg sync.WaitGroup
			var failed atomic.Int64
			for range 1000 {
				wg.Go(func() {
					ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
					defer cancel()
					if _, _, err := c.DeleteClientGrant(ctx, call, "T123", "g"); err != nil {
						if failed.Add(1) < 5 {
							t.Log(err)
						}
					}
				})
			}
			wg.Wait()
			if failed.Load() != 0 {
				t.Errorf("%d calls failed", failed.Load())
			}
			if n := counts.accepted.Load(); n < 1 || n > 10 {
				t.Errorf("1,000 calls at once opened %d connections; want 1 to 10", n)
			}
		})
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
	// One attempt a call: the transport itself hands the request to
	// net/http's pool, not the client's next attempt.
	once := func(o *upstream.Options) { o.MaxAttempts = 1 }
	c, _ := tlsClient(t, srv, 5*time.Second, once)
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
	sc, _ := tlsClient(t, slow, 5*time.Second, once)
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
	// The host is remembered as HTTP/1.1: calls one after another reuse
	// the pool's connections and dial nothing for HTTP/2 again.
	before := counts.accepted.Load()
	for range 5 {
		if _, _, err := sc.DeleteClientGrant(context.Background(), caller(fake), "T123", "g"); err != nil {
			t.Fatal(err)
		}
	}
	if n := counts.accepted.Load() - before; n != 0 {
		t.Errorf("5 calls one after another made %d connections; want none", n)
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

// TestDefaultPortSharesPool: a URL that names the default port and one
// that leaves it out reach one host, so they share one pool and one
// connection; another host has a pool of its own.
func TestDefaultPortSharesPool(t *testing.T) {
	fake := dinterotest.New(t, dinterotest.Options{Mock: dinteromock.Options{Stateless: true}})
	srv, counts := tlsServer(t, fake, 0, true)
	tr := h2transport.New(5 * time.Second)
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

// TestHTTP1HostProbedAgain: a host that answered a handshake with
// HTTP/1.1 is sent to net/http's transport for HTTP1For only, then tried
// on HTTP/2 again: after it speaks HTTP/2 again, a cold start of 1,000
// calls (each dial taking 50 ms, as to a remote host) opens a few
// connections, as on a host never seen on HTTP/1.1. Before issue 22's
// review such a host stayed on HTTP/1.1 for the life of the process, and
// the same cold start opened 12 to 19.
func TestHTTP1HostProbedAgain(t *testing.T) {
	srv := newRawH2(t, 0, func(c *rawConn, id uint32, _, _ string) bool {
		c.headers(id, true, ":status", "204")
		return true
	})
	srv.h1Next.Store(1)
	c, tr := rawClientOn(t, srv, 5*time.Second, paths[0])
	tr.HTTP1For = 300 * time.Millisecond
	var d net.Dialer
	tr.Std.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		time.Sleep(50 * time.Millisecond)
		return d.DialContext(ctx, network, addr)
	}
	if _, _, err := c.DeleteClientGrant(context.Background(), rawCaller, "T123", "g"); err != nil || srv.h1Conns.Load() != 2 {
		t.Fatalf("the first call: %v, %d HTTP/1.1 connections; want OK over HTTP/1.1 (the dial that learned it, and net/http's)", err, srv.h1Conns.Load())
	}
	time.Sleep(400 * time.Millisecond)
	tr.CloseIdleConnections()
	if !waitFor(5*time.Second, func() bool { return srv.closed.Load() == srv.conns.Load() }) {
		t.Fatal("the connections were not closed")
	}
	before := srv.conns.Load()
	var wg sync.WaitGroup
	var failed atomic.Int64
	start := make(chan struct{})
	for range 1000 {
		wg.Go(func() {
			<-start
			if _, _, err := c.DeleteClientGrant(context.Background(), rawCaller, "T123", "g"); err != nil {
				failed.Add(1)
			}
		})
	}
	close(start)
	wg.Wait()
	if n := srv.conns.Load() - before; n > 5 || failed.Load() != 0 || srv.h2Conns.Load() == 0 {
		t.Errorf("a cold start of 1,000 calls, after HTTP1For: %d connections (%d over HTTP/2), %d calls failed; want at most 5, over HTTP/2, none", n, srv.h2Conns.Load(), failed.Load())
	}
}

// TestHTTP1HostNotDialedAgain: a call that found the host's protocol
// unknown, and reached H2 after the dial that learned HTTP/1.1 had ended
// (a window a busy machine widens), dials nothing: H2's dial answers at
// once, and the call goes to net/http's pool. A second dial cost a
// connection beyond Std's bound in a cold start.
func TestHTTP1HostNotDialedAgain(t *testing.T) {
	fake := dinterotest.New(t, dinterotest.Options{CountOnly: true, Mock: dinteromock.Options{Stateless: true}})
	srv, counts := tlsServer(t, fake, 0, false)
	c, tr := tlsClient(t, srv, 5*time.Second)
	if _, _, err := c.DeleteClientGrant(context.Background(), caller(fake), "T123", "g"); err != nil {
		t.Fatal(err)
	}
	before := counts.accepted.Load()
	req, err := http.NewRequest(http.MethodDelete, srv.URL+"/v1/accounts/T123/auth/users/g", nil)
	if err != nil {
		t.Fatal(err)
	}
	// As the late call does: straight to H2.
	//lint:ignore SA1019 the transport's own x/net Transport, as RoundTrip uses it
	if resp, err := tr.H2.RoundTrip(req); err == nil {
		resp.Body.Close()
		t.Fatal("H2 reached an HTTP/1.1 host")
	}
	if n := counts.accepted.Load() - before; n != 0 {
		t.Errorf("a late call to a host known to speak HTTP/1.1 made %d connections; want none", n)
	}
}

// TestHTTP1DialBurstBounded: at a cold start, 500 calls at once to a host
// that speaks HTTP/1.1 only open at most Std.MaxConnsPerHost connections
// (and the one that learned the protocol), and all succeed, the others
// waiting for a connection free; net/http's own pool dials once per
// waiting call.
func TestHTTP1DialBurstBounded(t *testing.T) {
	fake := dinterotest.New(t, dinterotest.Options{CountOnly: true, Mock: dinteromock.Options{Stateless: true}})
	srv, counts := tlsServer(t, fake, 50*time.Millisecond, false)
	c, tr := tlsClient(t, srv, 10*time.Second)
	if tr.Std.MaxConnsPerHost <= 0 {
		t.Fatalf("Std.MaxConnsPerHost %d; want a bound", tr.Std.MaxConnsPerHost)
	}
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range 500 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if _, _, err := c.DeleteClientGrant(ctx, caller(fake), "T123", "g"); err != nil {
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	if n := counts.accepted.Load(); n > int64(tr.Std.MaxConnsPerHost)+1 || failed.Load() != 0 {
		t.Errorf("500 calls at once to an HTTP/1.1 host: %d connections, %d failed; want at most %d, none", n, failed.Load(), tr.Std.MaxConnsPerHost+1)
	}
}
