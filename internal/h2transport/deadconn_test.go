package h2transport_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/dintero-facade/dintero-facade/upstream"
)

// TestDeadConnectionGivenUp: a connection whose peer stopped answering
// is given up soon after a call on it timed out with no frame read since
// its request was written (x/net pings with the stream's reset; the ping
// goes unanswered), and the next calls dial a new one, long before x/net's
// own health check of an idle connection (30 s, then a ping of 10 s) and
// before the breaker makes one dead connection an outage. The peer hangs
// right after the TLS handshake (no SETTINGS), or in the middle of a
// connection that served a call; later connections are healthy. Before
// issue 22's review, calls went to the dead connection for 40 s (8 s: 0
// OK, 10 failed, 49 refused by the open breaker).
func TestDeadConnectionGivenUp(t *testing.T) {
	for _, tc := range []struct {
		name string
		mid  bool
	}{
		{"the peer hangs after the handshake", false},
		{"the peer hangs in the middle of a connection", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var first *rawConn
			srv := newRawH2(t, 0, func(c *rawConn, id uint32, _, _ string) bool {
				if c.n == 1 && first == nil {
					first = c
				}
				c.headers(id, true, ":status", "204")
				return true
			})
			srv.hangFirst.Store(!tc.mid)
			c, _ := rawClient(t, srv, 300*time.Millisecond)
			if tc.mid {
				if _, _, err := c.DeleteClientGrant(context.Background(), rawCaller, "T123", "g"); err != nil {
					t.Fatal(err)
				}
				first.hung.Store(true)
			}
			start := time.Now()
			var failed, open int
			for {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_, _, err := c.DeleteClientGrant(ctx, rawCaller, "T123", "g")
				cancel()
				if err == nil {
					break
				}
				if errors.Is(err, upstream.ErrCircuitOpen) {
					open++
					time.Sleep(100 * time.Millisecond)
				} else {
					failed++
				}
				// The bound is far below x/net's 40 s, and leaves a busy
				// machine room over the 0.6 s it takes (a header timeout,
				// then a ping's).
				if time.Since(start) > 8*time.Second {
					t.Fatalf("after %v: no call succeeded (%d failed, %d refused by the open breaker); want a new connection after a header timeout and a ping", time.Since(start), failed, open)
				}
			}
			t.Logf("a call succeeded after %v: %d failed, %d refused by the breaker, %d connections", time.Since(start), failed, open, srv.conns.Load())
			if open > 0 {
				t.Errorf("%d calls refused by the open breaker; want the dead connection given up before it opens", open)
			}
		})
	}
}
