package service

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"unicode"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/dintero-facade/dintero-facade/upstream"
)

// ErrorDomain is the google.rpc.ErrorInfo domain of errors from Dintero.
const ErrorDomain = "api.dintero.com"

// CodeForHTTP maps the HTTP status of Dintero's error answer to a gRPC code.
func CodeForHTTP(status int) codes.Code {
	switch status {
	case http.StatusBadRequest, http.StatusUnprocessableEntity:
		return codes.InvalidArgument
	case http.StatusUnauthorized:
		return codes.Unauthenticated
	case http.StatusForbidden:
		return codes.PermissionDenied
	case http.StatusNotFound:
		return codes.NotFound
	case http.StatusConflict:
		return codes.Aborted
	case http.StatusTooManyRequests:
		return codes.ResourceExhausted
	case http.StatusNotImplemented:
		return codes.Unimplemented
	case http.StatusBadGateway, http.StatusServiceUnavailable:
		return codes.Unavailable
	case http.StatusGatewayTimeout:
		return codes.DeadlineExceeded
	}
	switch {
	case status >= 400 && status < 500:
		return codes.FailedPrecondition
	default:
		return codes.Internal
	}
}

// Status turns an error from upstream into the gRPC status the caller gets.
// It is the one place where upstream results become gRPC codes. The message
// keeps Dintero's own, in which upstream has already masked the request's
// secrets.
func Status(err error) *status.Status {
	if err == nil {
		return status.New(codes.OK, "")
	}
	var ue *upstream.Error
	isUE := errors.As(err, &ue)
	switch {
	case errors.Is(err, upstream.ErrNoCredentials):
		return status.New(codes.Unauthenticated, err.Error()+": send an authorization bearer token")
	case errors.Is(err, upstream.ErrBusy):
		return status.New(codes.ResourceExhausted, "the facade has too many calls to Dintero in flight; retry with backoff")
	case errors.Is(err, upstream.ErrCircuitOpen):
		return status.New(codes.Unavailable, "Dintero keeps failing, so the facade paused calls to it for a moment; retry with backoff")
	case errors.Is(err, upstream.ErrInvalidArgument):
		return status.New(codes.InvalidArgument, err.Error())
	case errors.Is(err, context.Canceled):
		return status.New(codes.Canceled, "the call was canceled")
	case errors.Is(err, context.DeadlineExceeded):
		return status.New(codes.DeadlineExceeded, "Dintero did not answer within the deadline")
	case isUE && ue.Reason == nil:
		return httpStatus(ue, errors.Is(err, upstream.ErrTokenFetch))
	case isUE:
		// An answer the operation cannot use: a bug at one end or the
		// other, not something the caller can fix.
		return withInfo(status.New(codes.Internal, "unusable answer from Dintero: "+ue.Reason.Error()), ue)
	case errors.Is(err, upstream.ErrTransport):
		return status.New(codes.Unavailable, err.Error())
	}
	return status.New(codes.Internal, "internal error")
}

// httpStatus maps Dintero's error answer, keeping its message and adding
// ErrorInfo and, for 429, RetryInfo.
func httpStatus(e *upstream.Error, tokenFetch bool) *status.Status {
	code := CodeForHTTP(e.StatusCode)
	msg := e.Message
	if msg == "" {
		msg = "Dintero answered HTTP " + strconv.Itoa(e.StatusCode) + " " + http.StatusText(e.StatusCode)
	}
	if tokenFetch {
		msg = "Dintero refused the facade's client credentials: " + msg
		// The caller did nothing wrong: the facade's own credentials
		// were refused. Rate limits and outages keep their codes.
		if e.StatusCode >= 400 && e.StatusCode < 500 && e.StatusCode != http.StatusTooManyRequests {
			code = codes.Unauthenticated
		}
	}
	st := withInfo(status.New(code, msg), e)
	if e.StatusCode == http.StatusTooManyRequests && e.RetryAfter > 0 {
		if s, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(e.RetryAfter)}); err == nil {
			st = s
		}
	}
	return st
}

func withInfo(st *status.Status, e *upstream.Error) *status.Status {
	info := &errdetails.ErrorInfo{
		Reason: Reason(e.Code, e.StatusCode),
		Domain: ErrorDomain,
		Metadata: map[string]string{
			"http_status":        strconv.Itoa(e.StatusCode),
			"dintero_code":       e.Code,
			"dintero_request_id": e.RequestID,
		},
	}
	if s, err := st.WithDetails(info); err == nil {
		return s
	}
	return st
}

// Reason turns Dintero's error code into an ErrorInfo reason, which must be
// UPPER_SNAKE_CASE: "not_found", "notFound" and "not-found" become
// NOT_FOUND. Without a usable code it is HTTP_<status>.
func Reason(code string, httpStatus int) string {
	var b strings.Builder
	prevLower := false
	for _, r := range code {
		switch {
		case r > unicode.MaxASCII:
			prevLower = false
			if b.Len() > 0 {
				b.WriteByte('_')
			}
		case unicode.IsUpper(r):
			if prevLower {
				b.WriteByte('_')
			}
			b.WriteRune(r)
			prevLower = false
		case unicode.IsLower(r):
			b.WriteRune(unicode.ToUpper(r))
			prevLower = true
		case unicode.IsDigit(r):
			b.WriteRune(r)
			prevLower = true
		default:
			b.WriteByte('_')
			prevLower = false
		}
	}
	s := b.String()
	for strings.Contains(s, "__") {
		s = strings.ReplaceAll(s, "__", "_")
	}
	s = strings.Trim(s, "_")
	if len(s) > 63 {
		s = strings.TrimRight(s[:63], "_")
	}
	if s == "" || s[0] < 'A' || s[0] > 'Z' {
		return "HTTP_" + strconv.Itoa(httpStatus)
	}
	return s
}
