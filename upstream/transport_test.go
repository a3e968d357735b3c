package upstream_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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
func tlsServer(t *testing.T, fake *dinterotest.Server, latency time.Duration, h2 bool) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var accepted atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(latency):
		case <-r.Context().Done():
			return
		}
		fake.Mock.ServeHTTP(w, r)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			accepted.Add(1)
		}
	}
	srv.EnableHTTP2 = h2
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, &accepted
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
	if n := accepted.Load(); n < 1 || n > 4 {
		t.Errorf("300 calls at once opened %d connections; want 1 to 4", n)
	}
}

// TestHTTP1Host: a host that answers with HTTP/1.1 is served through
// net/http's own pool, after the one dial that learned it.
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
	if n := accepted.Load(); n != 1 {
		t.Fatalf("Warm opened %d connections; want 1", n)
	}
	if _, _, err := c.DeleteClientGrant(context.Background(), caller(fake), "T123", "g"); err != nil {
		t.Fatal(err)
	}
	if n := accepted.Load(); n != 1 {
		t.Errorf("the first call opened another connection: %d", n)
	}
}
