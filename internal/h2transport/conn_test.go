// These tests set the fields of x/net/http2's Transport, deprecated in
// favour of net/http's; see transport.go.
//lint:file-ignore SA1019 the facade uses x/net/http2's Transport on purpose

package h2transport_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dintero-facade/dintero-facade/internal/dinteromock"
	"github.com/dintero-facade/dintero-facade/internal/dinterotest"
	"github.com/dintero-facade/dintero-facade/internal/h2transport"
	"github.com/dintero-facade/dintero-facade/upstream"
)

// TestNoHeadOfLineBlocking: a call Dintero holds delays no other call the
// server's stream limit allows, on a fresh connection, after the idle
// connections were closed, and after the idle timeout closed them: one
// held call, then 20 calls with a deadline of 1 s, all answered.
func TestNoHeadOfLineBlocking(t *testing.T) {
	for _, tc := range []struct {
		name string
		// before readies the client; it returns whether the connection
		// in use was closed.
		before func(c *upstream.Client, tr *h2transport.Transport, counts *connCounts) bool
	}{
		{"a fresh connection", func(*upstream.Client, *h2transport.Transport, *connCounts) bool { return true }},
		{"after CloseIdleConnections", func(c *upstream.Client, tr *h2transport.Transport, counts *connCounts) bool {
			tr.CloseIdleConnections()
			return waitFor(5*time.Second, func() bool { return counts.closed.Load() == 1 })
		}},
		{"after the idle timeout", func(c *upstream.Client, tr *h2transport.Transport, counts *connCounts) bool {
			return waitFor(5*time.Second, func() bool { return counts.closed.Load() == 1 })
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := dinterotest.New(t, dinterotest.Options{Mock: dinteromock.Options{Stateless: true}})
			release, arrived := make(chan struct{}), make(chan struct{})
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if strings.HasSuffix(r.URL.Path, "/held") {
					close(arrived)
					select {
					case <-release:
					case <-r.Context().Done():
					}
				}
				fake.Mock.ServeHTTP(w, r)
			}))
			counts := &connCounts{}
			srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
				switch s {
				case http.StateNew:
					counts.accepted.Add(1)
				case http.StateClosed:
					counts.closed.Add(1)
				}
			}
			srv.EnableHTTP2 = true
			srv.StartTLS()
			t.Cleanup(srv.Close)
			c, tr := tlsClient(t, srv, 5*time.Second)
			tr.H2.IdleConnTimeout = 300 * time.Millisecond
			call := caller(fake)
			if tc.name != "a fresh connection" {
				if _, _, err := c.DeleteClientGrant(context.Background(), call, "T123", "g"); err != nil {
					t.Fatal(err)
				}
			}
			if !tc.before(c, tr, counts) {
				t.Fatal("the connection was not closed")
			}
			held := make(chan error, 1)
			go func() {
				_, _, err := c.DeleteClientGrant(context.Background(), call, "T123", "held")
				held <- err
			}()
			// The held call is the connection's first.
			select {
			case <-arrived:
			case <-time.After(10 * time.Second):
				t.Fatal("the held call did not arrive")
			}
			var wg sync.WaitGroup
			var failed atomic.Int64
			for range 20 {
				wg.Go(func() {
					ctx, cancel := context.WithTimeout(context.Background(), time.Second)
					defer cancel()
					if _, _, err := c.DeleteClientGrant(ctx, call, "T123", "g"); err != nil {
						failed.Add(1)
						t.Log(err)
					}
				})
			}
			wg.Wait()
			close(release)
			if err := <-held; err != nil {
				t.Errorf("the held call: %v", err)
			}
			if n := failed.Load(); n != 0 {
				t.Errorf("%d of 20 calls behind a held one failed; want none", n)
			}
		})
	}
}

// TestHealthPings: a connection silent for ReadIdleTimeout is pinged, and
// closed when the ping goes unanswered; the next call dials a new one. The
// default transport pings.
func TestHealthPings(t *testing.T) {
	if d := h2transport.New(time.Second).H2; d.ReadIdleTimeout <= 0 || d.PingTimeout <= 0 {
		t.Errorf("the default transport: ReadIdleTimeout %v, PingTimeout %v; want health pings", d.ReadIdleTimeout, d.PingTimeout)
	}
	srv := newRawH2(t, 0, func(c *rawConn, id uint32, _, _ string) bool {
		c.headers(id, true, ":status", "204")
		return true
	})
	srv.noPingAck.Store(true)
	c, tr := rawClient(t, srv, 5*time.Second)
	tr.H2.ReadIdleTimeout, tr.H2.PingTimeout = 200*time.Millisecond, 200*time.Millisecond
	if _, _, err := c.DeleteClientGrant(context.Background(), rawCaller, "T123", "g"); err != nil {
		t.Fatal(err)
	}
	if !waitFor(5*time.Second, func() bool { return srv.closed.Load() == 1 }) || srv.pings.Load() == 0 {
		t.Fatalf("after an unanswered ping: %d pings, %d connections closed; want the connection closed", srv.pings.Load(), srv.closed.Load())
	}
	srv.noPingAck.Store(false)
	if _, _, err := c.DeleteClientGrant(context.Background(), rawCaller, "T123", "g"); err != nil || srv.conns.Load() != 2 {
		t.Errorf("the next call: %v, %d connections; want a new one", err, srv.conns.Load())
	}
}

// TestDialTimeouts: a dial that does not connect, and a server that never
// finishes the TLS handshake, fail at their own bounds, not at the
// caller's deadline; neither call was sent.
func TestDialTimeouts(t *testing.T) {
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		silent.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	for _, tc := range []struct {
		name string
		set  func(tr *h2transport.Transport)
	}{
		{"the dial", func(tr *h2transport.Transport) {
			tr.DialTimeout = 300 * time.Millisecond
			tr.Std.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
				<-ctx.Done()
				return nil, ctx.Err()
			}
		}},
		{"the TLS handshake", func(tr *h2transport.Transport) { tr.Std.TLSHandshakeTimeout = 300 * time.Millisecond }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := h2transport.New(5 * time.Second)
			tc.set(tr)
			c, err := upstream.New(upstream.Options{BaseURL: "https://" + silent.Addr().String() + "/v1", Transport: tr, MaxAttempts: 1})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			start := time.Now()
			_, meta, err := c.DeleteClientGrant(ctx, rawCaller, "T123", "g")
			if took := time.Since(start); err == nil || took > 2500*time.Millisecond || meta.Sent {
				t.Errorf("got %v after %v, sent %v; want an error at about 300 ms, not sent", err, took, meta.Sent)
			}
		})
	}
}
