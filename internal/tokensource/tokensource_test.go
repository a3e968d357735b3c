package tokensource_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/dintero-facade/dintero-facade/internal/tokensource"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// clock is a test's clock, in nanoseconds since 1970, moved by hand.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Unix(1_800_000_000, 0).UnixNano())
	return c
}

func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// issuer is a token endpoint that numbers its tokens.
type issuer struct {
	fetches   atomic.Int32
	expiresIn int64
}

func (i *issuer) fetch(context.Context) (tokensource.Token, error) {
	n := i.fetches.Add(1)
	return tokensource.Token{Value: fmt.Sprint("tok-", n), ExpiresIn: i.expiresIn}, nil
}

// TestSharedFetch: 100 callers waiting at once share one fetch, and the
// caller that started it giving up fails neither the fetch nor the others.
func TestSharedFetch(t *testing.T) {
	gate, started := make(chan struct{}), make(chan struct{})
	var fetches atomic.Int32
	s := tokensource.New(func(ctx context.Context) (tokensource.Token, error) {
		if fetches.Add(1) == 1 {
			close(started)
		}
		select {
		case <-gate:
		case <-ctx.Done():
			return tokensource.Token{}, ctx.Err()
		}
		return tokensource.Token{Value: "tok-1", ExpiresIn: 3600}, nil
	}, tokensource.Options{Timeout: 10 * time.Second})
	quitter, quit := context.WithCancel(context.Background())
	quitErr := make(chan error, 1)
	go func() {
		_, err := s.Token(quitter)
		quitErr <- err
	}()
	<-started
	var wg sync.WaitGroup
	got := make([]string, 100)
	errs := make([]error, 100)
	for i := range got {
		wg.Go(func() { got[i], errs[i] = s.Token(context.Background()) })
	}
	time.Sleep(20 * time.Millisecond)
	quit()
	if err := <-quitErr; !errors.Is(err, context.Canceled) {
		t.Errorf("the caller that gave up: got %v; want Canceled", err)
	}
	close(gate)
	wg.Wait()
	for i := range got {
		if got[i] != "tok-1" || errs[i] != nil {
			t.Fatalf("caller %d: got %q, %v; want tok-1", i, got[i], errs[i])
		}
	}
	if n := fetches.Load(); n != 1 {
		t.Errorf("%d fetches for 101 callers; want 1", n)
	}
}

// TestLifetime: a token is handed out until a tenth of its lifetime (at
// most 5 minutes) is left; an absurd lifetime is cut to a day; a token
// without a positive lifetime is not handed out again.
func TestLifetime(t *testing.T) {
	for _, tc := range []struct {
		name      string
		expiresIn int64
		kept      time.Duration // the last wait that still finds it
	}{
		{"an hour: refreshed 5 minutes early", 3600, 55*time.Minute - time.Second},
		{"a minute: refreshed 6 s early", 60, 54*time.Second - time.Millisecond},
		{"absurd: a day", 1 << 62, 24*time.Hour - 5*time.Minute - time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newClock()
			i := &issuer{expiresIn: tc.expiresIn}
			s := tokensource.New(i.fetch, tokensource.Options{Timeout: time.Second, Now: c.Now})
			first, err := s.Token(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			c.advance(tc.kept)
			if tok, _ := s.Token(context.Background()); tok != first {
				t.Errorf("after %v: got %s; want %s still", tc.kept, tok, first)
			}
			c.advance(time.Second)
			if tok, _ := s.Token(context.Background()); tok == first || i.fetches.Load() != 2 {
				t.Errorf("a second later: got %s after %d fetches; want a new token", tok, i.fetches.Load())
			}
		})
	}
	for _, expiresIn := range []int64{0, -5} {
		c := newClock()
		i := &issuer{expiresIn: expiresIn}
		s := tokensource.New(i.fetch, tokensource.Options{Timeout: time.Second, Now: c.Now})
		for range 2 {
			if _, err := s.Token(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		if n := i.fetches.Load(); n != 2 {
			t.Errorf("expires_in %d: %d fetches for two calls; want 2, nothing cached", expiresIn, n)
		}
	}
}

// TestDrop: a refused token is dropped, unless another was fetched since.
func TestDrop(t *testing.T) {
	i := &issuer{expiresIn: 3600}
	s := tokensource.New(i.fetch, tokensource.Options{Timeout: time.Second})
	first, _ := s.Token(context.Background())
	s.Drop(first)
	second, _ := s.Token(context.Background())
	if second == first {
		t.Fatalf("after Drop: got %s again; want a new token", second)
	}
	s.Drop(first) // a late refusal of the old token
	if tok, _ := s.Token(context.Background()); tok != second || i.fetches.Load() != 2 {
		t.Errorf("after a late Drop of the old token: got %s after %d fetches; want %s kept", tok, i.fetches.Load(), second)
	}
}

// TestFetchError: a failed fetch is every waiting caller's error and
// leaves nothing cached; the fetch is bounded by the timeout.
func TestFetchError(t *testing.T) {
	boom := errors.New("refused")
	var fetches atomic.Int32
	s := tokensource.New(func(ctx context.Context) (tokensource.Token, error) {
		if fetches.Add(1) == 1 {
			return tokensource.Token{}, boom
		}
		<-ctx.Done()
		return tokensource.Token{}, ctx.Err()
	}, tokensource.Options{Timeout: 20 * time.Millisecond})
	if _, err := s.Token(context.Background()); !errors.Is(err, boom) {
		t.Errorf("got %v; want the fetch's error", err)
	}
	if _, err := s.Token(context.Background()); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a fetch that hangs: got %v; want it cut at the timeout", err)
	}
}
