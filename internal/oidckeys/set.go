package oidckeys

import (
	"context"
	"crypto/rsa"
	"errors"
	"hash/maphash"
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
	// A caller with credentials of its own (not the facade's) brings the
	// keys of at most a quarter of them: past that its own least recently
	// used are dropped, so that a caller naming accounts at will cannot
	// push out the others'.
	MaxAccounts int
	// Timeout bounds each fetch.
	Timeout time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Set is the signing keys of the accounts called: a bounded cache, least
// recently used out first, of the accounts whose keys were had, each
// caller's share bounded. A fetch that failed leaves nothing in it, so
// that callers naming accounts at will cannot grow it. An account's fetch
// is shared by all the calls that wait for it, whatever their
// credentials, and no one caller's cancellation ends it; if the server
// refused it for the credentials it was made with, each waiter with other
// credentials fetches again with its own.
type Set struct {
	opts   Options
	rings  *lru.Cache[string, *keyring]
	flight singleflight.Group
	// seed hashes callers' credentials; held counts the accounts each
	// caller brought in (by hash), under mu.
	seed  maphash.Seed
	mu    sync.Mutex
	held  map[uint64]int
	quota int
	// refetched remembers when an unknown kid last made an account's keys
	// be fetched again, so that the bound outlives the account's keys
	// dropped from rings.
	refetched *lru.Cache[string, time.Time]
}

// New returns an empty Set. MaxAccounts must be positive.
func New(o Options) (*Set, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Set{opts: o, seed: maphash.MakeSeed(), held: map[uint64]int{}, quota: max(1, o.MaxAccounts/4)}
	var err error
	if s.rings, err = lru.NewWithEvict(o.MaxAccounts, s.evicted); err != nil {
		return nil, err
	}
	if s.refetched, err = lru.New[string, time.Time](o.MaxAccounts); err != nil {
		return nil, err
	}
	return s, nil
}

// evicted counts an account's keys dropped against the caller that
// brought them.
func (s *Set) evicted(_ string, r *keyring) {
	if r.owner == 0 {
		return
	}
	s.mu.Lock()
	if s.held[r.owner]--; s.held[r.owner] <= 0 {
		delete(s.held, r.owner)
	}
	s.mu.Unlock()
}

// keyring holds an account's signing keys. It exists only once a fetch
// succeeded.
type keyring struct {
	// owner is the hash of the credentials of the caller whose fetch
	// brought the keys in; 0 for the facade's own.
	owner       uint64
	mu          sync.Mutex
	keys        []Key
	byKid       map[string][]*rsa.PublicKey
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

// put stores keys fetched at now as account's, brought in by caller.
func (s *Set) put(account, caller string, keys []Key, now time.Time) {
	r, ok := s.rings.Get(account)
	if !ok {
		r = &keyring{}
		if caller != "" {
			r.owner = maphash.String(s.seed, caller) | 1
			s.makeRoom(r.owner)
		}
		r.lastRefetch, _ = s.refetched.Peek(account)
		if prev, found, _ := s.rings.PeekOrAdd(account, r); found {
			r = prev
		} else if r.owner != 0 {
			s.mu.Lock()
			s.held[r.owner]++
			s.mu.Unlock()
		}
	}
	byKid := make(map[string][]*rsa.PublicKey, len(keys))
	for _, k := range keys {
		byKid[k.ID] = append(byKid[k.ID], k.Public)
	}
	r.mu.Lock()
	r.keys, r.byKid, r.fetched = keys, byKid, now
	r.gen++
	r.mu.Unlock()
}

// makeRoom drops the least recently used account of owner's while owner
// holds its quota.
func (s *Set) makeRoom(owner uint64) {
	s.mu.Lock()
	full := s.held[owner] >= s.quota
	s.mu.Unlock()
	if !full {
		return
	}
	for _, account := range s.rings.Keys() { // oldest first
		if r, ok := s.rings.Peek(account); ok && r.owner == owner {
			s.rings.Remove(account)
			return
		}
	}
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
// the credentials f fetches with.
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

// fetch fetches account's keys into the set, one fetch at a time for all
// callers, unless keys were stored since the caller saw generation seen
// of them (a caller may join only after the fetch it waited for has
// ended). A fetch the server refused for another caller's credentials is
// made again with caller's (f).
func (s *Set) fetch(ctx context.Context, account, caller string, f Fetcher, seen uint64) error {
	for {
		ch := s.flight.DoChan(account, func() (any, error) {
			if s.gen(account) != seen {
				return caller, nil
			}
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.Timeout)
			defer cancel()
			keys, err := f.FetchKeys(fctx)
			if err == nil {
				s.put(account, caller, keys, s.opts.Now())
			}
			return caller, err
		})
		select {
		case res := <-ch:
			if res.Err == nil || !refused(res.Err) || res.Val.(string) == caller {
				return res.Err
			}
		case <-ctx.Done():
			return errWaiting(ctx)
		}
	}
}

// Keys returns account's keys of kid: more than one when its keys list
// the kid more than once (RFC 7517 §4.5 allows it for equivalent
// alternatives), each of which may verify a token. A kid the set does not
// hold makes it fetch the account's keys again with f, at most every
// RefetchEvery: the calls that meet an unknown kid while that refetch is
// in flight wait for it, and if the server refused it for its
// credentials, each tries once with its own. ErrUnknownKey when no key
// has kid even then.
func (s *Set) Keys(ctx context.Context, account, caller, kid string, f Fetcher) ([]*rsa.PublicKey, error) {
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
		if r.endRefetch(ref, err, s.opts.Now()) {
			s.refetched.Add(account, s.opts.Now())
		}
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

// key returns the keys of kid, if the ring holds any; a nil ring holds
// none.
func (r *keyring) key(kid string) []*rsa.PublicKey {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.byKid[kid]
}

// keyOrErr is key, or ErrUnknownKey.
func (r *keyring) keyOrErr(kid string) ([]*rsa.PublicKey, error) {
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

// endRefetch ends f with the fetch's error, and reports whether it
// started the interval before the next refetch. Every end does, a failure
// too: while the server fails, calls do not each fetch again. A refusal
// of the credentials the fetch was made with does not: it says nothing of
// the keys, and another caller's credentials may read them.
func (r *keyring) endRefetch(f *refetch, err error, now time.Time) bool {
	r.mu.Lock()
	f.refused = refused(err)
	if !f.refused {
		r.lastRefetch = now
	}
	r.refetching = nil
	r.mu.Unlock()
	close(f.done)
	return !f.refused
}

// refused reports whether err says the server refused the fetch for its
// credentials.
func refused(err error) bool {
	var r interface{ Refused() bool }
	return errors.As(err, &r) && r.Refused()
}
