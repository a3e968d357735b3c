package upstream

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/dintero-facade/dintero-facade/internal/mask"
)

// Sentinel errors name why a call failed when Dintero gave no usable answer,
// or gave one the operation cannot use. Test for them with errors.Is.
var (
	// ErrNoCredentials means the call had no caller token and the client has
	// no client credentials; nothing was sent.
	ErrNoCredentials = errors.New("no Dintero credentials: the call has no bearer token and the facade has no client credentials")
	// ErrBadAuthorization means the caller's authorization is not
	// "Bearer <token>" (the scheme in any case, one token68): an empty or
	// blank token, another scheme, more than one token. Nothing was sent.
	ErrBadAuthorization = errors.New(`the authorization is not "Bearer <token>"`)
	// ErrTokenFetch means the facade could not get a token with its client
	// credentials; it wraps the cause.
	ErrTokenFetch = errors.New("fetching a Dintero token with the client credentials")
	// ErrInvalidArgument means a path parameter cannot be sent safely (empty,
	// "." or ".."); nothing was sent.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrBusy means the bound on concurrent calls to Dintero
	// (Options.MaxConcurrent) was reached; nothing was sent.
	ErrBusy = errors.New("too many calls to Dintero in flight")
	// ErrCircuitOpen means Dintero kept failing, so the client stopped
	// calling it for a moment; nothing was sent.
	ErrCircuitOpen = errors.New("circuit open: Dintero keeps failing, so calls are paused")
	// ErrTransport means no HTTP answer came back: the connection failed,
	// was reset, or the transport gave up.
	ErrTransport = errors.New("transport failure")
	// ErrBodyTooLarge means the response body exceeded Options.MaxBodyBytes.
	ErrBodyTooLarge = errors.New("response body too large")
	// ErrDecode means a success body could not be decoded.
	ErrDecode = errors.New("undecodable response body")
	// ErrUnexpectedResponse means Dintero answered with a status or shape
	// the operation does not expect: a 3xx on DELETE, an authorize answer
	// that carries neither a token nor an error, a token answer without an
	// access_token.
	ErrUnexpectedResponse = errors.New("unexpected response")
)

// Error is an answer from Dintero that the call cannot use. For an HTTP
// error status (4xx, 5xx) Reason is nil and Code, Message and Errors hold
// Dintero's error body when it had one; otherwise Reason is one of the
// sentinel errors above and StatusCode what Dintero answered.
//
// Error never holds a token, a secret, a verification code or an id_token:
// it keeps Dintero's text, in which every form of what the request carried
// is masked.
type Error struct {
	// StatusCode is the HTTP status of Dintero's answer.
	StatusCode int
	// Code is Dintero's error code (error.code), as Dintero spelled it.
	Code string
	// Message is Dintero's error message (error.message).
	Message string
	// Errors holds Dintero's nested errors (error.errors), each as decoded
	// JSON (map[string]any, []any, string, float64, bool or nil).
	Errors []any
	// RequestID is Dintero's request id, from Request-Id or X-Request-Id.
	RequestID string
	// RetryAfter is Dintero's Retry-After, zero when absent or invalid.
	RetryAfter time.Duration
	// Uncertain describes the earlier attempts of a retried call whose
	// outcome is unknown (Meta.Uncertain): a DELETE answered 404 after one
	// of them may have deleted the grant itself.
	Uncertain []string
	// Reason is nil for an HTTP error status, else the sentinel error.
	Reason error
}

// Error describes the answer without any secret.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("dintero: HTTP ")
	b.WriteString(strconv.Itoa(e.StatusCode))
	if t := http.StatusText(e.StatusCode); t != "" {
		b.WriteString(" ")
		b.WriteString(t)
	}
	if e.Reason != nil {
		b.WriteString(": ")
		b.WriteString(e.Reason.Error())
	}
	if e.Code != "" {
		b.WriteString(": ")
		b.WriteString(e.Code)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	return b.String()
}

// Unwrap returns the sentinel reason, if any.
func (e *Error) Unwrap() error { return e.Reason }

// decodeError builds the Error for an HTTP error answer. A body of another
// shape (HTML from a proxy, empty, truncated) still gives an Error with the
// status: the body is only a bonus. Every form of any of secrets (what the
// request carried) that Dintero echoes is masked.
func decodeError(status int, h http.Header, body []byte, now time.Time, secrets ...string) *Error {
	e := &Error{
		StatusCode: status,
		RequestID:  requestID(h, secrets...),
		RetryAfter: parseRetryAfter(h.Get("Retry-After"), now),
	}
	// Dintero's error document, {"error":{"code","message","errors"}}, is
	// read part by part, leniently: a part that does not read is left out,
	// not the whole detail.
	outer := objectFields(body)
	if outer == nil {
		return e
	}
	inner := objectFields(outer["error"])
	if inner == nil {
		return e
	}
	m := mask.New(secrets...)
	e.Code = m.Text(scalarText(inner["code"]))
	e.Message = m.Text(scalarText(inner["message"]))
	var items []any
	if v, ok := inner["errors"]; ok && json.Unmarshal(v, &items, lenient...) == nil {
		for _, item := range items {
			e.Errors = append(e.Errors, m.JSON(item))
		}
	}
	return e
}

// lenient reads JSON as a server may write it: duplicate names (the last
// wins) and invalid UTF-8 (replaced) are not fatal.
var lenient = []json.Options{jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true)}

// objectFields returns the members of a JSON object, nil when b is not
// one.
func objectFields(b []byte) map[string]jsontext.Value {
	var fields map[string]jsontext.Value
	if len(b) == 0 || json.Unmarshal(b, &fields, lenient...) != nil {
		return nil
	}
	return fields
}

// scalarText returns a JSON string's text, or a number's or a boolean's
// literal; "" for anything else.
func scalarText(v jsontext.Value) string {
	var s string
	if json.Unmarshal(v, &s, lenient...) == nil {
		return s
	}
	switch k := v.Kind(); k {
	case '0', 't', 'f':
		return string(v)
	}
	return ""
}

// answerError turns a non-success answer to r into an Error: Dintero's
// error for 4xx and 5xx, with r's secrets masked, else an Error with reason
// for a status the operation does not expect.
func (c *Client) answerError(r *request, res *response, reason error) *Error {
	var e *Error
	if res.status >= 400 {
		e = decodeError(res.status, res.header, res.body, c.now(), r.secretValues()...)
	} else {
		e = &Error{StatusCode: res.status, RequestID: requestID(res.header, r.secretValues()...), Reason: reason}
	}
	if n := len(r.uncertain); n > 0 && !uncertainStatus(res.status) {
		e.Uncertain = slices.Clone(r.uncertain)
	}
	return e
}

// maxRequestIDLen bounds Dintero's request id as the facade passes it on;
// the caller's own x-request-id has the same bound.
const maxRequestIDLen = 128

// requestID reads Dintero's request id from a response, in a form that may
// travel to callers, logs and errors: the header is the server's text, and
// a proxy or a broken server may echo there what the request carried. Every
// form of secrets (what the request carried), any Authorization value and
// any JWT is masked; a byte that is not printable ASCII without spaces or
// quotes becomes '_' (no log line can be forged with it); and the id is cut
// to maxRequestIDLen bytes by mask.Cut, which frees no secret.
func requestID(h http.Header, secrets ...string) string {
	id := h.Get("Request-Id")
	if id == "" {
		id = h.Get("X-Request-Id")
	}
	if id == "" || len(id) <= maxRequestIDLen && safeID(id) && !mayHold(id, secrets) {
		// Dintero's usual id: nothing to mask, and no masker built for
		// each answer.
		return id
	}
	// Masked before the replacement, which would spoil the forms with a
	// space or a backslash (an Authorization value, an escaped copy), and
	// after it, which can make a secret of what was none: a secret with an
	// _ echoed with a tab there.
	m := mask.New(secrets...)
	b := []byte(m.Text(id))
	for i, c := range b {
		if c <= ' ' || c >= 0x7f || c == '"' || c == '\\' {
			b[i] = '_'
		}
	}
	return mask.Cut(m.Text(string(b)), maxRequestIDLen)
}

// safeID reports whether id is printable ASCII without spaces, quotes or
// backslashes.
func safeID(id string) bool {
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c >= 0x7f || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// mayHold reports whether a mask.Masker of secrets could find anything in
// id, which safeID took: false only when it surely finds nothing. Every
// form it masks is looked for here, or is longer than id, or has a space
// (an Authorization value): a JWT begins "eyJ"; a secret's copy (in any
// ASCII case) contains it, and so do its escapes when it has nothing to
// escape; its base64 forms contain the unpadded ones; a cut copy begins
// with its first 16 bytes.
func mayHold(id string, secrets []string) bool {
	if strings.Contains(id, "eyJ") {
		return true
	}
	var buf [maxRequestIDLen]byte
	for _, s := range secrets {
		switch {
		case s == "":
			continue
		case len(s) >= 16 && strings.Contains(id, s[:16]):
			return true
		case len(s) > len(id):
			continue
		case containsFold(id, s) || !unreserved(s):
			return true
		}
		for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
			if n := enc.EncodedLen(len(s)); n <= len(id) {
				enc.Encode(buf[:n], []byte(s))
				if strings.Contains(id, string(buf[:n])) {
					return true
				}
			}
		}
	}
	return false
}

// containsFold reports whether s contains sub in any ASCII letter case.
func containsFold(s, sub string) bool {
	if sub == "" {
		return true
	}
	first := sub[0] | 0x20 // an ASCII letter's lower case
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i]|0x20 == first && strings.EqualFold(s[i:i+len(sub)], sub) {
			return true
		}
	}
	return false
}

// unreserved reports whether s is made of URL-unreserved bytes only
// (letters, digits, -._~), which no escaping changes.
func unreserved(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '.', c == '_', c == '~':
		default:
			return false
		}
	}
	return true
}

// transportError rewrites an error from the transport so that it can
// travel: net/http's *url.Error prints the whole URL, and the authorize URL
// holds the verification code in its query; a transport that wraps another
// may quote it too, so the text is masked of the request's secrets. The
// result names the method and the path only, and keeps the cause for
// errors.Is: the caller's context error when the context ended, else
// ErrTransport.
func transportError(ctx context.Context, method, path string, err error, secrets ...string) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("%s %s: %w", method, path, context.Cause(ctx))
	}
	msg := mask.New(secrets...).Text(err.Error())
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("%s %s: %w: %w", method, path, ErrTransport, timeoutError{msg: msg})
	}
	return fmt.Errorf("%s %s: %w: %s", method, path, ErrTransport, msg)
}

// timeoutError marks a transport timeout (dial, TLS handshake, response
// headers) so that callers can tell it from a refused or reset connection.
type timeoutError struct{ msg string }

func (e timeoutError) Error() string { return e.msg }
func (e timeoutError) Timeout() bool { return true }
func (e timeoutError) Is(target error) bool {
	return target == context.DeadlineExceeded
}
