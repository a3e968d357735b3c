// Package upstream is an HTTP client for Dintero's auth endpoints. It knows
// nothing of gRPC: it escapes paths, authenticates each call, retries what is
// safe to retry, and turns every answer into a typed result or a typed error
// that holds no secret.
package upstream

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"
	"golang.org/x/sync/singleflight"
)

// DefaultBaseURL is Dintero's API root.
const DefaultBaseURL = "https://api.dintero.com/v1"

// accountPattern is Dintero's account id pattern
// ^[PT]{1}(?=(?:.{3}|.{8})$)[0-9]*$ without the look-ahead, which RE2
// lacks: P or T, then exactly 3 or 8 digits.
var accountPattern = regexp.MustCompile(`^[PT](?:[0-9]{3}|[0-9]{8})$`)

// ValidAccountID reports whether s is a Dintero account id: P (production)
// or T (test), then exactly 3 or 8 digits.
func ValidAccountID(s string) bool { return accountPattern.MatchString(s) }

// defaultAudience is the audience of the facade's tokens for account unless
// its credentials name another: Dintero identifies an account's API as
// https://api.dintero.com/v1/accounts/{oid} whatever URL the facade calls
// (a proxy, a mock).
func defaultAudience(account string) string { return "https://api.dintero.com/v1/accounts/" + account }

// CheckBaseURL accepts Dintero's base URL: absolute, https (or http to a
// loopback host, for local runs and tests: tokens must not cross a network
// in clear), without user, query or fragment.
func CheckBaseURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Scheme == "" {
		return errors.New("the base URL of Dintero is not an absolute URL")
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		// Not quoted: a user part may hold a password.
		return errors.New("the base URL of Dintero must have no user, query or fragment")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if isLoopback(u.Hostname()) {
			return nil
		}
		return fmt.Errorf("the base URL of Dintero, %q: http is allowed only for a loopback host (127.0.0.0/8, ::1, localhost); use https", raw)
	}
	return fmt.Errorf("the base URL of Dintero, %q: scheme must be https", raw)
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Options configures a Client. The zero value of every field but BaseURL
// means its default.
type Options struct {
	// BaseURL is Dintero's API root, such as https://api.dintero.com/v1.
	BaseURL string
	// Credentials are the client credentials of each account the facade
	// may act for, used for calls to it without a token of their own. At
	// most one per account. SetCredentials replaces them at run time.
	Credentials []Credentials
	// Timeout bounds a call whose context has no deadline, and each token
	// fetch. Default 10 s.
	Timeout time.Duration
	// MaxAttempts bounds the attempts of a retryable call. Default 3.
	MaxAttempts int
	// BackoffBase and BackoffMax shape the full-jitter backoff between
	// attempts. Defaults 100 ms and 2 s.
	BackoffBase, BackoffMax time.Duration
	// MaxBodyBytes bounds a response body. Default 1 MiB.
	MaxBodyBytes int64
	// UserAgent is sent on every call. Default "dintero-facade".
	UserAgent string
	// Transport carries the calls. Default NewTransport(Timeout).
	Transport http.RoundTripper
	// MaxConcurrent bounds the calls to Dintero in flight, so that one
	// caller's burst cannot exhaust the connection pool or Dintero's rate
	// limit for everyone; a call over it fails at once with ErrBusy.
	// Default 0: unbounded.
	MaxConcurrent int
	// Breaker configures the circuit breaker. Zero values mean defaults.
	Breaker BreakerOptions
	// IDToken configures the verification of authorize's id_token. Zero
	// values mean defaults.
	IDToken IDTokenOptions
	// Observer is told about every attempt, for metrics. Default none.
	Observer Observer
	// Now is the clock for token expiry. Default time.Now.
	Now func() time.Time
}

// Observer is told about each attempt and each token fetch. Its methods must
// be cheap and safe for concurrent use; their arguments hold no id or secret.
type Observer interface {
	// Attempt reports one HTTP attempt of op (DeleteClientGrant, Authorize,
	// Token, Keys): its number from 1, the status (0 when no answer came back) and
	// how long it took.
	Attempt(op string, attempt, status int, elapsed time.Duration)
	// TokenFetched reports a token fetched with the client credentials.
	TokenFetched()
	// BreakerState reports the circuit breaker's new state: closed,
	// half-open or open.
	BreakerState(state string)
}

// KeysBreakerObserver is an Observer that is also told about the keys
// endpoint's own breaker.
type KeysBreakerObserver interface {
	// KeysBreakerState reports the keys breaker's new state: closed,
	// half-open or open.
	KeysBreakerState(state string)
}

type nopObserver struct{}

func (nopObserver) Attempt(string, int, int, time.Duration) {}
func (nopObserver) TokenFetched()                           {}
func (nopObserver) BreakerState(string)                     {}

// Call carries what a single call brings from its caller, and the
// credentials it was allowed to use.
type Call struct {
	// Authorization is the caller's Authorization header value:
	// "Bearer <token>", the scheme in any case and one or more spaces,
	// else the call fails with ErrBadAuthorization and sends nothing. The
	// token is passed to Dintero as it came, after "Bearer ". Empty means
	// Credentials.
	Authorization string
	// Credentials are the facade's credentials for the call's account,
	// from Client.CredentialsFor: the snapshot the caller's permission was
	// decided on. Nil without a caller token means ErrNoCredentials.
	Credentials *Source
	// RequestID is the caller's request id, sent as X-Request-Id.
	RequestID string
}

// Meta describes how a call went, for logs and metrics. It is filled on
// success and on error.
type Meta struct {
	// Status is the HTTP status of Dintero's last answer, 0 if none came.
	Status int
	// Attempts counts the HTTP attempts made, token fetches excluded.
	Attempts int
	// RequestID is Dintero's request id from its last answer.
	RequestID string
	// Sent reports whether the request may have reached Dintero: false
	// only when the client knows nothing left the process (a refused
	// connection, a refusal of its own, a failed token fetch).
	Sent bool
	// Uncertain describes, in order, the attempts whose outcome is
	// unknown: no answer after the request may have left ("no answer:
	// timeout", "no answer: connection failed"), or a 502, 503 or 504 from
	// a proxy that may have passed it on ("HTTP 503").
	Uncertain []string
	// Undecoded names the parts of a success answer that could not be read
	// and were left unset ("body" for all of it).
	Undecoded []string
}

// Client calls Dintero. It is safe for concurrent use.
type Client struct {
	opts Options
	base string
	// rt sends each attempt once. It is called directly, not through an
	// http.Client: the facade never follows a redirect (authorize's 302 is
	// its answer), and a Client copies every request's headers in case it
	// would.
	rt      http.RoundTripper
	tokens  atomic.Pointer[map[string]*tokenSource] // by account
	sem     chan struct{}                           // nil when unbounded
	breaker *gobreaker.CircuitBreaker[*response]
	// keysBreaker guards the keys endpoint alone: an outage of it pauses
	// Authorize, not the calls that need no keys.
	keysBreaker *gobreaker.CircuitBreaker[*response]
	// keys holds the accounts' signing keys; keysFlight shares a fetch
	// among the calls that authenticate alike.
	keys       keySet
	keysFlight singleflight.Group
}

// New returns a Client for opts.
func New(opts Options) (*Client, error) {
	if err := CheckBaseURL(opts.BaseURL); err != nil {
		return nil, fmt.Errorf("upstream: %w", err)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 3
	}
	if opts.BackoffBase <= 0 {
		opts.BackoffBase = 100 * time.Millisecond
	}
	if opts.BackoffMax <= 0 {
		opts.BackoffMax = 2 * time.Second
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 1 << 20
	}
	if opts.UserAgent == "" {
		opts.UserAgent = "dintero-facade"
	}
	if opts.Transport == nil {
		opts.Transport = NewTransport(opts.Timeout)
	}
	if opts.Observer == nil {
		opts.Observer = nopObserver{}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.IDToken.Leeway <= 0 {
		opts.IDToken.Leeway = 30 * time.Second
	}
	if opts.IDToken.KeysFor <= 0 {
		opts.IDToken.KeysFor = time.Hour
	}
	if opts.IDToken.RefetchEvery <= 0 {
		opts.IDToken.RefetchEvery = 10 * time.Second
	}
	if opts.IDToken.MaxAccounts <= 0 {
		opts.IDToken.MaxAccounts = 1000
	}
	c := &Client{
		opts: opts,
		base: strings.TrimRight(opts.BaseURL, "/"),
		rt:   opts.Transport,
	}
	if opts.MaxConcurrent > 0 {
		c.sem = make(chan struct{}, opts.MaxConcurrent)
	}
	c.breaker = newBreaker("dintero", opts.Breaker, opts.Observer.BreakerState)
	keysState := func(string) {}
	if o, ok := opts.Observer.(KeysBreakerObserver); ok {
		keysState = o.KeysBreakerState
	}
	c.keysBreaker = newBreaker("dintero-keys", opts.Breaker, keysState)
	c.keys = newKeySet(opts.IDToken.MaxAccounts)
	if err := c.SetCredentials(opts.Credentials); err != nil {
		return nil, err
	}
	return c, nil
}

// SetCredentials replaces the client credentials, checked whole: on error
// nothing changes. Accounts whose credentials did not change keep their
// cached token; the tokens of the others are dropped. Calls in flight finish
// with the credentials they started with.
func (c *Client) SetCredentials(creds []Credentials) error {
	old := c.tokens.Load()
	next := make(map[string]*tokenSource, len(creds))
	for i, cr := range creds {
		if err := cr.Check(); err != nil {
			return fmt.Errorf("upstream: credentials %d: %w", i+1, err)
		}
		if _, dup := next[cr.AccountID]; dup {
			return fmt.Errorf("upstream: account %s has credentials twice", cr.AccountID)
		}
		if old != nil {
			if ts, ok := (*old)[cr.AccountID]; ok && ts.creds == cr {
				next[cr.AccountID] = ts
				continue
			}
		}
		next[cr.AccountID] = &tokenSource{c: c, creds: cr}
	}
	c.tokens.Store(&next)
	return nil
}

// Source is the facade's credentials for one account as they were when
// CredentialsFor was asked: a reload afterwards does not change which
// credentials a call holding it uses.
type Source struct{ ts *tokenSource }

// CredentialsFor returns the facade's credentials for account, nil when it
// holds none.
func (c *Client) CredentialsFor(account string) *Source {
	if m := c.tokens.Load(); m != nil {
		if ts := (*m)[account]; ts != nil {
			return &Source{ts: ts}
		}
	}
	return nil
}

func (c *Client) now() time.Time { return c.opts.Now() }

// CloseIdleConnections closes the idle connections to Dintero, as a
// server does when it stops.
func (c *Client) CloseIdleConnections() {
	if ci, ok := c.rt.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}

// Accounts lists the accounts the client holds credentials for.
func (c *Client) Accounts() []string {
	m := c.tokens.Load()
	if m == nil {
		return nil
	}
	out := make([]string, 0, len(*m))
	for a := range *m {
		out = append(out, a)
	}
	sort.Strings(out)
	return out
}
