package upstream

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sony/gobreaker/v2"
	"golang.org/x/net/http/httpguts"
)

// request is one logical call, which may take several attempts. send and do
// record on it how the attempts went.
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

	attempts  int
	sent      bool
	uncertain []string
}

// secretValues lists what r carries that must never travel back: its
// Authorization value and bearer token, its client credentials, and the
// rest; masking covers their encoded forms too.
func (r *request) secretValues() []string {
	out := append([]string(nil), r.secrets...)
	if tok, ok := bearerToken(r.auth); ok {
		out = append(out, r.auth, tok)
	}
	if r.basic != nil {
		out = append(out, r.basic.ClientSecret, r.basic.ClientID+":"+r.basic.ClientSecret)
	}
	return out
}

// bearerToken returns the token of an Authorization value of the form
// "Bearer <token>" (RFC 6750 §2.1, the scheme in any case as RFC 7235
// allows): the scheme, one or more spaces, and one token68.
func bearerToken(auth string) (string, bool) {
	scheme, tok, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimLeft(tok, " ")
	if !token68(tok) {
		return "", false
	}
	return tok, true
}

// token68 reports whether s is a token68 of RFC 7235 §2.1: letters,
// digits and -._~+/, then any "=" padding.
func token68(s string) bool {
	end := len(strings.TrimRight(s, "="))
	if end == 0 {
		return false
	}
	for i := 0; i < end; i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-', c == '.', c == '_', c == '~', c == '+', c == '/':
		default:
			return false
		}
	}
	return true
}

// response is Dintero's answer with its body read, or as much of it as
// came before it broke off (cut): the status and the headers are the
// answer, the body only its detail.
type response struct {
	status int
	header http.Header
	body   []byte
	cut    bool
}

// path joins segments into an escaped path: each becomes exactly one
// segment, so that an id such as "../token", "a/b" or "x?y=1#z" can neither
// reach another endpoint nor add a query. Empty, "." and ".." are refused.
func (c *Client) path(segments ...string) (string, error) {
	var b strings.Builder
	n := 0
	for _, s := range segments {
		n += 1 + len(s)
	}
	b.Grow(n + n/2)
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

// send authenticates r and runs it under the call's deadline (or the
// default timeout). A call on the facade's own token that Dintero refuses
// with 401 drops that token; an idempotent call then fetches a new one and is
// sent once more. Authorize is not: its verification code may be spent.
func (c *Client) send(ctx context.Context, call Call, account string, r *request) (*response, Meta, error) {
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
	if call.Authorization != "" {
		tok, ok := bearerToken(call.Authorization)
		if !ok {
			// An unset $TOKEN gives "Bearer ": sent, it would spend a
			// verification code on a refusal.
			return nil, Meta{}, ErrBadAuthorization
		}
		r.auth = call.Authorization
		if len(r.auth) != len("Bearer ")+len(tok) || !strings.HasPrefix(r.auth, "Bearer ") {
			// The scheme as RFC 6750 spells it, one space.
			r.auth = "Bearer " + tok
		}
		return r.finish(c.do(ctx, r))
	}
	if call.Credentials == nil {
		return nil, Meta{}, fmt.Errorf("%w for account %s", ErrNoCredentials, account)
	}
	ts := call.Credentials.ts
	tok, err := ts.get(ctx)
	if err != nil {
		return nil, Meta{}, err
	}
	r.auth = "Bearer " + tok
	res, err := c.do(ctx, r)
	if err != nil || res.status != http.StatusUnauthorized {
		return r.finish(res, err)
	}
	ts.drop(tok)
	if !r.idempotent {
		return r.finish(res, nil)
	}
	if tok, err = ts.get(ctx); err != nil {
		_, meta, _ := r.finish(res, nil)
		return nil, meta, err
	}
	r.auth = "Bearer " + tok
	return r.finish(c.do(ctx, r))
}

// finish fills Meta from r and its last answer.
func (r *request) finish(res *response, err error) (*response, Meta, error) {
	m := Meta{Attempts: r.attempts, Sent: r.sent, Uncertain: r.uncertain}
	if res != nil {
		m.Status, m.RequestID = res.status, requestID(res.header)
	}
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			m.Status = e.StatusCode
			if m.RequestID == "" {
				m.RequestID = e.RequestID
			}
		}
		return nil, m, err
	}
	return res, m, nil
}

// do sends r, retrying where that is safe, and returns the last answer with
// its body read.
func (c *Client) do(ctx context.Context, r *request) (*response, error) {
	for attempt := 1; ; attempt++ {
		start := time.Now()
		res, err := c.once(ctx, r)
		if errors.Is(err, ErrCircuitOpen) {
			// Nothing was sent: neither an attempt nor worth another.
			return nil, err
		}
		r.attempts++
		status := 0
		if res != nil {
			status = res.status
		}
		c.opts.Observer.Attempt(r.op, attempt, status, time.Since(start))
		if err == nil {
			r.sent = true
			if uncertainStatus(res.status) {
				r.uncertain = append(r.uncertain, "HTTP "+strconv.Itoa(res.status))
			}
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
		var tooLarge *Error
		switch {
		case errors.As(err, &tooLarge):
			// An answer came, too large to read: its status is known.
			r.sent = true
		case !notSent(err):
			r.sent = true
			r.uncertain = append(r.uncertain, noAnswer(err))
		}
		if ctx.Err() != nil || attempt >= c.opts.MaxAttempts || tooLarge != nil || !(r.idempotent || notSent(err)) {
			return nil, c.wrapErr(ctx, r, err)
		}
		if !sleep(ctx, backoff(c.opts.BackoffBase, c.opts.BackoffMax, attempt)) {
			return nil, c.wrapErr(ctx, r, err)
		}
	}
}

// noAnswer describes an attempt that got no answer, without its URL.
func noAnswer(err error) string {
	var te interface{ Timeout() bool }
	if errors.As(err, &te) && te.Timeout() {
		return "no answer: timeout"
	}
	return "no answer: connection failed"
}

// wrapErr rewrites an attempt's error for the caller. Errors the client made
// itself pass unchanged; transport errors lose the URL.
func (c *Client) wrapErr(ctx context.Context, r *request, err error) error {
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	return transportError(ctx, r.method, r.path, err, r.secretValues()...)
}

// once makes one attempt through the circuit breaker.
func (c *Client) once(ctx context.Context, r *request) (*response, error) {
	cb := c.breaker
	if r.op == opKeys {
		cb = c.keysBreaker
	}
	res, err := cb.Execute(func() (*response, error) {
		res, err := c.attempt(ctx, r)
		switch {
		case err != nil && ctx.Err() != nil:
			// The caller's deadline or cancellation ended the attempt:
			// that says nothing of Dintero's health.
			return nil, &callerEnded{err}
		case err == nil && breakerFailure(res.status):
			return res, errServerError
		}
		return res, err
	})
	var ended *callerEnded
	switch {
	case errors.Is(err, errServerError):
		return res, nil
	case errors.As(err, &ended):
		return nil, ended.err
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
	// Every call asks for JSON, authorize too: Dintero's errors then come
	// as its JSON error body, and authorize may answer its redirect either
	// as a 302 or as {"redirect_uri": …}; both are read the same.
	h := make(http.Header, 5)
	h["Accept"] = []string{"application/json"}
	h["User-Agent"] = []string{c.opts.UserAgent}
	if r.body != nil {
		h["Content-Type"] = []string{"application/json"}
	}
	req.Header = h
	if r.basic != nil {
		req.SetBasicAuth(r.basic.ClientID, r.basic.ClientSecret)
	} else {
		h["Authorization"] = []string{r.auth}
	}
	if r.requestID != "" {
		h["X-Request-Id"] = []string{r.requestID}
	}
	resp, err := c.rt.RoundTrip(req)
	switch {
	case err != nil:
		if resp != nil && resp.Body != nil {
			resp.Body.Close()
		}
		if re := (tls.RecordHeaderError{}); errors.As(err, &re) && string(re.RecordHeader[:]) == "HTTP/" {
			// Plain HTTP where TLS was expected, as http.Client says.
			err = http.ErrSchemeMismatch
		}
		return nil, err
	case resp == nil:
		return nil, errors.New("the transport returned neither an answer nor an error")
	case resp.Body == nil && resp.ContentLength > 0:
		return nil, fmt.Errorf("the transport announced %d bytes and returned no body", resp.ContentLength)
	case resp.Body == nil:
		resp.Body = http.NoBody
	}
	defer resp.Body.Close()
	b, err := readBody(resp, c.opts.MaxBodyBytes)
	if err != nil {
		// The status and the headers came, and they are the answer: a 2xx
		// DELETE is done, a 3xx carries its Location. Only the body's
		// detail is lost.
		return &response{status: resp.StatusCode, header: resp.Header, cut: true}, nil
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
