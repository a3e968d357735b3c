package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Sentinel errors name why a call failed when Dintero gave no usable answer,
// or gave one the operation cannot use. Test for them with errors.Is.
var (
	// ErrNoCredentials means the call had no caller token and the client has
	// no client credentials; nothing was sent.
	ErrNoCredentials = errors.New("no Dintero credentials: the call has no bearer token and the facade has no client credentials")
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
	// the operation does not expect: a 3xx on DELETE, a success without a
	// Location on authorize, a token without an access_token.
	ErrUnexpectedResponse = errors.New("unexpected response")
)

// Error is an answer from Dintero that the call cannot use. For an HTTP
// error status (4xx, 5xx) Reason is nil and Code, Message and Errors hold
// Dintero's error body when it had one; otherwise Reason is one of the
// sentinel errors above and StatusCode what Dintero answered.
//
// Error never holds a token, a secret, a verification code or an id_token:
// it keeps Dintero's message, which Dintero writes for the caller.
type Error struct {
	// StatusCode is the HTTP status of Dintero's answer.
	StatusCode int
	// Code is Dintero's error code (error.code), as Dintero spelled it.
	Code string
	// Message is Dintero's error message (error.message).
	Message string
	// Errors holds Dintero's nested validation errors (error.errors).
	Errors []json.RawMessage
	// RequestID is Dintero's request id, from Request-Id or X-Request-Id.
	RequestID string
	// RetryAfter is Dintero's Retry-After, zero when absent or invalid.
	RetryAfter time.Duration
	// Reason is nil for an HTTP error status, else the sentinel error.
	Reason error
}

// Error describes the answer without any secret.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("dintero: HTTP ")
	fmt.Fprintf(&b, "%d", e.StatusCode)
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

// errorBody is Dintero's error document: {"error":{"code","message","errors"}}.
type errorBody struct {
	Error *struct {
		Code    string            `json:"code"`
		Message string            `json:"message"`
		Errors  []json.RawMessage `json:"errors"`
	} `json:"error"`
}

// decodeError builds the Error for an HTTP error answer. A body of another
// shape (HTML from a proxy, empty, truncated) still gives an Error with the
// status: the body is only a bonus. Any of secrets (what the request
// carried: its token, client secret, verification code) that Dintero echoes
// is masked.
func decodeError(status int, h http.Header, body []byte, now time.Time, secrets ...string) *Error {
	e := &Error{
		StatusCode: status,
		RequestID:  requestID(h),
		RetryAfter: parseRetryAfter(h.Get("Retry-After"), now),
	}
	var eb errorBody
	if json.Unmarshal(body, &eb) == nil && eb.Error != nil {
		e.Code = scrub(eb.Error.Code, secrets)
		e.Message = scrub(eb.Error.Message, secrets)
		for _, raw := range eb.Error.Errors {
			e.Errors = append(e.Errors, json.RawMessage(scrub(string(raw), secrets)))
		}
	}
	return e
}

// scrub masks every one of secrets found in s. Secrets shorter than 4
// bytes are left alone: masking them would garble messages and hide nothing.
func scrub(s string, secrets []string) string {
	for _, sec := range secrets {
		if len(sec) >= 4 && strings.Contains(s, sec) {
			s = strings.ReplaceAll(s, sec, "[REDACTED]")
		}
	}
	return s
}

// requestID reads Dintero's request id from a response.
func requestID(h http.Header) string {
	if id := h.Get("Request-Id"); id != "" {
		return id
	}
	return h.Get("X-Request-Id")
}

// transportError rewrites an error from http.Client.Do so that it can
// travel: net/http's *url.Error prints the whole URL, and the authorize URL
// holds the verification code in its query. The result names the method and
// the path only, and keeps the cause for errors.Is: the caller's context
// error when the context ended, else ErrTransport.
func transportError(ctx context.Context, method, path string, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("%s %s: %w", method, path, context.Cause(ctx))
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("%s %s: %w: %w", method, path, ErrTransport, timeoutError{msg: err.Error()})
	}
	return fmt.Errorf("%s %s: %w: %s", method, path, ErrTransport, err.Error())
}

// timeoutError marks a transport timeout (dial, TLS handshake, response
// headers) so that callers can tell it from a refused or reset connection.
type timeoutError struct{ msg string }

func (e timeoutError) Error() string { return e.msg }
func (e timeoutError) Timeout() bool { return true }
func (e timeoutError) Is(target error) bool {
	return target == context.DeadlineExceeded
}
