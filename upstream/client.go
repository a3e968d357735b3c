// Package upstream is an HTTP client for Dintero's auth endpoints. It knows
// nothing of gRPC: it escapes paths, authenticates each call, retries what is
// safe to retry, and turns every answer into a typed result or a typed error
// that holds no secret.
package upstream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"
	"golang.org/x/net/http/httpguts"
)

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
	// Observer is told about every attempt, for metrics. Default none.
	Observer Observer
	// Now is the clock for token expiry. Default time.Now.
	Now func() time.Time
}

// Observer is told about each attempt and each token fetch. Its methods must
// be cheap and safe for concurrent use; their arguments hold no id or secret.
type Observer interface {
	// Attempt reports one HTTP attempt of op (DeleteClientGrant, Authorize,
	// Token): its number from 1, the status (0 when no answer came back) and
	// how long it took.
	Attempt(op string, attempt, status int, elapsed time.Duration)
	// TokenFetched reports a token fetched with the client credentials.
	TokenFetched()
	// BreakerState reports the circuit breaker's new state: closed,
	// half-open or open.
	BreakerState(state string)
}

type nopObserver struct{}

func (nopObserver) Attempt(string, int, int, time.Duration) {}
func (nopObserver) TokenFetched()                           {}
func (nopObserver) BreakerState(string)                     {}

// Call carries what a single call brings from its caller.
type Call struct {
	// Authorization is the caller's Authorization header value ("Bearer
	// …"), passed to Dintero as it came. Empty means the client credentials.
	Authorization string
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
}

// Client calls Dintero. It is safe for concurrent use.
type Client struct {
	opts    Options
	base    string
	http    *http.Client
	tokens  atomic.Pointer[map[string]*tokenSource] // by account
	sem     chan struct{}                           // nil when unbounded
	breaker *gobreaker.CircuitBreaker[*response]
}

// New returns a Client for opts.
func New(opts Options) (*Client, error) {
	u, err := url.Parse(opts.BaseURL)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("upstream: base URL %q is not an absolute URL", opts.BaseURL)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("upstream: base URL %q must have no query or fragment", opts.BaseURL)
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
	c := &Client{
		opts: opts,
		base: strings.TrimRight(u.String(), "/"),
		http: &http.Client{
			Transport: opts.Transport,
			// Never follow a redirect: authorize's 302 is its answer, and
			// no other call should be sent somewhere else.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	if opts.MaxConcurrent > 0 {
		c.sem = make(chan struct{}, opts.MaxConcurrent)
	}
	c.breaker = newBreaker(opts.Breaker, opts.Observer)
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
		if cr.AccountID == "" || cr.ClientID == "" || cr.ClientSecret == "" {
			return fmt.Errorf("upstream: credentials %d need an account id, a client id and a client secret", i)
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

// tokenSource returns the token source of account, nil without credentials.
func (c *Client) tokenSource(account string) *tokenSource {
	if m := c.tokens.Load(); m != nil {
		return (*m)[account]
	}
	return nil
}

// NewTransport returns the transport a Client uses by default: explicit
// dial, TLS-handshake and response-header timeouts, HTTP/2 to https hosts,
// and an idle pool sized for a busy facade (Go's default keeps only two idle
// connections per host, so bursts would open and close connections).
func NewTransport(responseHeaderTimeout time.Duration) *http.Transport {
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                  http.ProxyFromEnvironment,
		DialContext:            d.DialContext,
		ForceAttemptHTTP2:      true,
		TLSHandshakeTimeout:    5 * time.Second,
		ResponseHeaderTimeout:  responseHeaderTimeout,
		ExpectContinueTimeout:  time.Second,
		MaxIdleConns:           512,
		MaxIdleConnsPerHost:    256,
		IdleConnTimeout:        90 * time.Second,
		MaxResponseHeaderBytes: 64 << 10,
		// Dintero's bodies are small: gzip would cost more CPU than it
		// saves bytes.
		DisableCompression: true,
	}
}

func (c *Client) now() time.Time { return c.opts.Now() }

// CloseIdleConnections closes the idle connections to Dintero, as a
// server does when it stops.
func (c *Client) CloseIdleConnections() { c.http.CloseIdleConnections() }

// HasCredentials reports whether the client holds credentials for account,
// to authenticate calls that bring no token of their own.
func (c *Client) HasCredentials(account string) bool { return c.tokenSource(account) != nil }

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

// DeleteClientGrant deletes grant id of account oid and returns the deleted
// grant. It is idempotent, so it is retried on connection errors, 429, 502,
// 503 and 504.
func (c *Client) DeleteClientGrant(ctx context.Context, call Call, oid, id string) (*Grant, Meta, error) {
	path, err := c.path("accounts", oid, "auth", "client-grants", id)
	if err != nil {
		return nil, Meta{}, err
	}
	r := request{op: "DeleteClientGrant", method: http.MethodDelete, path: path, idempotent: true, account: oid}
	res, meta, err := c.send(ctx, call, &r)
	if err != nil {
		return nil, meta, err
	}
	if res.status/100 != 2 {
		return nil, meta, c.answerError(&r, res, fmt.Errorf("%w: HTTP %d to DELETE", ErrUnexpectedResponse, res.status))
	}
	g, err := DecodeGrant(res.body)
	if err != nil {
		return nil, meta, &Error{StatusCode: res.status, RequestID: meta.RequestID, Reason: err}
	}
	return g, meta, nil
}

// AuthorizeParams are the query parameters of authorize; those left empty
// are not sent.
type AuthorizeParams struct {
	OID              string
	Audience         string
	Scope            string
	ResponseType     string
	ClientID         string
	State            string
	RedirectURI      string
	VerificationCode string
	Connection       string
}

// Authorize redeems a one-time verification code. Dintero answers with a
// redirect, which is returned taken apart, not followed. The call is never
// retried once the request may have left the process, because the code
// works once.
func (c *Client) Authorize(ctx context.Context, call Call, p AuthorizeParams) (*Redirect, Meta, error) {
	path, err := c.path("accounts", p.OID, "auth", "authorize")
	if err != nil {
		return nil, Meta{}, err
	}
	q := make(url.Values, 8)
	for _, kv := range [...]struct{ k, v string }{
		{"audience", p.Audience},
		{"scope", p.Scope},
		{"response_type", p.ResponseType},
		{"client_id", p.ClientID},
		{"state", p.State},
		{"redirect_uri", p.RedirectURI},
		{"verification_code", p.VerificationCode},
		{"connection", p.Connection},
	} {
		if kv.v != "" {
			q[kv.k] = []string{kv.v}
		}
	}
	r := request{op: "Authorize", method: http.MethodPost, path: path, query: q.Encode(), secrets: []string{p.VerificationCode}, account: p.OID}
	res, meta, err := c.send(ctx, call, &r)
	if err != nil {
		return nil, meta, err
	}
	if res.status/100 != 2 && res.status/100 != 3 {
		return nil, meta, c.answerError(&r, res, fmt.Errorf("%w: HTTP %d to authorize", ErrUnexpectedResponse, res.status))
	}
	rd, err := ParseLocation(res.header.Get("Location"))
	if err != nil {
		return nil, meta, &Error{StatusCode: res.status, RequestID: meta.RequestID, Reason: err}
	}
	return rd, meta, nil
}

// answerError turns a non-success answer to r into an Error: Dintero's
// error for 4xx and 5xx, with r's secrets masked, else an Error with reason
// for a status the operation does not expect.
func (c *Client) answerError(r *request, res *response, reason error) *Error {
	if res.status >= 400 {
		return decodeError(res.status, res.header, res.body, c.now(), r.secretValues()...)
	}
	return &Error{StatusCode: res.status, RequestID: requestID(res.header), Reason: reason}
}

// path joins segments into an escaped path: each becomes exactly one
// segment, so that an id such as "../token", "a/b" or "x?y=1#z" can neither
// reach another endpoint nor add a query. Empty, "." and ".." are refused.
func (c *Client) path(segments ...string) (string, error) {
	var b strings.Builder
	for _, s := range segments {
		switch s {
		case "", ".", "..":
			return "", fmt.Errorf("%w: path segment %q cannot be sent", ErrInvalidArgument, s)
		}
		b.WriteByte('/')
		b.WriteString(url.PathEscape(s))
	}
	return b.String(), nil
}

// request is one logical call, which may take several attempts.
type request struct {
	op         string
	method     string
	path       string // escaped, without base
	query      string // encoded, may be empty
	body       []byte
	idempotent bool
	auth       string       // Authorization header value
	basic      *Credentials // HTTP Basic instead of auth
	requestID  string
	secrets    []string // further secrets the request carries
	account    string   // whose credentials apply without a caller token
}

// secretValues lists what r carries that must never travel back: its
// Authorization value and bearer token, its client secret, and the rest.
func (r *request) secretValues() []string {
	out := append([]string(nil), r.secrets...)
	if r.auth != "" {
		_, tok, _ := strings.Cut(r.auth, " ")
		out = append(out, r.auth, tok)
	}
	if r.basic != nil {
		out = append(out, r.basic.ClientSecret)
	}
	return out
}

// response is Dintero's answer with its body read.
type response struct {
	status   int
	header   http.Header
	body     []byte
	attempts int
}

// send authenticates r and runs it under the call's deadline (or the
// default timeout). A call on the facade's own token that Dintero refuses
// with 401 drops that token; an idempotent call then fetches a new one and is
// sent once more. Authorize is not: its verification code may be spent.
func (c *Client) send(ctx context.Context, call Call, r *request) (*response, Meta, error) {
	if c.sem != nil {
		select {
		case c.sem <- struct{}{}:
			defer func() { <-c.sem }()
		default:
			return nil, Meta{}, fmt.Errorf("%w (limit %d)", ErrBusy, c.opts.MaxConcurrent)
		}
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.opts.Timeout)
		defer cancel()
	}
	if call.RequestID != "" && httpguts.ValidHeaderFieldValue(call.RequestID) {
		r.requestID = call.RequestID
	}
	var meta Meta
	if call.Authorization != "" {
		if !httpguts.ValidHeaderFieldValue(call.Authorization) {
			return nil, meta, fmt.Errorf("%w: the authorization is not a valid HTTP header value", ErrInvalidArgument)
		}
		r.auth = call.Authorization
		return c.finish(c.do(ctx, r))
	}
	ts := c.tokenSource(r.account)
	if ts == nil {
		return nil, meta, fmt.Errorf("%w for account %s", ErrNoCredentials, r.account)
	}
	tok, err := ts.get(ctx)
	if err != nil {
		return nil, meta, err
	}
	r.auth = "Bearer " + tok
	res, err := c.do(ctx, r)
	if err != nil || res.status != http.StatusUnauthorized {
		return c.finish(res, err)
	}
	ts.drop(tok)
	if !r.idempotent {
		return c.finish(res, nil)
	}
	first := res.attempts
	if tok, err = ts.get(ctx); err != nil {
		return nil, Meta{Status: res.status, Attempts: first, RequestID: requestID(res.header)}, err
	}
	r.auth = "Bearer " + tok
	res, err = c.do(ctx, r)
	if res != nil {
		res.attempts += first
	}
	return c.finish(res, err)
}

// finish fills Meta from the last answer.
func (c *Client) finish(res *response, err error) (*response, Meta, error) {
	var m Meta
	if res != nil {
		m = Meta{Status: res.status, Attempts: res.attempts, RequestID: requestID(res.header)}
	}
	if err != nil {
		var e *Error
		if errors.As(err, &e) && m.RequestID == "" {
			m.RequestID = e.RequestID
		}
		return nil, m, err
	}
	return res, m, nil
}

// do sends r, retrying where that is safe, and returns the last answer with
// its body read. On error the returned response, if not nil, carries only the
// attempt count.
func (c *Client) do(ctx context.Context, r *request) (*response, error) {
	for attempt := 1; ; attempt++ {
		start := time.Now()
		res, err := c.once(ctx, r)
		if errors.Is(err, ErrCircuitOpen) {
			// Nothing was sent: neither an attempt nor worth another.
			return &response{attempts: attempt - 1}, err
		}
		status := 0
		if res != nil {
			status = res.status
		}
		c.opts.Observer.Attempt(r.op, attempt, status, time.Since(start))
		if err == nil {
			res.attempts = attempt
			if !r.idempotent || !retryableStatus(res.status) || attempt >= c.opts.MaxAttempts {
				return res, nil
			}
			wait := backoff(c.opts.BackoffBase, c.opts.BackoffMax, attempt)
			if ra := parseRetryAfter(res.header.Get("Retry-After"), c.now()); ra > 0 {
				wait = ra
			}
			if !sleep(ctx, wait) {
				return res, nil
			}
			continue
		}
		failed := &response{attempts: attempt}
		if ctx.Err() != nil || attempt >= c.opts.MaxAttempts || errors.Is(err, ErrBodyTooLarge) || !(r.idempotent || notSent(err)) {
			return failed, c.wrapErr(ctx, r, err)
		}
		if !sleep(ctx, backoff(c.opts.BackoffBase, c.opts.BackoffMax, attempt)) {
			return failed, c.wrapErr(ctx, r, err)
		}
	}
}

// wrapErr rewrites an attempt's error for the caller. Errors the client made
// itself pass unchanged; transport errors lose the URL.
func (c *Client) wrapErr(ctx context.Context, r *request, err error) error {
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	return transportError(ctx, r.method, r.path, err)
}

// once makes one attempt through the circuit breaker.
func (c *Client) once(ctx context.Context, r *request) (*response, error) {
	res, err := c.breaker.Execute(func() (*response, error) {
		res, err := c.attempt(ctx, r)
		if err == nil && res.status >= 500 {
			return res, errServerError
		}
		return res, err
	})
	switch {
	case errors.Is(err, errServerError):
		return res, nil
	case errors.Is(err, gobreaker.ErrOpenState), errors.Is(err, gobreaker.ErrTooManyRequests):
		return nil, ErrCircuitOpen
	}
	return res, err
}

// attempt makes one attempt and reads the whole body, up to the size limit.
func (c *Client) attempt(ctx context.Context, r *request) (*response, error) {
	u := c.base + r.path
	if r.query != "" {
		u += "?" + r.query
	}
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u, body)
	if err != nil {
		// The URL is built from escaped parts, so this is a bug; the
		// error may quote the URL, so it is not passed on.
		return nil, fmt.Errorf("%w: cannot build the request", ErrInvalidArgument)
	}
	h := req.Header
	h["Accept"] = []string{"application/json"}
	h["User-Agent"] = []string{c.opts.UserAgent}
	if r.body != nil {
		h["Content-Type"] = []string{"application/json"}
	}
	if r.basic != nil {
		req.SetBasicAuth(r.basic.ClientID, r.basic.ClientSecret)
	} else {
		h["Authorization"] = []string{r.auth}
	}
	if r.requestID != "" {
		h["X-Request-Id"] = []string{r.requestID}
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := readBody(resp, c.opts.MaxBodyBytes)
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > c.opts.MaxBodyBytes {
		return nil, &Error{StatusCode: resp.StatusCode, RequestID: requestID(resp.Header), Reason: fmt.Errorf("%w: over %d bytes", ErrBodyTooLarge, c.opts.MaxBodyBytes)}
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// readBody reads a response body up to max+1 bytes: one allocation of the
// right size when the length is announced, a growing buffer otherwise.
func readBody(resp *http.Response, max int64) ([]byte, error) {
	if n := resp.ContentLength; n >= 0 && n <= max {
		b := make([]byte, n)
		if _, err := io.ReadFull(resp.Body, b); err != nil {
			return nil, err
		}
		return b, nil
	}
	return io.ReadAll(io.LimitReader(resp.Body, max+1))
}
