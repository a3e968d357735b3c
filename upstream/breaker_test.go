package upstream_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dintero-facade/dintero-facade/internal/dinterotest"
	"github.com/dintero-facade/dintero-facade/internal/h2transport"
	"github.com/dintero-facade/dintero-facade/upstream"
)

func TestCircuitBreaker(t *testing.T) {
	fake := dinterotest.New(t)
	var failing atomic.Bool
	failing.Store(true)
	fake.HandleRaw(dinterotest.OpDelete, func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			dinterotest.WriteError(w, 503, "", "down")
			return
		}
		fake.Mock.ServeHTTP(w, r)
	})
	obs := &counter{}
	c := newClient(t, fake.URL, func(o *upstream.Options) {
		o.Observer = obs
		o.Breaker = upstream.BreakerOptions{ConsecutiveFailures: 5, OpenFor: 200 * time.Millisecond}
		o.MaxAttempts = 1
	})
	call := func(id string) error {
		_, _, err := c.DeleteClientGrant(context.Background(), caller(fake), "T123", id)
		return err
	}
	for i := range 5 {
		var e *upstream.Error
		if err := call("g"); !errors.As(err, &e) || e.StatusCode != 503 {
			t.Fatalf("call %d: got %v; want Dintero's 503", i, err)
		}
	}
	// Open: answered at once, nothing sent, no attempt counted.
	start := time.Now()
	_, meta, err := c.DeleteClientGrant(context.Background(), caller(fake), "T123", "g")
	if !errors.Is(err, upstream.ErrCircuitOpen) || time.Since(start) > 50*time.Millisecond || meta.Sent {
		t.Fatalf("got %v after %v, sent %v; want ErrCircuitOpen at once, nothing sent", err, time.Since(start), meta.Sent)
	}
	if n := fake.Count(dinterotest.OpDelete); n != 5 || meta.Attempts != 0 || obs.get(upstream.OpDeleteClientGrant.Name()) != 5 {
		t.Errorf("Dintero got %d calls, meta says %d attempts, the observer saw %d; want 5, 0 and 5", n, meta.Attempts, obs.get(upstream.OpDeleteClientGrant.Name()))
	}
	// Still failing when the probe goes: open again.
	time.Sleep(250 * time.Millisecond)
	if err := call("g"); !errors.As(err, new(*upstream.Error)) {
		t.Fatalf("probe: got %v; want Dintero's 503", err)
	}
	if err := call("g"); !errors.Is(err, upstream.ErrCircuitOpen) {
		t.Fatalf("after a failed probe: got %v; want ErrCircuitOpen", err)
	}
	// Healthy again: the probe closes the breaker.
	failing.Store(false)
	fake.AddGrants("T123", "h1", "h2", "h3")
	time.Sleep(250 * time.Millisecond)
	for i := range 3 {
		if err := call(fmt.Sprintf("h%d", i+1)); err != nil {
			t.Fatalf("call %d after recovery: %v", i, err)
		}
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if want := "[open half-open open half-open closed]"; fmt.Sprint(obs.states) != want {
		t.Errorf("got states %v; want %s", obs.states, want)
	}
}

// TestBreakerIgnoresCallerTimeouts: callers whose deadline ends while
// Dintero works say nothing about Dintero's health. Many in a row, over the
// breaker's consecutive-failure bound, must leave it closed.
func TestBreakerIgnoresCallerTimeouts(t *testing.T) {
	fake := dinterotest.New(t)
	fake.AddGrants("T123", "g")
	fake.HandleRaw(dinterotest.OpDelete, func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/slow") {
			<-r.Context().Done()
			return
		}
		fake.Mock.ServeHTTP(w, r)
	})
	c := newClient(t, fake.URL, func(o *upstream.Options) {
		o.Breaker = upstream.BreakerOptions{ConsecutiveFailures: 2}
	})
	for range 5 {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		_, _, err := c.DeleteClientGrant(ctx, caller(fake), "T123", "slow")
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v; want the caller's deadline", err)
		}
	}
	if _, _, err := c.DeleteClientGrant(context.Background(), caller(fake), "T123", "g"); err != nil {
		t.Fatalf("after 5 caller timeouts: got %v; want the breaker still closed", err)
	}
}

// TestBreakerIgnoresClientErrors: 4xx answers are Dintero working.
func TestBreakerIgnoresClientErrors(t *testing.T) {
	fake := dinterotest.New(t)
	c := newClient(t, fake.URL, func(o *upstream.Options) {
		o.Breaker = upstream.BreakerOptions{ConsecutiveFailures: 2}
	})
	for i := range 5 {
		var e *upstream.Error
		if _, _, err := c.DeleteClientGrant(context.Background(), caller(fake), "T123", fmt.Sprintf("missing-%d", i)); !errors.As(err, &e) || e.StatusCode != 404 {
			t.Fatalf("got %v; want Dintero's 404, not an open breaker", err)
		}
	}
}

// TestBreakerIgnoresProvokedFailures: answers a caller can provoke with a
// request of its choosing (a 500 on an odd grant id, a 4xx) never pause
// the other callers; transport failures do count.
func TestBreakerIgnoresProvokedFailures(t *testing.T) {
	fake := dinterotest.New(t)
	fake.AddGrants("T123", "good")
	fake.HandleRaw(dinterotest.OpDelete, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/provoke-500"):
			dinterotest.WriteError(w, 500, "", "boom")
		case strings.HasSuffix(r.URL.Path, "/provoke-reset"):
			dinterotest.Reset(w, r)
		default:
			fake.Mock.ServeHTTP(w, r)
		}
	})
	c := newClient(t, fake.URL, func(o *upstream.Options) {
		o.Breaker = upstream.BreakerOptions{ConsecutiveFailures: 3}
		o.MaxAttempts = 1
	})
	for range 10 {
		_, _, _ = c.DeleteClientGrant(context.Background(), caller(fake), "T123", "provoke-500")
	}
	for range 10 {
		_, _, _ = c.DeleteClientGrant(context.Background(), caller(fake), "T123", "missing")
	}
	if _, _, err := c.DeleteClientGrant(context.Background(), caller(fake), "T123", "good"); err != nil {
		t.Fatalf("after 10 provoked 500s and 404s: got %v; want the breaker closed", err)
	}
	for range 3 {
		_, _, _ = c.DeleteClientGrant(context.Background(), caller(fake), "T123", "provoke-reset")
	}
	if _, _, err := c.DeleteClientGrant(context.Background(), caller(fake), "T123", "good"); !errors.Is(err, upstream.ErrCircuitOpen) {
		t.Errorf("after 3 resets: got %v; want the breaker open", err)
	}
}

// TestBreakerCountsDinteroTimeouts: Dintero that accepts and never answers
// (a response-header timeout of the transport, not the caller's deadline)
// is failing, and opens the breaker.
func TestBreakerCountsDinteroTimeouts(t *testing.T) {
	fake := dinterotest.New(t)
	fake.HandleRaw(dinterotest.OpDelete, dinterotest.Stall)
	tr := h2transport.New(50 * time.Millisecond)
	t.Cleanup(tr.CloseIdleConnections)
	c := newClient(t, fake.URL, func(o *upstream.Options) {
		o.Transport = tr
		o.MaxAttempts = 1
		o.Breaker = upstream.BreakerOptions{ConsecutiveFailures: 3}
	})
	for range 3 {
		if _, _, err := c.DeleteClientGrant(context.Background(), caller(fake), "T123", "g"); !errors.Is(err, upstream.ErrTransport) {
			t.Fatalf("got %v; want the transport's timeout", err)
		}
	}
	if _, _, err := c.DeleteClientGrant(context.Background(), caller(fake), "T123", "g"); !errors.Is(err, upstream.ErrCircuitOpen) {
		t.Errorf("after 3 header timeouts: got %v; want the breaker open", err)
	}
}
