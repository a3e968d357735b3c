package service

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	authv1 "github.com/dintero-facade/dintero-facade/gen/dintero/auth/v1"
	"github.com/dintero-facade/dintero-facade/upstream"
)

// ErrorDomain is the google.rpc.ErrorInfo domain of every error the
// facade answers, the service's and the JSON gateway's alike (AIP-193: the
// domain of the service that produces the reason). Dintero's own codes
// are no reasons: they travel in the metadata and in DinteroError.
const ErrorDomain = "dintero-facade.internal"

// The google.rpc.ErrorInfo reasons the service sets: each is the name of a
// value of the proto enum dintero.auth.v1.ErrorReason, and docs/api.md
// lists each (TestErrorReasonsDocumented holds the three together).
const (
	ErrorReasonInvalidArgument           = "INVALID_ARGUMENT"
	ErrorReasonPolicyDenied              = "POLICY_DENIED"
	ErrorReasonNoCredentials             = "NO_CREDENTIALS"
	ErrorReasonBadAuthorization          = "BAD_AUTHORIZATION"
	ErrorReasonBusy                      = "FACADE_BUSY"
	ErrorReasonCircuitOpen               = "CIRCUIT_OPEN"
	ErrorReasonTransport                 = "DINTERO_UNREACHABLE"
	ErrorReasonDeadline                  = "DEADLINE_EXCEEDED"
	ErrorReasonCanceled                  = "CANCELED"
	ErrorReasonInternal                  = "INTERNAL"
	ErrorReasonUnusableAnswer            = "UNUSABLE_ANSWER"
	ErrorReasonNotFoundUncertain         = "NOT_FOUND_AFTER_UNCERTAIN_ATTEMPT"
	ErrorReasonOAuthError                = "OAUTH_ERROR"
	ErrorReasonSigningKeys               = "SIGNING_KEYS_UNAVAILABLE"
	ErrorReasonIDTokenInvalid            = "ID_TOKEN_INVALID"
	ErrorReasonDintero                   = "DINTERO_ERROR"
	ErrorReasonFacadeCredentialsRejected = "FACADE_CREDENTIALS_REJECTED"
	ErrorReasonStateMismatch             = "STATE_MISMATCH"
)

// The keys of the google.rpc.ErrorInfo metadata, every one the facade sets
// (the service and the gateway alike), lowerCamelCase as AIP-193 asks:
// docs/api.md lists the same, and TestMetadataKeysDocumented holds the two
// together. No key is written but through these.
const (
	// MetadataKeyDinteroHTTPStatus is the HTTP status of Dintero's answer
	// the error carries, which is not always the gateway's (OAuth's error
	// comes in a 302).
	MetadataKeyDinteroHTTPStatus = "dinteroHttpStatus"
	// MetadataKeyDinteroCode is Dintero's error code, unchanged.
	MetadataKeyDinteroCode = "dinteroCode"
	// MetadataKeyDinteroRequestID is Dintero's request id of its answer.
	MetadataKeyDinteroRequestID = "dinteroRequestId"
	// MetadataKeyTokenFetch says the error came from fetching the facade's
	// own token, not from the operation's call.
	MetadataKeyTokenFetch = "tokenFetch"
	// MetadataKeyOAuthError is OAuth's error in authorize's redirect, as
	// Dintero wrote it.
	MetadataKeyOAuthError = "oauthError"
	// MetadataKeyOAuthErrorDescription is OAuth's error_description.
	MetadataKeyOAuthErrorDescription = "oauthErrorDescription"
	// MetadataKeyOAuthErrorURI is OAuth's error_uri.
	MetadataKeyOAuthErrorURI = "oauthErrorUri"
	// MetadataKeyOAuthState is the state the redirect with OAuth's error
	// carried back.
	MetadataKeyOAuthState = "oauthState"
	// MetadataKeyUncertainAttempts lists the attempts whose outcome is
	// unknown.
	MetadataKeyUncertainAttempts = "uncertainAttempts"
	// MetadataKeyIDTokenReason is the check an id_token failed, a value of
	// IdTokenVerification.Reason.
	MetadataKeyIDTokenReason = "idTokenReason"
	// MetadataKeyVerificationCodeSent says whether Authorize's one-time
	// code may have reached Dintero (its operation's SentKey).
	MetadataKeyVerificationCodeSent = "verificationCodeSent"
)

// codeForHTTP maps the HTTP status of Dintero's error answer to a gRPC code.
func codeForHTTP(status int) codes.Code {
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

// codeForOAuthError maps the OAuth error of authorize's redirect (RFC 6749
// §4.1.2.1 and §4.2.2.1, OpenID Connect Core §3.1.2.6) to a gRPC code.
// server_error and temporarily_unavailable stand for the 500 and 503 a
// redirect cannot carry; an error OAuth does not define is Unknown.
func codeForOAuthError(code string) codes.Code {
	switch code {
	case "invalid_request", "unsupported_response_type", "invalid_scope",
		"invalid_request_uri", "invalid_request_object", "request_not_supported",
		"request_uri_not_supported", "registration_not_supported":
		return codes.InvalidArgument
	case "access_denied", "unauthorized_client":
		return codes.PermissionDenied
	case "login_required":
		return codes.Unauthenticated
	case "interaction_required", "consent_required", "account_selection_required":
		return codes.FailedPrecondition
	case "server_error":
		return codes.Internal
	case "temporarily_unavailable":
		return codes.Unavailable
	}
	return codes.Unknown
}

// statusOf turns an error from upstream into the gRPC status the caller of
// method op gets. It is the one place where upstream results become gRPC
// codes. Every status carries one google.rpc.ErrorInfo; the message keeps
// Dintero's, in which upstream has already masked the request's secrets.
func statusOf(op string, err error, meta upstream.Meta) *status.Status {
	var (
		ue *upstream.Error
		oe *upstream.OAuthError
	)
	isUE, isOAuth := errors.As(err, &ue), errors.As(err, &oe)
	switch {
	case errors.Is(err, upstream.ErrNoCredentials):
		return failure(op, meta, codes.Unauthenticated, ErrorReasonNoCredentials, err.Error()+": send an authorization bearer token, or have the operator give the facade client credentials for the account (DINTERO_CLIENT_ID, DINTERO_CLIENT_SECRET, DINTERO_ACCOUNT_ID, or --credentials-file)")
	case errors.Is(err, upstream.ErrBadAuthorization):
		return failure(op, meta, codes.Unauthenticated, ErrorReasonBadAuthorization, err.Error()+`: send "authorization: Bearer <token>", or no authorization to use the facade's credentials`)
	case errors.Is(err, upstream.ErrBusy):
		return failure(op, meta, codes.ResourceExhausted, ErrorReasonBusy, "the facade has too many calls to Dintero in flight; retry with backoff")
	case errors.Is(err, upstream.ErrCircuitOpen):
		return failure(op, meta, codes.Unavailable, ErrorReasonCircuitOpen, "Dintero keeps failing, so the facade paused calls to it for a moment; retry with backoff")
	case errors.Is(err, upstream.ErrInvalidArgument):
		return failure(op, meta, codes.InvalidArgument, ErrorReasonInvalidArgument, err.Error())
	case errors.Is(err, context.Canceled):
		return failure(op, meta, codes.Canceled, ErrorReasonCanceled, "the call was canceled")
	case errors.Is(err, context.DeadlineExceeded):
		return failure(op, meta, codes.DeadlineExceeded, ErrorReasonDeadline, "Dintero did not answer within the deadline")
	case errors.Is(err, upstream.ErrSigningKeys) && !errors.Is(err, upstream.ErrTokenFetch) && !(isUE && ue.Reason == nil && ue.StatusCode/100 == 4):
		// Dintero failing or unreachable: the code was kept. A 4xx is
		// Dintero refusing the caller, and is told as such below.
		return failure(op, meta, codes.Unavailable, ErrorReasonSigningKeys, err.Error()+"; so the verification code was not sent")
	case isOAuth:
		return oauthStatus(op, oe, meta)
	case isUE && ue.Reason == nil:
		return httpStatus(op, ue, meta, errors.Is(err, upstream.ErrTokenFetch))
	case isUE:
		// An answer the operation cannot use: a bug at one end or the
		// other, not something the caller can fix.
		info := dinteroInfo(ErrorReasonUnusableAnswer, ue.StatusCode, "", ue.RequestID)
		return withDetails(op, meta, codes.Internal, "unusable answer from Dintero: "+ue.Reason.Error(), info)
	case errors.Is(err, upstream.ErrTransport):
		return failure(op, meta, codes.Unavailable, ErrorReasonTransport, err.Error())
	}
	return failure(op, meta, codes.Internal, ErrorReasonInternal, "internal error")
}

// idTokenInvalid is the error of an id_token that failed verification,
// for a request that did not accept unverified ones, with the failed check
// in metadata idTokenReason. Not Unauthenticated, which generic clients
// read as "refresh your token": the caller's credentials are not at
// fault. An audience, an issuer or times that do not fit are
// FailedPrecondition (the client, the facade's configuration or a clock
// disagrees with Dintero's token); a token that is malformed or forged
// (signature, key, algorithm, claims) is Internal: Dintero's answer
// cannot be trusted.
func idTokenInvalid(meta upstream.Meta, reason authv1.IdTokenVerification_Reason) *status.Status {
	code := codes.Internal
	switch reason {
	case authv1.IdTokenVerification_REASON_AUDIENCE, authv1.IdTokenVerification_REASON_ISSUER,
		authv1.IdTokenVerification_REASON_EXPIRED, authv1.IdTokenVerification_REASON_NOT_YET_VALID,
		authv1.IdTokenVerification_REASON_ISSUED_IN_FUTURE:
		code = codes.FailedPrecondition
	}
	info := &errdetails.ErrorInfo{Reason: ErrorReasonIDTokenInvalid, Domain: ErrorDomain, Metadata: map[string]string{MetadataKeyIDTokenReason: reason.String()}}
	return withDetails(opAuthorize, meta, code,
		"the id_token in Dintero's answer failed verification ("+reason.String()+"), so it proves no identity; the verification code is spent"+
			" (set accept_unverified_id_token to take the answer anyway)", info)
}

// stateMismatch is the error of a redirect whose state is not the
// request's: a mix-up of two flows, or a redirect forged for another
// request. The code was spent.
func stateMismatch(meta upstream.Meta) *status.Status {
	return failure(opAuthorize, meta, codes.Internal, ErrorReasonStateMismatch,
		"the state of Dintero's redirect is not the request's: the answer belongs to another authorization (a mix-up or a forgery) and is withheld; the verification code is spent")
}

// The bounds of a status, so that one travels in any client's header
// limits (grpc-java's default is 8 KiB for all the metadata, the status
// and its details among them) whatever Dintero wrote: the message, each
// ErrorInfo value, and Dintero's nested errors.
const (
	maxMessage   = 512
	maxMetaValue = 256
	maxItems     = 5
	maxItemText  = 128
	maxItemKeys  = 8
	// maxDinteroError bounds the encoded DinteroError detail: its errors
	// are dropped from the last until it fits.
	maxDinteroError = 1024
)

// failure is an error of the facade's own, with no answer of Dintero's.
func failure(op string, meta upstream.Meta, code codes.Code, reason, msg string, extra ...protoadapt.MessageV1) *status.Status {
	info := &errdetails.ErrorInfo{Reason: reason, Domain: ErrorDomain, Metadata: map[string]string{}}
	return withDetails(op, meta, code, msg, info, extra...)
}

// withDetails builds the status: its message and info cut to their bounds,
// info completed with what every error says (whether authorize's code was
// sent, which attempts had an unknown outcome), and extra attached.
func withDetails(op string, meta upstream.Meta, code codes.Code, msg string, info *errdetails.ErrorInfo, extra ...protoadapt.MessageV1) *status.Status {
	if k := operation(op).SentKey; k != "" {
		info.Metadata[k] = strconv.FormatBool(meta.Sent)
	}
	if len(meta.Uncertain) > 0 {
		info.Metadata[MetadataKeyUncertainAttempts] = strings.Join(meta.Uncertain, "; ")
	}
	for k, v := range info.Metadata {
		info.Metadata[k] = cutN(v, maxMetaValue)
	}
	st := status.New(code, cutN(msg, maxMessage))
	if s, err := st.WithDetails(append([]protoadapt.MessageV1{info}, extra...)...); err == nil {
		return s
	}
	return st
}

// bounded cuts a decoded JSON value to the bounds of a status detail.
func bounded(v any, depth int) any {
	switch v := v.(type) {
	case string:
		return cutN(v, maxItemText)
	case []any:
		if depth == 0 {
			return nil
		}
		out := make([]any, 0, min(len(v), maxItems))
		for _, x := range v[:min(len(v), maxItems)] {
			out = append(out, bounded(x, depth-1))
		}
		return out
	case map[string]any:
		if depth == 0 {
			return nil
		}
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		out := make(map[string]any, min(len(keys), maxItemKeys))
		for _, k := range keys[:min(len(keys), maxItemKeys)] {
			out[cutN(k, maxItemText)] = bounded(v[k], depth-1)
		}
		return out
	}
	return v
}

// dinteroInfo is the ErrorInfo of an error that carries Dintero's answer:
// the facade's reason, and Dintero's status, code and request id as
// Dintero gave them.
func dinteroInfo(reason string, httpStatus int, code, requestID string) *errdetails.ErrorInfo {
	return &errdetails.ErrorInfo{
		Reason: reason,
		Domain: ErrorDomain,
		Metadata: map[string]string{
			MetadataKeyDinteroHTTPStatus: strconv.Itoa(httpStatus),
			MetadataKeyDinteroCode:       code,
			MetadataKeyDinteroRequestID:  requestID,
		},
	}
}

// httpStatus maps Dintero's error answer, keeping its message and its
// detail: ErrorInfo, DinteroError, BadRequest for its errors that name a
// field, and RetryInfo for a 429 or a 503 that said when to retry.
func httpStatus(op string, e *upstream.Error, meta upstream.Meta, tokenFetch bool) *status.Status {
	code := codeForHTTP(e.StatusCode)
	reason := ErrorReasonDintero
	msg := e.Message
	if msg == "" {
		msg = "Dintero answered HTTP " + strconv.Itoa(e.StatusCode) + " " + http.StatusText(e.StatusCode)
	}
	if tokenFetch {
		msg = "Dintero refused the facade's client credentials: " + msg
		// The caller did nothing wrong: the facade's own credentials
		// were refused, which only the operator can mend. Not
		// Unauthenticated, which clients read as "refresh your token".
		// Rate limits and outages keep their codes.
		if credentialsRejected(e) {
			code, reason = codes.Internal, ErrorReasonFacadeCredentialsRejected
		}
	}
	if op == opDelete && e.StatusCode == http.StatusNotFound && len(e.Uncertain) > 0 {
		reason = ErrorReasonNotFoundUncertain
		msg = "Dintero has no such grant now, but an earlier attempt of this call (" + strings.Join(e.Uncertain, "; ") +
			") may have deleted it: its answer was lost. Dintero said: " + msg
	}
	info := dinteroInfo(reason, e.StatusCode, e.Code, e.RequestID)
	if tokenFetch {
		info.Metadata[MetadataKeyTokenFetch] = "true"
	}
	var extra []protoadapt.MessageV1
	items := e.Errors[:min(len(e.Errors), maxItems)]
	if e.Code != "" || e.Message != "" || len(items) > 0 {
		de := &authv1.DinteroError{Code: cutN(e.Code, maxItemText), Message: cutN(e.Message, maxMessage)}
		for _, item := range items {
			if v, err := structpb.NewValue(bounded(item, 3)); err == nil {
				de.Errors = append(de.Errors, v)
			}
		}
		for len(de.Errors) > 0 && proto.Size(de) > maxDinteroError {
			de.Errors = de.Errors[:len(de.Errors)-1]
		}
		extra = append(extra, de)
	}
	if br := fieldViolations(items); br != nil {
		extra = append(extra, br)
	}
	if (e.StatusCode == http.StatusTooManyRequests || e.StatusCode == http.StatusServiceUnavailable) && e.RetryAfter > 0 {
		extra = append(extra, &errdetails.RetryInfo{RetryDelay: durationpb.New(e.RetryAfter)})
	}
	return withDetails(op, meta, code, msg, info, extra...)
}

// fieldKeys are the keys by which an item of Dintero's errors names the
// field it is about.
var fieldKeys = []string{"field", "path", "param", "parameter", "property"}

// fieldViolations turns Dintero's errors that name a field into a
// google.rpc.BadRequest; nil when none does.
func fieldViolations(items []any) *errdetails.BadRequest {
	var br errdetails.BadRequest
	for _, item := range items {
		m, ok := item.(map[string]any)
		if !ok {
			continue
		}
		var field string
		for _, k := range fieldKeys {
			switch v := m[k].(type) {
			case string:
				field = v
			case []any:
				parts := make([]string, 0, len(v))
				for _, p := range v {
					if s, ok := p.(string); ok {
						parts = append(parts, s)
					}
				}
				field = strings.Join(parts, ".")
			}
			if field != "" {
				break
			}
		}
		if field == "" {
			continue
		}
		desc := "invalid"
		for _, k := range []string{"message", "description", "code"} {
			if s, ok := m[k].(string); ok && s != "" {
				desc = s
				break
			}
		}
		br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{Field: cutN(field, maxItemText/2), Description: cutN(desc, maxItemText)})
	}
	if len(br.FieldViolations) == 0 {
		return nil
	}
	return &br
}

// credentialsRejected says whether e, an error fetching the facade's own
// token, is Dintero refusing its client credentials: a 4xx other than a
// rate limit.
func credentialsRejected(e *upstream.Error) bool {
	return e.StatusCode >= 400 && e.StatusCode < 500 && e.StatusCode != http.StatusTooManyRequests
}

// oauthStatus maps OAuth's error in authorize's redirect: reason
// OAUTH_ERROR whatever the error, which travels as Dintero wrote it in
// metadata oauthError.
func oauthStatus(op string, e *upstream.OAuthError, meta upstream.Meta) *status.Status {
	msg := "Dintero refused the authorization: " + e.Code
	if e.Description != "" {
		msg += ": " + e.Description
	}
	info := dinteroInfo(ErrorReasonOAuthError, e.StatusCode, "", e.RequestID)
	delete(info.Metadata, MetadataKeyDinteroCode)
	info.Metadata[MetadataKeyOAuthError] = e.Code
	for k, v := range map[string]string{MetadataKeyOAuthErrorDescription: e.Description, MetadataKeyOAuthErrorURI: e.URI, MetadataKeyOAuthState: e.State} {
		if v != "" {
			info.Metadata[k] = v
		}
	}
	return withDetails(op, meta, codeForOAuthError(e.Code), msg, info)
}
