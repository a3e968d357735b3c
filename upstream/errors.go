package upstream

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
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
		RequestID:  requestID(h),
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
	m := newMasker(secrets)
	e.Code = m.mask(scalarText(inner["code"]))
	e.Message = m.mask(scalarText(inner["message"]))
	var items []any
	if v, ok := inner["errors"]; ok && json.Unmarshal(v, &items, lenient...) == nil {
		for _, item := range items {
			e.Errors = append(e.Errors, m.maskJSON(item))
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
		e = &Error{StatusCode: res.status, RequestID: requestID(res.header), Reason: reason}
	}
	if n := len(r.uncertain); n > 0 && !uncertainStatus(res.status) {
		e.Uncertain = slices.Clone(r.uncertain)
	}
	return e
}

// credentialPattern finds an Authorization value echoed in text, whatever
// its secret: the scheme and the credential after it.
var credentialPattern = regexp.MustCompile(`(?i)\b(basic|bearer)\s+[A-Za-z0-9._~+/=-]{6,}`)

// jwtPattern finds a JWT (a token, an id_token) echoed in text, whole or
// cut after its payload.
var jwtPattern = regexp.MustCompile(`eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}(?:\.[A-Za-z0-9_-]*)?`)

// masker hides secrets in text Dintero wrote: each secret in every form a
// server may echo it (raw; base64 in both alphabets, with and without
// padding; URL-escaped once or twice, with upper- or lower-case hex), any
// Authorization value, and any JWT. A secret shorter than 4 bytes is
// masked where it stands as a word of its own: anywhere, it would garble
// the text.
type masker struct {
	forms, words []string
	// long are the secrets of at least minPrefix bytes: a cut copy of
	// one, its first minPrefix bytes or more, is masked too, and so is a
	// copy in other ASCII letter case.
	long []string
}

// minPrefix is the shortest cut copy of a secret that is masked.
const minPrefix = 16

func newMasker(secrets []string) masker {
	var forms, words, long []string
	for _, s := range secrets {
		switch {
		case s == "":
			continue
		case len(s) < 4:
			words = append(words, s)
			continue
		}
		if len(s) >= minPrefix {
			long = append(long, s)
		}
		b := []byte(s)
		for _, esc := range []string{url.QueryEscape(s), url.PathEscape(s), url.QueryEscape(url.QueryEscape(s))} {
			forms = append(forms, esc, lowerHex(esc))
		}
		forms = append(forms, s,
			base64.StdEncoding.EncodeToString(b), base64.RawStdEncoding.EncodeToString(b),
			base64.URLEncoding.EncodeToString(b), base64.RawURLEncoding.EncodeToString(b))
	}
	// Longest first, so that a form inside another is not masked half.
	slices.SortFunc(forms, func(a, b string) int { return len(b) - len(a) })
	return masker{forms: slices.Compact(forms), words: words, long: long}
}

// maskWord masks w in s wherever it stands as a word: no letter or digit
// touches it.
func maskWord(s, w string) string {
	var b strings.Builder
	for {
		i := strings.Index(s, w)
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		before, _ := utf8.DecodeLastRuneInString(s[:i])
		after, _ := utf8.DecodeRuneInString(s[i+len(w):])
		b.WriteString(s[:i])
		if i > 0 && isWordRune(before) || i+len(w) < len(s) && isWordRune(after) {
			b.WriteString(w)
		} else {
			b.WriteString("[REDACTED]")
		}
		s = s[i+len(w):]
	}
}

// maskFolded masks every copy of secret in s that differs from it only in
// the case of ASCII letters. Only ASCII is folded, so that byte offsets
// hold whatever the bytes (a secret need not be UTF-8).
func maskFolded(s, secret string) string {
	low, lowSecret := asciiLower(s), asciiLower(secret)
	if !strings.Contains(low, lowSecret) {
		return s
	}
	var b strings.Builder
	for {
		i := strings.Index(low, lowSecret)
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		b.WriteString("[REDACTED]")
		s, low = s[i+len(secret):], low[i+len(secret):]
	}
}

// asciiLower lower-cases the ASCII letters of s, leaving every other byte.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// maskPrefixes masks every copy of secret's first minPrefix bytes or
// more in s: a secret Dintero echoed cut.
func maskPrefixes(s, secret string) string {
	head := secret[:minPrefix]
	var b strings.Builder
	for {
		i := strings.Index(s, head)
		if i < 0 {
			if b.Len() == 0 {
				return s
			}
			b.WriteString(s)
			return b.String()
		}
		n := minPrefix
		for i+n < len(s) && n < len(secret) && s[i+n] == secret[n] {
			n++
		}
		b.WriteString(s[:i])
		b.WriteString("[REDACTED]")
		s = s[i+n:]
	}
}

func isWordRune(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }

// lowerHex lower-cases the hex digits of s's percent escapes.
func lowerHex(s string) string {
	b := []byte(s)
	for i := 0; i+2 < len(b); i++ {
		if b[i] == '%' {
			b[i+1], b[i+2] = toLower(b[i+1]), toLower(b[i+2])
		}
	}
	return string(b)
}

func toLower(c byte) byte {
	if 'A' <= c && c <= 'F' {
		return c + 'a' - 'A'
	}
	return c
}

func (m masker) mask(s string) string {
	for _, f := range m.forms {
		if strings.Contains(s, f) {
			s = strings.ReplaceAll(s, f, "[REDACTED]")
		}
	}
	for _, w := range m.words {
		if strings.Contains(s, w) {
			s = maskWord(s, w)
		}
	}
	for _, l := range m.long {
		s = maskFolded(s, l)
		s = maskPrefixes(s, l)
	}
	s = credentialPattern.ReplaceAllString(s, "$1 [REDACTED]")
	return jwtPattern.ReplaceAllString(s, "[REDACTED]")
}

// maskJSON masks every string, keys included, of a decoded JSON value.
func (m masker) maskJSON(v any) any {
	switch v := v.(type) {
	case string:
		return m.mask(v)
	case []any:
		for i := range v {
			v[i] = m.maskJSON(v[i])
		}
		return v
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[m.mask(k)] = m.maskJSON(x)
		}
		return out
	}
	return v
}

// requestID reads Dintero's request id from a response.
func requestID(h http.Header) string {
	if id := h.Get("Request-Id"); id != "" {
		return id
	}
	return h.Get("X-Request-Id")
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
	msg := newMasker(secrets).mask(err.Error())
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
