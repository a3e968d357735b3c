package upstream

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/sony/gobreaker/v2"
)

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
		c.opts.Observer.Attempt(r.op.name, attempt, status, time.Since(start))
		if err == nil {
			r.sent = true
			if uncertainStatus(res.status) {
				r.uncertain = append(r.uncertain, "HTTP "+strconv.Itoa(res.status))
			}
			if !r.op.idempotent || !retryableStatus(res.status) || attempt >= c.opts.MaxAttempts {
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
		if ctx.Err() != nil || attempt >= c.opts.MaxAttempts || tooLarge != nil || !(r.op.idempotent || notSent(err)) {
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
	return transportError(ctx, r.op.method, r.path, err, r.secretValues()...)
}

// once makes one attempt through the circuit breaker.
func (c *Client) once(ctx context.Context, r *request) (*response, error) {
	cb := c.breaker
	if r.op == OpKeys {
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
	req, err := http.NewRequestWithContext(ctx, r.op.method, u, body)
	if err != nil {
		// The URL is built from escaped parts, so this is a bug; the
		// error may quote the URL, so it is not passed on.
		return nil, fmt.Errorf("%w: cannot build the request", ErrInvalidArgument)
	}
	// Every call asks for JSON, authorize too: Dintero's errors then come
	// as its JSON error body, and authorize may answer its redirect either
	// as a 302 or as {"redirect_uri": …}; both are read the same.
	// The values share one array, each slice capped at its one value, so
	// that a transport's Header.Add to one copies it instead of writing
	// over its neighbour.
	vals := make([]string, 0, 5)
	value := func(v string) []string {
		vals = append(vals, v)
		return vals[len(vals)-1 : len(vals) : len(vals)]
	}
	h := make(http.Header, 5)
	h["Accept"] = value("application/json")
	h["User-Agent"] = value(c.opts.UserAgent)
	if r.body != nil {
		h["Content-Type"] = value("application/json")
	}
	req.Header = h
	if r.basic != nil {
		req.SetBasicAuth(r.basic.ClientID, r.basic.ClientSecret)
	} else {
		h["Authorization"] = value(r.auth)
	}
	if r.requestID != "" {
		h["X-Request-Id"] = value(r.requestID)
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
		return nil, &Error{StatusCode: resp.StatusCode, RequestID: requestID(resp.Header, r.secretValues()...), Reason: fmt.Errorf("%w: over %d bytes", ErrBodyTooLarge, c.opts.MaxBodyBytes)}
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
