package oidckeys_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/dintero-facade/dintero-facade/internal/oidckeys"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fetcher is a keys endpoint: it answers keys, or err, after gate opens
// (when there is one), and counts the fetches.
type fetcher struct {
	calls atomic.Int64
	keys  []oidckeys.Key
	err   error
	gate  chan struct{}
}

func (f *fetcher) FetchKeys(ctx context.Context) ([]oidckeys.Key, error) {
	f.calls.Add(1)
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return f.keys, f.err
}

// refusal is a fetch the server refused for the caller's credentials.
type refusal struct{}

func (refusal) Error() string { return "HTTP 401" }
func (refusal) Refused() bool { return true }

// clock is a test's clock, moved by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func newSet(t testing.TB, c *clock, maxAccounts int) *oidckeys.Set {
	t.Helper()
	s, err := oidckeys.New(oidckeys.Options{KeysFor: time.Hour, RefetchEvery: 10 * time.Second, MaxAccounts: maxAccounts, Timeout: 5 * time.Second, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func keys(kids ...string) []oidckeys.Key {
	var out []oidckeys.Key
	for _, kid := range kids {
		out = append(out, oidckeys.Key{ID: kid, Public: &testKey().PublicKey})
	}
	return out
}

// TestEnsure: an account's keys are fetched once and kept for KeysFor;
// older, they are fetched again, and still serve when that fails; a fetch
// that fails without keys held is the caller's error and keeps nothing.
func TestEnsure(t *testing.T) {
	c := &clock{now: time.Unix(1_800_000_000, 0)}
	s := newSet(t, c, 10)
	f := &fetcher{keys: keys("k1")}
	for range 3 {
		if err := s.Ensure(context.Background(), "T123", "", f); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.calls.Load(); n != 1 {
		t.Errorf("%d fetches for three calls; want 1", n)
	}
	c.advance(time.Hour)
	f.err = errors.New("HTTP 503")
	if err := s.Ensure(context.Background(), "T123", "", f); err != nil || f.calls.Load() != 2 {
		t.Errorf("stale keys and a failed fetch: got %v after %d fetches; want a refetch tried, the old keys serving", err, f.calls.Load())
	}
	if k, err := s.Keys(context.Background(), "T123", "", "k1", f); err != nil || k == nil {
		t.Errorf("the old key: got %v, %v; want it", k, err)
	}
	if err := s.Ensure(context.Background(), "T999", "", f); !errors.Is(err, f.err) || s.Held("T999") {
		t.Errorf("no keys and a failed fetch: got %v, held %v; want the fetch's error, nothing kept", err, s.Held("T999"))
	}
}

// TestSharedFetch: the calls waiting at once for an account's keys share
// one fetch, whatever their credentials, and none of them can end it by
// giving up. Before issue 22's review the fetch was shared by the calls of
// one caller only: 100 callers with tokens of their own made 100 fetches.
func TestSharedFetch(t *testing.T) {
	s := newSet(t, &clock{now: time.Unix(1_800_000_000, 0)}, 10)
	f := &fetcher{keys: keys("k1"), gate: make(chan struct{})}
	quitter, quit := context.WithCancel(context.Background())
	quitErr := make(chan error, 1)
	go func() { quitErr <- s.Ensure(quitter, "T123", "Bearer a", f) }()
	for f.calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	var wg sync.WaitGroup
	errs := make([]error, 20)
	others := make([]*fetcher, len(errs))
	for i := range errs {
		others[i] = &fetcher{keys: keys("k1")}
		wg.Go(func() {
			errs[i] = s.Ensure(context.Background(), "T123", fmt.Sprintf("Bearer caller-%d", i), others[i])
		})
	}
	time.Sleep(20 * time.Millisecond)
	quit()
	if err := <-quitErr; !errors.Is(err, context.Canceled) {
		t.Errorf("the caller that gave up: got %v; want Canceled", err)
	}
	close(f.gate)
	wg.Wait()
	n := f.calls.Load()
	for i, err := range errs {
		if err != nil {
			t.Errorf("caller %d: %v", i, err)
		}
		n += others[i].calls.Load()
	}
	if n != 1 {
		t.Errorf("%d fetches for 21 callers of one account; want 1", n)
	}
}

// TestRefusedFetchPoisonsNoOne: when the shared fetch is refused for the
// credentials it was made with, each waiter with other credentials
// fetches with its own, and the refusal enters nothing.
func TestRefusedFetchPoisonsNoOne(t *testing.T) {
	s := newSet(t, &clock{now: time.Unix(1_800_000_000, 0)}, 10)
	bad := &fetcher{err: refusal{}, gate: make(chan struct{})}
	badErr := make(chan error, 1)
	go func() { badErr <- s.Ensure(context.Background(), "T123", "Bearer bad", bad) }()
	for bad.calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	good := &fetcher{keys: keys("k1")}
	var wg sync.WaitGroup
	errs := make([]error, 10)
	for i := range errs {
		wg.Go(func() { errs[i] = s.Ensure(context.Background(), "T123", "Bearer good", good) })
	}
	time.Sleep(20 * time.Millisecond)
	close(bad.gate)
	wg.Wait()
	if err := <-badErr; !errors.As(err, new(refusal)) {
		t.Errorf("the refused caller: got %v; want its refusal", err)
	}
	for i, err := range errs {
		if err != nil {
			t.Errorf("good caller %d: %v", i, err)
		}
	}
	if n := good.calls.Load(); n != 1 || !s.Held("T123") {
		t.Errorf("the good callers fetched %d times, held %v; want once, held", n, s.Held("T123"))
	}
}

// TestKeyRefetch: an unknown kid fetches the keys again once, then not
// within RefetchEvery, whether that refetch succeeded or failed; a refetch
// the server refused for its credentials starts no interval.
func TestKeyRefetch(t *testing.T) {
	c := &clock{now: time.Unix(1_800_000_000, 0)}
	s := newSet(t, c, 10)
	f := &fetcher{keys: keys("k1")}
	if err := s.Ensure(context.Background(), "T123", "", f); err != nil {
		t.Fatal(err)
	}
	f.keys = keys("k1", "k2") // a rotation
	if k, err := s.Keys(context.Background(), "T123", "", "k2", f); err != nil || k == nil || f.calls.Load() != 2 {
		t.Fatalf("a new kid: got %v after %d fetches; want it after one refetch", err, f.calls.Load())
	}
	for range 5 {
		if _, err := s.Keys(context.Background(), "T123", "", "k3", f); !errors.Is(err, oidckeys.ErrUnknownKey) {
			t.Fatalf("a kid no key has: got %v; want ErrUnknownKey", err)
		}
	}
	if n := f.calls.Load(); n != 2 {
		t.Errorf("%d fetches after 5 unknown kids within the interval; want none more", n)
	}
	c.advance(10 * time.Second)
	f.err = refusal{}
	_, _ = s.Keys(context.Background(), "T123", "", "k3", f)
	f.err = errors.New("HTTP 503")
	_, _ = s.Keys(context.Background(), "T123", "", "k3", f)
	_, _ = s.Keys(context.Background(), "T123", "", "k3", f)
	if n := f.calls.Load(); n != 4 {
		t.Errorf("%d fetches; want 4: a refused refetch starts no interval, a failed one does", n)
	}
}

// TestKeysMemoryBounded: callers naming accounts at will with credentials
// the server refuses leave nothing behind: after 20,000 accounts (scaled
// down from the 10⁶ a caller could name) the set is empty and the heap
// has not grown with them.
func TestKeysMemoryBounded(t *testing.T) {
	s := newSet(t, &clock{now: time.Unix(1_800_000_000, 0)}, 1000)
	f := &fetcher{err: refusal{}}
	run := func(from, n int) {
		for i := from; i < from+n; i++ {
			if err := s.Ensure(context.Background(), fmt.Sprintf("T%08d", i), "Bearer junk-token-000000", f); !errors.As(err, new(refusal)) {
				t.Fatalf("got %v; want the refusal", err)
			}
		}
	}
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapInuse
	}
	run(0, 1000) // the steady state of what every call allocates
	before := heap()
	run(1000, 20000)
	after := heap()
	if n := s.Len(); n != 0 {
		t.Errorf("%d accounts kept after refused fetches; want none", n)
	}
	// Before issue 22, every account kept about 500 bytes: 10 MB here.
	if grown := int64(after) - int64(before); grown > 2<<20 {
		t.Errorf("the heap grew by %d bytes over 20,000 refused accounts; want it flat", grown)
	}
	if n := f.calls.Load(); n != 21000 {
		t.Errorf("%d fetches; want one per call", n)
	}
}

// TestKeysCacheBounded: the accounts whose keys were had (here with the
// facade's credentials) are kept up to MaxAccounts, the least recently
// used dropped first.
func TestKeysCacheBounded(t *testing.T) {
	s := newSet(t, &clock{now: time.Unix(1_800_000_000, 0)}, 50)
	f := &fetcher{keys: keys("k1")}
	for i := range 200 {
		if err := s.Ensure(context.Background(), fmt.Sprintf("T%08d", i), "", f); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.Len(); n != 50 {
		t.Errorf("%d accounts kept; want MaxAccounts, 50", n)
	}
	if !s.Held("T00000199") || s.Held("T00000000") {
		t.Error("the least recently used account was not the one dropped")
	}
}

// TestCallerShareBounded: a caller with credentials of its own that
// names many accounts (a partner's token) keeps at most a quarter of
// MaxAccounts, its own least recently used dropped first: it does not push
// out another caller's account, whose keys are then fetched once however
// many accounts come between its calls. Before issue 22's review 1,000
// accounts between each call dropped them, and each call fetched them
// again.
func TestCallerShareBounded(t *testing.T) {
	s := newSet(t, &clock{now: time.Unix(1_800_000_000, 0)}, 100)
	legit := &fetcher{keys: keys("k1")}
	partner := &fetcher{keys: keys("k1")}
	for round := range 4 {
		if err := s.Ensure(context.Background(), "T123", "Bearer legit", legit); err != nil {
			t.Fatal(err)
		}
		for i := range 1000 {
			if err := s.Ensure(context.Background(), fmt.Sprintf("T%08d", round*1000+i), "Bearer partner", partner); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n := legit.calls.Load(); n != 1 || s.Len() != 26 {
		t.Errorf("the legitimate account fetched %d times, %d accounts held; want once, 26 (25 of the partner's)", n, s.Len())
	}
}

// TestRefetchBoundOutlivesEviction: the interval between refetches for
// unknown kids holds for an account whose keys were dropped for others'
// and fetched again meanwhile.
func TestRefetchBoundOutlivesEviction(t *testing.T) {
	s := newSet(t, &clock{now: time.Unix(1_800_000_000, 0)}, 4)
	f := &fetcher{keys: keys("k1")}
	if err := s.Ensure(context.Background(), "T123", "", f); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Keys(context.Background(), "T123", "", "k2", f); !errors.Is(err, oidckeys.ErrUnknownKey) || f.calls.Load() != 2 {
		t.Fatalf("an unknown kid: got %v after %d fetches; want ErrUnknownKey after a refetch", err, f.calls.Load())
	}
	for i := range 4 {
		if err := s.Ensure(context.Background(), fmt.Sprintf("T%08d", i), "", f); err != nil {
			t.Fatal(err)
		}
	}
	if s.Held("T123") {
		t.Fatal("the account's keys were not dropped")
	}
	if err := s.Ensure(context.Background(), "T123", "", f); err != nil {
		t.Fatal(err)
	}
	before := f.calls.Load()
	if _, err := s.Keys(context.Background(), "T123", "", "k2", f); !errors.Is(err, oidckeys.ErrUnknownKey) || f.calls.Load() != before {
		t.Errorf("an unknown kid again, within RefetchEvery of the last refetch: got %v after %d more fetches; want none", err, f.calls.Load()-before)
	}
}
