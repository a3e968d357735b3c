package upstream

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// request is one logical call, which may take several attempts. send and do
// record on it how the attempts went.
type request struct {
	op        *Operation
	path      string // escaped, without base
	query     string // encoded, may be empty
	body      []byte
	auth      string       // Authorization header value
	basic     *Credentials // HTTP Basic instead of auth
	requestID string
	secrets   []string // further secrets the request carries

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

// send authenticates r and runs it under the call's deadline (or the
// default timeout). A call on the facade's own token that Dintero refuses
// with 401 drops that token; an idempotent call then fetches a new one and is
// sent once more. Authorize is not: its verification code may be spent.
func (c *Client) send(ctx context.Context, call Call, account string, r *request) (*response, Meta, error) {
	sem, limit := c.sem, c.opts.MaxConcurrent
	if r.op == OpKeys {
		// The keys fetches have a bound of their own: they outlive their
		// callers, and must not hold the bound of the calls that need no
		// keys.
		sem, limit = c.keysSem, c.opts.IDToken.MaxFetches
	}
	if sem != nil {
		select {
		case sem <- struct{}{}:
			defer func() { <-sem }()
		default:
			return nil, Meta{}, fmt.Errorf("%w (limit %d)", ErrBusy, limit)
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
	if call.TokenSource == nil {
		return nil, Meta{}, fmt.Errorf("%w for account %s", ErrNoCredentials, account)
	}
	ts := call.TokenSource.tokens
	tok, err := ts.Token(ctx)
	if err != nil {
		return nil, Meta{}, err
	}
	r.auth = "Bearer " + tok
	res, err := c.do(ctx, r)
	if err != nil || res.status != http.StatusUnauthorized {
		return r.finish(res, err)
	}
	ts.Drop(tok)
	if !r.op.idempotent {
		return r.finish(res, nil)
	}
	if tok, err = ts.Token(ctx); err != nil {
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
		m.Status, m.RequestID = res.status, requestID(res.header, r.secretValues()...)
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
