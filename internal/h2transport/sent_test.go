package h2transport_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/dintero-facade/dintero-facade/internal/dinteromock"
	"github.com/dintero-facade/dintero-facade/internal/dinterotest"
	"github.com/dintero-facade/dintero-facade/internal/h2transport"
	"github.com/dintero-facade/dintero-facade/upstream"
)

// TestProcessedNeverSentAgain: once authorize's POST was written, no way
// a connection can fail sends it again, neither inside the transport nor
// by the client's attempts; the call says the code was sent. Whether the
// server processed it is read from HTTP/2's types, never from a text: a
// header name that spells "; REFUSED_STREAM" is a protocol error like any
// other. The table runs on every path the transport can take: x/net's
// HTTP/2, and net/http's transport for a proxied host and for a host that
// answered with HTTP/1.1, which must never speak HTTP/2 (net/http's
// bundled HTTP/2 sends a bodiless request reset with PROTOCOL_ERROR
// again, golang/go#47635; over HTTP/1.1 each row fails the connection).
// A toolchain whose x/net wraps net/http's HTTP/2 would fail it too.
func TestProcessedNeverSentAgain(t *testing.T) {
	for _, p := range paths {
		t.Run(p.name, func(t *testing.T) { processedNeverSentAgain(t, p) })
	}
}

func processedNeverSentAgain(t *testing.T, p path) {
	for _, tc := range []struct {
		name   string
		answer rawHandler
		// ok: the answer came all the same (its headers did)
		ok bool
	}{
		{"RST_STREAM INTERNAL_ERROR", func(c *rawConn, id uint32, _, _ string) bool { c.reset(id, http2.ErrCodeInternal); return true }, false},
		{"RST_STREAM CANCEL", func(c *rawConn, id uint32, _, _ string) bool { c.reset(id, http2.ErrCodeCancel); return true }, false},
		{"RST_STREAM PROTOCOL_ERROR", func(c *rawConn, id uint32, _, _ string) bool { c.reset(id, http2.ErrCodeProtocol); return true }, false},
		{"RST_STREAM NO_ERROR", func(c *rawConn, id uint32, _, _ string) bool { c.reset(id, http2.ErrCodeNo); return true }, false},
		{"RST_STREAM ENHANCE_YOUR_CALM", func(c *rawConn, id uint32, _, _ string) bool { c.reset(id, http2.ErrCodeEnhanceYourCalm); return true }, false},
		{"GOAWAY naming the stream, then the connection closed", func(c *rawConn, id uint32, _, _ string) bool {
			c.goAway(id, http2.ErrCodeNo)
			return false
		}, false},
		{"GOAWAY above the stream with an error, then closed", func(c *rawConn, id uint32, _, _ string) bool {
			c.goAway(id+2, http2.ErrCodeInternal)
			return false
		}, false},
		{"the connection closed before the answer", func(*rawConn, uint32, string, string) bool { return false }, false},
		{"a header name spelling REFUSED_STREAM", func(c *rawConn, id uint32, _, _ string) bool {
			c.headers(id, true, ":status", "302", "x; REFUSED_STREAM", "1")
			return true
		}, false},
		{"the connection closed mid-answer", func(c *rawConn, id uint32, _, _ string) bool {
			c.headers(id, false, ":status", "302", "location", "https://app.example.com/cb?access_token=A1", "content-length", "100")
			c.data(id, false, []byte("{"))
			return false
		}, true},
		{"no answer: the header timeout after the write", func(*rawConn, uint32, string, string) bool { return true }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := newRawH2(t, 0, tc.answer)
			c, _ := rawClientOn(t, srv, 300*time.Millisecond, p)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, meta, err := c.Authorize(ctx, rawCaller, allParams)
			if (err == nil) != tc.ok {
				t.Errorf("got %v; want ok %v", err, tc.ok)
			}
			// A resend would come at once or after x/net's backoff of a
			// second; wait past it.
			time.Sleep(1200 * time.Millisecond)
			if n := srv.requests.Load(); n != 1 || !meta.Sent || meta.Attempts != 1 {
				t.Errorf("Dintero got the POST %d times, sent %v, %d attempts; want once, sent, 1 attempt", n, meta.Sent, meta.Attempts)
			}
			if h1, h2 := srv.h1Conns.Load(), srv.h2Conns.Load(); (p.name == "HTTP/2") != (h1 == 0) || (p.name == "HTTP/2") != (h2 > 0) {
				t.Errorf("%d HTTP/1.1 and %d HTTP/2 connections; want HTTP/2 on x/net's path only", h1, h2)
			}
		})
	}
}

// TestUnprocessedSentAgain: what HTTP/2 proves unprocessed (a refused
// stream, a GOAWAY below it) is sent again, authorize's POST too, and the
// code is redeemed once.
func TestUnprocessedSentAgain(t *testing.T) {
	for _, tc := range []struct {
		name    string
		refuse  func(c *rawConn, id uint32)
		endConn bool
	}{
		{"REFUSED_STREAM", func(c *rawConn, id uint32) { c.reset(id, http2.ErrCodeRefusedStream) }, false},
		{"a graceful GOAWAY below the stream", func(c *rawConn, id uint32) { c.goAway(id-2, http2.ErrCodeNo) }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var seen atomic.Int64
			srv := newRawH2(t, 0, func(c *rawConn, id uint32, method, _ string) bool {
				if method == http.MethodPost && seen.Add(1) == 1 {
					tc.refuse(c, id)
					return !tc.endConn
				}
				c.redirect(id)
				return true
			})
			c, _ := rawClient(t, srv, 5*time.Second)
			rd, meta, err := c.Authorize(context.Background(), rawCaller, allParams)
			if err != nil || rd.AccessToken != "A1" {
				t.Fatalf("got %v, %+v; want the code redeemed", err, rd)
			}
			if n := srv.requests.Load(); n != 2 || meta.Attempts != 1 || !meta.Sent {
				t.Errorf("Dintero got the POST %d times in %d attempts, sent %v; want 2 in 1 (the transport's own resend), sent", n, meta.Attempts, meta.Sent)
			}
		})
	}
}

// TestSentMeansSent: a call that never had its headers written says it
// was not sent, whatever kept it: a connection that did not come in
// time, a token, the signing keys. Dintero saw none of them.
func TestSentMeansSent(t *testing.T) {
	fake := dinterotest.New(t, dinterotest.Options{Mock: dinteromock.Options{Stateless: true}})
	fake.AddCode(allParams.OID, allParams.VerificationCode)
	var slow atomic.Bool
	var served atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		fake.Mock.ServeHTTP(w, r)
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	srv.TLS.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		if slow.Load() {
			time.Sleep(2500 * time.Millisecond)
		}
		return nil, nil
	}
	c, _ := tlsClient(t, srv, 5*time.Second)
	// The keys are fetched, and a connection is up.
	p := allParams
	p.VerificationCode = "VC-FIRST"
	fake.AddCode(p.OID, p.VerificationCode)
	if _, _, err := c.Authorize(context.Background(), callerAt(fake, p.OID), p); err != nil {
		t.Fatal(err)
	}
	// Every new connection now takes 2.5 s; the one up is closed.
	slow.Store(true)
	srv.CloseClientConnections()
	time.Sleep(50 * time.Millisecond)
	before := served.Load()
	var wg sync.WaitGroup
	var sent atomic.Int64
	for i := range 10 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			var meta upstream.Meta
			var err error
			if i%2 == 0 {
				_, meta, err = c.Authorize(ctx, callerAt(fake, allParams.OID), allParams)
			} else {
				_, meta, err = c.DeleteClientGrant(ctx, caller(fake), "T123", "g")
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("got %v; want DeadlineExceeded", err)
			}
			if meta.Sent {
				sent.Add(1)
			}
		})
	}
	wg.Wait()
	if n, got := sent.Load(), served.Load()-before; n != 0 || got != 0 {
		t.Errorf("%d of 10 calls waiting for a connection say sent, %d reached Dintero; want none", n, got)
	}

	// A patient call dials; the impatient ones behind it give up at their
	// deadline, not when the dial ends.
	srv.CloseClientConnections()
	time.Sleep(50 * time.Millisecond)
	patient := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _, err := c.DeleteClientGrant(ctx, caller(fake), "T123", "g")
		patient <- err
	}()
	time.Sleep(100 * time.Millisecond)
	for range 5 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			start := time.Now()
			_, meta, err := c.DeleteClientGrant(ctx, caller(fake), "T123", "g")
			// 1.5 s leaves a busy machine room and stays below the dial.
			if took := time.Since(start); !errors.Is(err, context.DeadlineExceeded) || meta.Sent || took > 1500*time.Millisecond {
				t.Errorf("behind a dial of 2.5 s: got %v after %v, sent %v; want DeadlineExceeded at 200 ms, not sent", err, took, meta.Sent)
			}
		})
	}
	wg.Wait()
	if err := <-patient; err != nil {
		t.Errorf("the patient call: %v", err)
	}

	// Waiting for the facade's token, or for the signing keys.
	for _, op := range []string{dinterotest.OpToken, dinterotest.OpKeys} {
		f := dinterotest.New(t)
		f.AddCode(allParams.OID, allParams.VerificationCode)
		f.HandleRaw(op, dinterotest.Stall)
		fc, err := upstream.New(upstream.Options{BaseURL: f.URL, Transport: h2transport.New(5 * time.Second),
			Credentials: []upstream.Credentials{{AccountID: allParams.OID, ClientID: dinterotest.ClientID, ClientSecret: dinterotest.ClientSecret}}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(fc.CloseIdleConnections)
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		_, meta, err := fc.Authorize(ctx, upstream.Call{TokenSource: fc.TokenSource(allParams.OID)}, allParams)
		cancel()
		if err == nil || meta.Sent || f.Count(dinterotest.OpAuthorize) != 0 {
			t.Errorf("waiting for %s: got %v, sent %v, %d authorize requests; want an error, not sent, none", op, err, meta.Sent, f.Count(dinterotest.OpAuthorize))
		}
	}
}
