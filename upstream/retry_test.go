package upstream_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dintero-facade/dintero-facade/internal/dinterotest"
	"github.com/dintero-facade/dintero-facade/upstream"
)

// sequence answers the n-th request with statuses[n] (the last one
// repeats); a 0 lets the mock answer.
func sequence(next http.Handler, statuses ...int) (http.HandlerFunc, *atomic.Int32) {
	var n atomic.Int32
	return func(w http.ResponseWriter, r *http.Request) {
		i := int(n.Add(1)) - 1
		s := statuses[min(i, len(statuses)-1)]
		if s == 0 {
			next.ServeHTTP(w, r)
			return
		}
		dinterotest.WriteError(w, s, "", http.StatusText(s))
	}, &n
}

func TestRetries(t *testing.T) {
	tests := []struct {
		name          string
		authorize     bool
		statuses      []int
		wantStatus    int // 0: success
		wantAttempts  int
		wantUncertain int
	}{
		{"delete 503 then ok", false, []int{503, 0}, 0, 2, 1},
		{"delete 502 504 then ok", false, []int{502, 504, 0}, 0, 3, 2},
		{"delete 429 then ok", false, []int{429, 0}, 0, 2, 0},
		{"delete 503 three times", false, []int{503}, 503, 3, 3},
		{"delete 500 is not retried", false, []int{500, 0}, 500, 1, 0},
		{"delete 400 is not retried", false, []int{400, 0}, 400, 1, 0},
		{"delete 404 is not retried", false, []int{404, 0}, 404, 1, 0},
		{"authorize 503 is not retried", true, []int{503, 0}, 503, 1, 1},
		{"authorize 429 is not retried", true, []int{429, 0}, 429, 1, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake := dinterotest.New(t)
			fake.AddGrants("T123", "g")
			fake.AddCode("P00000000", allParams.VerificationCode)
			h, n := sequence(fake.Mock, tc.statuses...)
			op := dinterotest.OpDelete
			if tc.authorize {
				op = dinterotest.OpAuthorize
			}
			fake.HandleRaw(op, h)
			obs := &counter{}
			c := newClient(t, fake.URL, func(o *upstream.Options) { o.Observer = obs })
			var meta upstream.Meta
			var err error
			if tc.authorize {
				_, meta, err = c.Authorize(context.Background(), upstream.Call{Authorization: fake.Bearer("P00000000")}, allParams)
			} else {
				_, meta, err = c.DeleteClientGrant(context.Background(), caller(fake), "T123", "g")
			}
			if tc.wantStatus == 0 && err != nil {
				t.Fatalf("got %v; want success", err)
			}
			var e *upstream.Error
			if tc.wantStatus != 0 && (!errors.As(err, &e) || e.StatusCode != tc.wantStatus) {
				t.Fatalf("got %v; want HTTP %d", err, tc.wantStatus)
			}
			if got := int(n.Load()); got != tc.wantAttempts || meta.Attempts != tc.wantAttempts {
				t.Errorf("got %d requests, meta %d attempts; want %d", got, meta.Attempts, tc.wantAttempts)
			}
			if got := obs.get(upstream.OpDeleteClientGrant.Name()) + obs.get(upstream.OpAuthorize.Name()); got != tc.wantAttempts {
				t.Errorf("observer saw %d attempts; want %d", got, tc.wantAttempts)
			}
			if len(meta.Uncertain) != tc.wantUncertain {
				t.Errorf("got uncertain %q; want %d entries", meta.Uncertain, tc.wantUncertain)
			}
		})
	}
}

func TestTransportRetries(t *testing.T) {
	fake := dinterotest.New(t)
	fake.AddGrants("T123", "g")
	fake.HandleRaw(dinterotest.OpDelete, dinterotest.Times(1, dinterotest.Reset, fake.Mock))
	c := newClient(t, fake.URL)
	if _, meta, err := c.DeleteClientGrant(context.Background(), caller(fake), "T123", "g"); err != nil || meta.Attempts != 2 {
		t.Errorf("delete after a reset: got %v after %d attempts; want success after 2", err, meta.Attempts)
	}
	refusing := newClient(t, dinterotest.RefusingURL(t))
	if _, meta, err := refusing.DeleteClientGrant(context.Background(), caller(fake), "T123", "g"); !errors.Is(err, upstream.ErrTransport) || meta.Attempts != 3 || meta.Sent || meta.Uncertain != nil {
		t.Errorf("delete to a refusing port: got %v, %+v; want ErrTransport after 3 attempts, nothing sent", err, meta)
	}
}

func TestRetryAfter(t *testing.T) {
	tests := []struct {
		name       string
		retryAfter string
		deadline   time.Duration
		wantOK     bool
		minWait    time.Duration
		maxWait    time.Duration
	}{
		{"fits", "1", 5 * time.Second, true, 900 * time.Millisecond, 3 * time.Second},
		{"http date that fits", "", 5 * time.Second, true, 0, 3 * time.Second},
		{"does not fit: error at once", "3", 500 * time.Millisecond, false, 0, 200 * time.Millisecond},
		{"absurd: error at once", "99999999999", 5 * time.Second, false, 0, 200 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake := dinterotest.New(t)
			fake.AddGrants("T123", "g")
			fake.HandleRaw(dinterotest.OpDelete, dinterotest.Times(1, dinterotest.RateLimited(func() string {
				if tc.retryAfter == "" {
					return time.Now().Add(2 * time.Second).UTC().Format(http.TimeFormat)
				}
				return tc.retryAfter
			}), fake.Mock))
			c := newClient(t, fake.URL)
			ctx, cancel := context.WithTimeout(context.Background(), tc.deadline)
			defer cancel()
			start := time.Now()
			_, _, err := c.DeleteClientGrant(ctx, caller(fake), "T123", "g")
			took := time.Since(start)
			if (err == nil) != tc.wantOK {
				t.Fatalf("got %v; want ok=%v", err, tc.wantOK)
			}
			if took < tc.minWait || took > tc.maxWait {
				t.Errorf("took %v; want between %v and %v", took, tc.minWait, tc.maxWait)
			}
			var e *upstream.Error
			if !tc.wantOK && (!errors.As(err, &e) || e.StatusCode != 429 || e.RetryAfter <= 0) {
				t.Errorf("got %v; want the 429 with its Retry-After", err)
			}
		})
	}
}

func TestContext(t *testing.T) {
	fake := dinterotest.New(t)
	fake.HandleRaw(dinterotest.OpDelete, dinterotest.Stall)
	t.Run("caller deadline", func(t *testing.T) {
		c := newClient(t, fake.URL)
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, meta, err := c.DeleteClientGrant(ctx, caller(fake), "T123", "g")
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > time.Second || meta.Attempts != 1 {
			t.Errorf("got %v after %v, %d attempts; want DeadlineExceeded at once after 1", err, time.Since(start), meta.Attempts)
		}
	})
	t.Run("caller cancels", func(t *testing.T) {
		c := newClient(t, fake.URL)
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(50*time.Millisecond, cancel)
		_, meta, err := c.DeleteClientGrant(ctx, caller(fake), "T123", "g")
		if !errors.Is(err, context.Canceled) || meta.Attempts != 1 {
			t.Errorf("got %v after %d attempts; want Canceled after 1", err, meta.Attempts)
		}
	})
	t.Run("default timeout", func(t *testing.T) {
		c := newClient(t, fake.URL, func(o *upstream.Options) { o.Timeout = 150 * time.Millisecond })
		start := time.Now()
		_, _, err := c.DeleteClientGrant(context.Background(), caller(fake), "T123", "g")
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > time.Second {
			t.Errorf("got %v after %v; want DeadlineExceeded after about 150ms", err, time.Since(start))
		}
	})
}

func TestConcurrencyBound(t *testing.T) {
	fake := dinterotest.New(t)
	fake.AddGrants("T123", "g1", "g2", "g3", "g4")
	release := make(chan struct{})
	fake.HandleRaw(dinterotest.OpDelete, func(w http.ResponseWriter, r *http.Request) {
		<-release
		fake.Mock.ServeHTTP(w, r)
	})
	c := newClient(t, fake.URL, func(o *upstream.Options) { o.MaxConcurrent = 3 })
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() {
			if _, _, err := c.DeleteClientGrant(context.Background(), caller(fake), "T123", fmt.Sprintf("g%d", i+1)); err != nil {
				t.Errorf("a call within the bound failed: %v", err)
			}
		})
	}
	for fake.Count(dinterotest.OpDelete) < 3 {
		time.Sleep(time.Millisecond)
	}
	start := time.Now()
	_, meta, err := c.DeleteClientGrant(context.Background(), caller(fake), "T123", "g4")
	if !errors.Is(err, upstream.ErrBusy) || time.Since(start) > 100*time.Millisecond || meta.Sent {
		t.Errorf("got %v after %v, sent %v; want ErrBusy at once, nothing sent", err, time.Since(start), meta.Sent)
	}
	close(release)
	wg.Wait()
	if _, _, err := c.DeleteClientGrant(context.Background(), caller(fake), "T123", "g4"); err != nil {
		t.Errorf("after the burst: got %v; want success", err)
	}
	if n := fake.Count(dinterotest.OpDelete); n != 4 {
		t.Errorf("Dintero got %d deletes; want 4 (the refused call sent nothing)", n)
	}
}
