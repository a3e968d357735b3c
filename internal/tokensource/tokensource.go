// Package tokensource hands out an access token fetched with client
// credentials, as golang.org/x/oauth2's clientcredentials TokenSource
// does: cached until shortly before it expires, fetched once however many
// callers wait, and dropped when the server refuses it. It knows nothing of
// how a token is fetched.
package tokensource

import (
	"context"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// Token is an access token as a token endpoint answers it.
type Token struct {
	// Value is the access token.
	Value string
	// ExpiresIn is its lifetime in seconds, OAuth's expires_in: zero or
	// less means it is used for the call that fetched it only.
	ExpiresIn int64
}

// Fetch fetches a token. A Source calls it with a context of its own,
// which keeps the values of the caller that started the fetch (its request
// id, its trace) but not its cancellation.
type Fetch func(ctx context.Context) (Token, error)

// Options configure a Source.
type Options struct {
	// Timeout bounds each fetch.
	Timeout time.Duration
	// Now is the clock for expiry. Default time.Now.
	Now func() time.Time
}

// MaxLife caps the lifetime of a token: an absurd expires_in is cut to a
// day, so that a refresh still comes.
const MaxLife = 24 * time.Hour

// MaxMargin caps how early a cached token stops being handed out: a tenth
// of its lifetime, at most this.
const MaxMargin = 5 * time.Minute

// Source hands out one account's token. Concurrent callers share one
// fetch, which is not tied to any one caller's context: a caller that
// gives up does not fail the others waiting on it.
type Source struct {
	fetch Fetch
	opts  Options
	group singleflight.Group

	mu      sync.Mutex
	token   string
	refresh time.Time // when the token stops being handed out
}

// New returns a Source that fetches with fetch.
func New(fetch Fetch, o Options) *Source {
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Source{fetch: fetch, opts: o}
}

// Token returns a valid access token, fetching one if none is cached.
func (s *Source) Token(ctx context.Context) (string, error) {
	if token, ok := s.cached(); ok {
		return token, nil
	}
	ch := s.group.DoChan("token", func() (any, error) {
		// A caller that found no token may join only after the fetch
		// that was in flight then has ended, and stored its token.
		if token, ok := s.cached(); ok {
			return token, nil
		}
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.Timeout)
		defer cancel()
		tok, err := s.fetch(fctx)
		if err != nil {
			return "", err
		}
		s.store(tok)
		return tok.Value, nil
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return "", r.Err
		}
		return r.Val.(string), nil
	case <-ctx.Done():
		return "", fmt.Errorf("waiting for a token: %w", context.Cause(ctx))
	}
}

// cached returns the cached token while it is handed out.
func (s *Source) cached() (string, bool) {
	now := s.opts.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.token != "" && now.Before(s.refresh) {
		return s.token, true
	}
	return "", false
}

// store caches tok until a margin before it expires: a tenth of its
// lifetime, at most MaxMargin. A token without a positive lifetime is not
// handed out again: only the callers that shared its fetch use it.
func (s *Source) store(tok Token) {
	life := time.Duration(min(max(tok.ExpiresIn, 0), int64(MaxLife/time.Second))) * time.Second
	margin := min(MaxMargin, life/10)
	s.mu.Lock()
	s.token = tok.Value
	s.refresh = s.opts.Now().Add(life - margin)
	s.mu.Unlock()
}

// Drop forgets token if it is still the cached one, after the server
// refused it. A token fetched meanwhile by another caller is kept.
func (s *Source) Drop(token string) {
	s.mu.Lock()
	if s.token == token {
		s.token = ""
	}
	s.mu.Unlock()
}
