// Package upstream is an HTTP client for Dintero's auth endpoints. It knows
// nothing of gRPC: it escapes paths, authenticates each call, retries what is
// safe to retry, and turns every answer into a typed result or a typed error
// that holds no secret. Its operations, one file each, are declared as
// Operations beside the code that calls them; the pieces they lean on are
// packages of their own: the transport (internal/h2transport), the token
// cache (internal/tokensource), the signing keys (internal/oidckeys), the
// id_token's verification (internal/idtoken) and the masking of Dintero's
// texts (internal/mask).
package upstream

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/dintero-facade/dintero-facade/internal/h2transport"
	"github.com/dintero-facade/dintero-facade/internal/idtoken"
	"github.com/dintero-facade/dintero-facade/internal/oidckeys"
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

// CheckBaseURL accepts Dintero's base URL: absolute, https (or http to a
// loopback host, for local runs and tests: tokens must not cross a network
// in clear), without user, query or fragment.
func CheckBaseURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Scheme == "" {
		return errors.New("the base URL of Dintero is not an absolute URL: want one such as https://api.dintero.com/v1")
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		// Not quoted: a user part may hold a password.
		return errors.New("the base URL of Dintero must have no user, query or fragment")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if IsLoopbackHost(u.Hostname()) {
			return nil
		}
		return fmt.Errorf("the base URL of Dintero, %q: http is allowed only for a loopback host (127.0.0.0/8, ::1, localhost); use https", raw)
	}
	return fmt.Errorf("the base URL of Dintero, %q: scheme must be https", raw)
}

// IsLoopbackHost reports whether host (a name or an address, without a
// port) names only loopback addresses: localhost, 127.0.0.0/8 or ::1. An
// empty host (all interfaces) does not.
func IsLoopbackHost(host string) bool {
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
	// and keys fetch. Default 10 s.
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
	// Transport carries the calls. Default h2transport.New(Timeout).
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

// Client calls Dintero. It is safe for concurrent use.
type Client struct {
	opts Options
	base string
	// rt sends each attempt once. It is called directly, not through an
	// http.Client: the facade never follows a redirect (authorize's 302 is
	// its answer), and a Client copies every request's headers in case it
	// would.
	rt     http.RoundTripper
	tokens atomic.Pointer[map[string]*TokenSource] // by account
	sem    chan struct{}                           // nil when unbounded
	// keysSem bounds the keys fetches in flight, apart from sem.
	keysSem chan struct{}
	breaker *gobreaker.CircuitBreaker[*response]
	// keysBreaker guards the keys endpoint alone: an outage of it pauses
	// Authorize, not the calls that need no keys.
	keysBreaker *gobreaker.CircuitBreaker[*response]
	// keys holds the accounts' signing keys, and verifier checks
	// authorize's id_token against them.
	keys     *oidckeys.Set
	verifier *idtoken.Verifier
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
		opts.Transport = h2transport.New(opts.Timeout)
	}
	if opts.Observer == nil {
		opts.Observer = nopObserver{}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	opts.IDToken = opts.IDToken.withDefaults()
	c := &Client{
		opts: opts,
		base: strings.TrimRight(opts.BaseURL, "/"),
		rt:   opts.Transport,
	}
	if opts.MaxConcurrent > 0 {
		c.sem = make(chan struct{}, opts.MaxConcurrent)
	}
	c.keysSem = make(chan struct{}, opts.IDToken.MaxFetches)
	c.breaker = newBreaker("dintero", opts.Breaker, opts.Observer.BreakerState)
	keysState := func(string) {}
	if o, ok := opts.Observer.(KeysBreakerObserver); ok {
		keysState = o.KeysBreakerState
	}
	c.keysBreaker = newBreaker("dintero-keys", opts.Breaker, keysState)
	var err error
	c.keys, err = oidckeys.New(oidckeys.Options{KeysFor: opts.IDToken.KeysFor, RefetchEvery: opts.IDToken.RefetchEvery,
		MaxAccounts: opts.IDToken.MaxAccounts, Timeout: opts.Timeout, Now: opts.Now})
	if err != nil {
		return nil, fmt.Errorf("upstream: %w", err)
	}
	c.verifier = idtoken.New(idtoken.Options{Issuer: opts.IDToken.Issuer, Leeway: opts.IDToken.Leeway, Now: opts.Now})
	if err := c.SetCredentials(opts.Credentials); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Client) now() time.Time { return c.opts.Now() }

// CloseIdleConnections closes the idle connections to Dintero, as a
// server does when it stops.
func (c *Client) CloseIdleConnections() {
	if ci, ok := c.rt.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}
