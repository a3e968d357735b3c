package oidckeys

import (
	"context"
	"crypto/rsa"
	"errors"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/singleflight"
)

// Fetcher fetches one account's keys for one caller, with the caller's
// credentials.
type Fetcher interface {
	// FetchKeys fetches the keys. An error that has a method Refused()
	// reporting true says that the server refused the caller's
	// credentials, which says nothing of the keys: another caller's may
	// read them.
	FetchKeys(ctx context.Context) ([]Key, error)
}

// Options configure a Set.
type Options struct {
	// KeysFor is how long an account's keys are used before they are
	// fetched again ahead of a call.
	KeysFor time.Duration
	// RefetchEvery bounds how often a kid not seen yet makes an
	// account's keys be fetched again, whether the last refetch succeeded
	// or failed.
	RefetchEvery time.Duration
	// MaxAccounts bounds the accounts whose keys are kept, the least
	// recently used dropped first (and fetched again when next needed).
	MaxAccounts int
	// Timeout bounds each fetch.
	Timeout time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Set is the signing keys of the accounts called: a bounded cache, least
// recently used out first, of the accounts whose keys were had. A fetch
// that failed leaves nothing in it, so that callers naming accounts at
// will cannot grow it. A fetch is shared by the calls of one caller that
// wait for it, and no one caller's cancellation ends it; calls of other
// callers fetch on their own, so that a caller whose credentials the
// server refuses fails only its own call.
type Set struct {
	opts   Options
	rings  *lru.Cache[string, *keyring]
	flight singleflight.Group
}

// New returns an empty Set. MaxAccounts must be positive.
func New(o Options) (*Set, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	rings, err := lru.New[string, *keyring](o.MaxAccounts)
	if err != nil {
		return nil, err
	}
	return &Set{opts: o, rings: rings}, nil
}

// keyring holds an account's signing keys. It exists only once a fetch
// succeeded.
type keyring struct {
	mu          sync.Mutex
	keys        []Key
	gen         uint64    // counts the fetches stored
	fetched     time.Time // when keys were fetched
	lastRefetch time.Time // when an unknown kid last made them be fetched, whatever came of it
	refetching  *refetch  // the refetch in flight for an unknown kid, nil when none
}

// refetch is a fetch of the keys for an unknown kid; done is closed when
// it has ended, refused set when the server refused the credentials it
// was made with.
type refetch struct {
	done    chan struct{}
	refused bool
}

// Len is how many accounts' keys are held.
func (s *Set) Len() int { return s.rings.Len() }

// Held reports whether account's keys are held.
func (s *Set) Held(account string) bool { return s.rings.Contains(account) }

// ring returns account's keyring, nil when its keys were never had (or
// were dropped for other accounts').
func (s *Set) ring(account string) *keyring {
	r, _ := s.rings.Get(account)
	return r
}

// put stores keys fetched at now as account's.
func (s *Set) put(account string, keys []Key, now time.Time) {
	r, ok := s.rings.Get(account)
	if !ok {
		r = &keyring{}
		if prev, found, _ := s.rings.PeekOrAdd(account, r); found {
			r = prev
		}
	}
	r.mu.Lock()
	r.keys, r.fetched = keys, now
	r.gen++
	r.mu.Unlock()
}

// gen returns how many fetches of account's keys were stored; 0 when
// none is held.
func (s *Set) gen(account string) uint64 {
	r, _ := s.rings.Peek(account)
	if r == nil {
		return 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.gen
}

// Ensure makes sure account's keys are at hand, before a call that will
// need them is made: fetched with f unless held and younger than KeysFor.
// Keys older than that still serve when a new fetch fails. caller names
// the credentials f fetches with: calls with the same share a fetch.
func (s *Set) Ensure(ctx context.Context, account, caller string, f Fetcher) error {
	var have bool
	var seen uint64
	if r := s.ring(account); r != nil {
		r.mu.Lock()
		var fresh bool
		have, fresh, seen = len(r.keys) > 0, s.opts.Now().Sub(r.fetched) < s.opts.KeysFor, r.gen
		r.mu.Unlock()
		if fresh {
			return nil
		}
	}
	if err := s.fetch(ctx, account, caller, f, seen); err != nil && !have {
		return err
	}
	return nil
}

// fetch fetches account's keys into the set with f, unless keys were
// stored since the caller saw generation seen of them (a caller may join
// only after the fetch it waited for has ended).
func (s *Set) fetch(ctx context.Context, account, caller string, f Fetcher, seen uint64) error {
	ch := s.flight.DoChan(account+" "+caller, func() (any, error) {
		if s.gen(account) != seen {
			return nil, nil
		}
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.Timeout)
		defer cancel()
		keys, err := f.FetchKeys(fctx)
		if err == nil {
			s.put(account, keys, s.opts.Now())
		}
		return nil, err
	})
	select {
	case res := <-ch:
		return res.Err
	case <-ctx.Done():
		return errWaiting(ctx)
	}
}

// Key returns account's key kid. A kid the set does not hold makes it
// fetch the account's keys again with f, at most every RefetchEvery: the
// calls that meet an unknown kid while that refetch is in flight wait for
// it, and if the server refused it for its credentials, each tries once
// with its own. ErrUnknownKey when no key has kid even then.
func (s *Set) Key(ctx context.Context, account, caller, kid string, f Fetcher) (*rsa.PublicKey, error) {
	r := s.ring(account)
	seen := s.gen(account)
	if k := r.key(kid); k != nil {
		return k, nil
	}
	if r == nil {
		// The keys were dropped for other accounts' since the call
		// began: fetch them once.
		if err := s.fetch(ctx, account, caller, f, seen); err != nil {
			return nil, ErrUnknownKey
		}
		return s.ring(account).keyOrErr(kid)
	}
	ref, start := r.joinRefetch(s.opts.Now(), s.opts.RefetchEvery)
	switch {
	case ref == nil:
		return nil, ErrUnknownKey
	case start:
		err := s.fetch(ctx, account, caller, f, seen)
		r.endRefetch(ref, err, s.opts.Now())
	default:
		select {
		case <-ref.done:
		case <-ctx.Done():
			return nil, ErrUnknownKey
		}
		if ref.refused {
			if err := s.fetch(ctx, account, caller, f, seen); err != nil {
				return nil, ErrUnknownKey
			}
		}
	}
	return r.keyOrErr(kid)
}

// key returns the key of kid, if the ring holds it; a nil ring holds
// none.
func (r *keyring) key(kid string) *rsa.PublicKey {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range r.keys {
		if k.ID == kid {
			return k.Public
		}
	}
	return nil
}

// keyOrErr is key, or ErrUnknownKey.
func (r *keyring) keyOrErr(kid string) (*rsa.PublicKey, error) {
	if k := r.key(kid); k != nil {
		return k, nil
	}
	return nil, ErrUnknownKey
}

// joinRefetch returns the refetch in flight, or starts one (start is then
// true) unless one ended within every; nil when neither.
func (r *keyring) joinRefetch(now time.Time, every time.Duration) (_ *refetch, start bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.refetching != nil {
		return r.refetching, false
	}
	if !r.lastRefetch.IsZero() && now.Sub(r.lastRefetch) < every {
		return nil, false
	}
	r.refetching = &refetch{done: make(chan struct{})}
	return r.refetching, true
}

// endRefetch ends f with the fetch's error. Every end starts the interval
// before the next refetch, a failure too: while the server fails, calls
// do not each fetch again. A refusal of the credentials the fetch was
// made with does not: it says nothing of the keys, and another caller's
// credentials may read them.
func (r *keyring) endRefetch(f *refetch, err error, now time.Time) {
	r.mu.Lock()
	f.refused = refused(err)
	if !f.refused {
		r.lastRefetch = now
	}
	r.refetching = nil
	r.mu.Unlock()
	close(f.done)
}

// refused reports whether err says the server refused the fetch for its
// credentials.
func refused(err error) bool {
	var r interface{ Refused() bool }
	return errors.As(err, &r) && r.Refused()
}
