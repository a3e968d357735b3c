package service

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"path"
	"runtime"
	"runtime/debug"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/dintero-facade/dintero-facade/internal/mask"
	"github.com/dintero-facade/dintero-facade/upstream"
)

// requestIDKey is the metadata key of the request id.
const requestIDKey = "x-request-id"

// maxRequestIDLen bounds a caller's request id; a longer one is replaced.
const maxRequestIDLen = 128

// outcome is what a handler learned of its call, for the call's line: the
// handler returns it beside its answer (see answer).
type outcome struct {
	oid      string
	grantID  string
	decision string // about the facade's credentials; see authenticate
	meta     upstream.Meta
	// idToken is the id_token's verification (verified, invalid,
	// not_checked) and idTokenReason why it is invalid; never a claim.
	idToken, idTokenReason string
	// withheld names the fields of Dintero's answer kept from the caller
	// (oidc.client_secret); never a value.
	withheld []string
	// credentialsRejected: Dintero refused the facade's own client
	// credentials. The line then says alert, for the operator to act.
	credentialsRejected bool
}

// callLine is what the interceptor keeps of one call for its line: the
// request id, and the handler's outcome once the handler has returned.
type callLine struct {
	requestID string
	outcome   outcome
	// returned is false while the handler runs, and after it panicked.
	returned bool
	// log, op and handler are what recoverHandler needs.
	log     *slog.Logger
	op      string
	handler grpc.UnaryHandler
}

type lineKey struct{}

// callContext is the call's context with its line: one allocation for
// both, where context.WithValue and the line would be two.
type callContext struct {
	context.Context
	line callLine
}

// Value returns the call's line for lineKey, and else what the parent
// holds.
func (c *callContext) Value(key any) any {
	if _, ok := key.(lineKey); ok {
		return &c.line
	}
	return c.Context.Value(key)
}

// answer runs handler h and hands its outcome to the call's line: the one
// place where a handler's outcome reaches the interceptor, so that no
// handler can leave a field of its line out. Without the interceptor (as
// in unit tests) the outcome goes nowhere.
func answer[Req, Resp any](ctx context.Context, req Req, h func(context.Context, Req) (Resp, outcome, error)) (Resp, error) {
	resp, out, err := h(ctx, req)
	if l, ok := ctx.Value(lineKey{}).(*callLine); ok {
		l.outcome, l.returned = out, true
	}
	return resp, err
}

// requestIDFrom returns the call's request id, "" without the interceptor.
func requestIDFrom(ctx context.Context) string {
	if l, ok := ctx.Value(lineKey{}).(*callLine); ok {
		return l.requestID
	}
	return ""
}

// InterceptorOptions configure Interceptor.
type InterceptorOptions struct {
	// Log takes the per-call line and recovered panics. Required.
	Log *slog.Logger
	// Audit takes the audit lines. Required, and not subject to the log
	// level, so that audit lines cannot be switched off.
	Audit *slog.Logger
	// Inner run inside, around the handler: metrics, say. They see a
	// recovered panic as Internal.
	Inner []grpc.UnaryServerInterceptor
	// DefaultDeadline bounds a call whose caller set no deadline, and
	// MaxDeadline cuts a longer deadline to itself, so that the servers'
	// write timeouts can be set above every call's. Zero leaves calls as
	// they come.
	DefaultDeadline, MaxDeadline time.Duration
}

// Interceptor returns the one unary interceptor every call goes through,
// over gRPC and through the gateway alike: it takes the caller's
// x-request-id (refusing one it cannot use) or makes one and returns it in
// the response header, turns a
// panic into Internal (logged with its stack), and writes one line per call.
// The line is an audit line, which names the caller too and goes to the
// audit logger, for every call that acts at Dintero on someone's behalf
// without being a plain read: every call of an operation the table marks
// audited (one that destroys something); any call made with the facade's
// own credentials; any call the policy denied.
func Interceptor(o InterceptorOptions) (grpc.UnaryServerInterceptor, error) {
	if o.Log == nil || o.Audit == nil {
		return nil, errors.New("service: the interceptor needs a log and an audit logger")
	}
	if o.DefaultDeadline > o.MaxDeadline && o.MaxDeadline > 0 {
		return nil, errors.New("service: the default deadline is longer than the longest")
	}
	chained := chain(o.Inner...)
	log, audit := o.Log, o.Audit
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		start := time.Now()
		if bound := deadlineBound(ctx, start, o.DefaultDeadline, o.MaxDeadline); bound > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, bound)
			defer cancel()
		}
		id, usable := incomingRequestID(ctx)
		op := operation(path.Base(info.FullMethod))
		cc := &callContext{Context: ctx, line: callLine{requestID: id, log: log, op: op.Name, handler: handler}}
		ctx, l := cc, &cc.line
		_ = grpc.SetHeader(ctx, metadata.MD{requestIDKey: {l.requestID}})
		if usable {
			resp, err = chained(ctx, req, info, recoverHandler)
		} else {
			err = badRequestID(op.Name).Err()
		}
		err = withRequestInfo(err, l.requestID)
		if audited(op, l.outcome.decision) {
			logCall(ctx, audit, "audit", info.FullMethod, l, err, time.Since(start))
		} else {
			logCall(ctx, log, "call", info.FullMethod, l, err, time.Since(start))
		}
		return resp, err
	}, nil
}

// deadlineBound returns the timeout to put on a call that starts at now:
// def when it has no deadline, max when its deadline is further, and
// otherwise the caller's deadline less a margin (a tenth, at least
// minMargin but at most half, at most maxMargin), so that the facade's own
// answer, with its details (whether the verification code was sent, say),
// reaches the caller before the caller's deadline ends it, on a busy
// machine too. 0 leaves the context as it is.
func deadlineBound(ctx context.Context, now time.Time, def, longest time.Duration) time.Duration {
	dl, ok := ctx.Deadline()
	left := dl.Sub(now)
	switch {
	case !ok:
		return def
	case longest > 0 && left > longest:
		return longest
	case left <= 0:
		return 0
	}
	return left - min(max(left/10, min(minMargin, left/2)), maxMargin)
}

// minMargin and maxMargin bound the part of a caller's deadline kept for
// the answer's way back. A tenth alone left a 300 ms deadline 30 ms, which
// a loaded machine overran: the caller got a bare DeadlineExceeded,
// without whether its code was sent.
const (
	minMargin = 50 * time.Millisecond
	maxMargin = 100 * time.Millisecond
)

// audited reports whether the line of a call of op is an audit line: for
// every call of an audited operation, and for every call the facade's own
// credentials were decided on.
func audited(op Operation, decision string) bool {
	switch decision {
	case decisionDenied, decisionAllowed, decisionUnrestricted:
		return true
	}
	return op.Audited
}

// recoverHandler runs the call's handler so that a panic becomes Internal, with the
// ErrorInfo of every error (INTERNAL; for an operation that is not
// idempotent, whether the request may have reached Dintero: a handler
// that panicked returned no outcome, so that is not known, and the answer
// is true). The panic's value is logged only when it is a runtime error:
// any other value may have been built from the request, and so may hold a
// secret.
//
// It is one function for every call, which finds the call's handler in
// the call's line: a closure per call would be an allocation per call.
func recoverHandler(ctx context.Context, req any) (resp any, err error) {
	l, ok := ctx.Value(lineKey{}).(*callLine)
	if !ok {
		// An inner interceptor handed on a context not derived from the
		// call's: a bug, answered as one.
		return nil, status.Error(codes.Internal, "internal error: the call's context was replaced")
	}
	defer func() {
		if p := recover(); p != nil {
			attrs := []slog.Attr{slog.String("request_id", l.requestID), slog.String("stack", string(debug.Stack()))}
			if re, ok := p.(runtime.Error); ok {
				attrs = append(attrs, slog.String("panic", re.Error()))
			}
			l.log.LogAttrs(ctx, slog.LevelError, "recovered from a panic in a handler", attrs...)
			meta := l.outcome.meta
			if !l.returned {
				meta = upstream.Meta{Sent: true}
			}
			resp, err = nil, failure(l.op, meta, codes.Internal, ErrorReasonInternal, "internal error").Err()
		}
	}()
	return l.handler(ctx, req)
}

// logCall writes the call's one line, msg "call", or "audit" for the audit
// line, which also names the caller. It never logs a request or response
// message whole, so no secret they hold reaches the log.
func logCall(ctx context.Context, log *slog.Logger, msg, method string, l *callLine, err error, took time.Duration) {
	ci := &l.outcome
	code := status.Code(err)
	level := slog.LevelInfo
	switch code {
	case codes.OK:
		if len(ci.meta.Undecoded) > 0 {
			// A success all the same, but Dintero's answer was not read
			// whole: someone should look.
			level = slog.LevelWarn
		}
	case codes.Canceled, codes.InvalidArgument, codes.NotFound, codes.AlreadyExists, codes.PermissionDenied,
		codes.Unauthenticated, codes.FailedPrecondition, codes.Aborted, codes.OutOfRange, codes.ResourceExhausted:
	case codes.Internal, codes.Unknown, codes.DataLoss, codes.Unimplemented:
		level = slog.LevelError
	default:
		level = slog.LevelWarn
	}
	if !log.Enabled(ctx, level) {
		return
	}
	// An array on the stack: the record copies the attributes.
	var buf [16]slog.Attr
	attrs := append(buf[:0],
		slog.String("method", method),
		slog.String("code", code.String()),
		// An integer: slog's JSON handler formats a float through
		// encoding/json, by reflection.
		slog.Int64("latency_us", took.Microseconds()),
		slog.String("request_id", l.requestID),
	)
	if msg == "audit" {
		// Its value made here: slog.Any would box the caller first.
		attrs = append(attrs, slog.Attr{Key: "caller", Value: callerFrom(ctx).LogValue()})
	}
	if ci.oid != "" {
		attrs = append(attrs, slog.String("oid", cut(ci.oid)))
	}
	if ci.grantID != "" {
		attrs = append(attrs, slog.String("grant_id", cut(ci.grantID)))
	}
	if ci.decision != "" {
		attrs = append(attrs, slog.String("credentials", ci.decision))
	}
	if ci.meta.Attempts > 0 {
		attrs = append(attrs, slog.Int("http_status", ci.meta.Status), slog.Int("attempts", ci.meta.Attempts))
	}
	if ci.meta.RequestID != "" {
		attrs = append(attrs, slog.String("dintero_request_id", cut(ci.meta.RequestID)))
	}
	if len(ci.meta.Uncertain) > 0 {
		// The outcome of some attempts is unknown: with a 404 at the end,
		// the call itself may have deleted the grant.
		attrs = append(attrs, slog.Any("uncertain_attempts", ci.meta.Uncertain))
	}
	if len(ci.meta.Undecoded) > 0 {
		attrs = append(attrs, slog.Any("undecoded", ci.meta.Undecoded))
	}
	if len(ci.withheld) > 0 {
		attrs = append(attrs, slog.Any("withheld", ci.withheld))
	}
	if ci.credentialsRejected {
		// The line an operator's alert matches: the facade's own
		// credentials no longer work, and every call needing them fails.
		attrs = append(attrs, slog.String("alert", "Dintero refused the facade's client credentials for the account: renew them"))
	}
	if ci.idToken != "" {
		attrs = append(attrs, slog.String("id_token", ci.idToken))
		if ci.idTokenReason != "" {
			attrs = append(attrs, slog.String("id_token_reason", ci.idTokenReason))
		}
	}
	if err != nil {
		st := status.Convert(err)
		attrs = append(attrs, slog.String("error", cutN(st.Message(), maxLoggedError)))
		if r := reasonOf(st); r != "" {
			attrs = append(attrs, slog.String("reason", r))
		}
	}
	// The record is made here, not by log.LogAttrs, whose look-up of the
	// caller's program counter is spent on a source nobody logs.
	r := slog.NewRecord(time.Now(), level, msg, 0)
	r.AddAttrs(attrs...)
	_ = log.Handler().Handle(ctx, r)
}

// maxLogged bounds each string a caller chose (an id, a user agent) in a
// log line, and maxLoggedError the error message, so that a caller cannot
// make a line of any size.
const (
	maxLogged      = 256
	maxLoggedError = 1024
)

// cut shortens s to maxLogged bytes.
func cut(s string) string { return cutN(s, maxLogged) }

// cutN shortens s to at most n bytes, marking the cut. mask.Cut makes it:
// what it cuts is often Dintero's text with the call's secrets masked, and
// a plain cut could free a short one.
func cutN(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return mask.Cut(s, n) + "…(cut)"
}

// reasonOf returns the reason of a status's ErrorInfo.
func reasonOf(st *status.Status) string {
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info.GetReason()
		}
	}
	return ""
}

// incomingRequestID returns the caller's x-request-id, or a new one when
// the caller sent none; usable is false when the caller's cannot be used
// (ValidRequestID), and the id is then a new one.
func incomingRequestID(ctx context.Context) (id string, usable bool) {
	v := metadata.ValueFromIncomingContext(ctx, requestIDKey)
	if len(v) == 0 {
		return NewRequestID(), true
	}
	if !ValidRequestID(v[0]) {
		return NewRequestID(), false
	}
	return v[0], true
}

// NewRequestID returns a new random request id.
func NewRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// RequestIDForm describes the request ids ValidRequestID admits, for the
// errors that refuse another.
const RequestIDForm = "1 to 128 printable ASCII characters without spaces, such as 3f9c2a7e-checkout-42"

// badRequestID refuses a call of op whose x-request-id cannot be used: it
// is neither logged nor sent on, and a made-up id would leave the caller
// unable to find its call. Nothing was sent.
func badRequestID(op string) *status.Status {
	return failure(op, upstream.Meta{}, codes.InvalidArgument, ErrorReasonInvalidArgument,
		"invalid x-request-id: want "+RequestIDForm,
		&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: requestIDKey, Description: "want " + RequestIDForm}}})
}

// ValidRequestID reports whether s can be a request id: printable ASCII
// without spaces, at most 128 bytes, so that an id can be logged and sent
// on as an HTTP header as it is.
func ValidRequestID(s string) bool {
	if s == "" || len(s) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// chain composes interceptors into one, the first outermost.
func chain(interceptors ...grpc.UnaryServerInterceptor) grpc.UnaryServerInterceptor {
	// None or one need no closures per call.
	switch len(interceptors) {
	case 0:
		return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
			return handler(ctx, req)
		}
	case 1:
		return interceptors[0]
	}
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		for i := len(interceptors) - 1; i >= 0; i-- {
			next, ic := handler, interceptors[i]
			handler = func(ctx context.Context, req any) (any, error) { return ic(ctx, req, info, next) }
		}
		return handler(ctx, req)
	}
}

// withRequestInfo adds a google.rpc.RequestInfo with the call's request id
// to an error's status, unless it has one: every error names the request
// a caller reports.
func withRequestInfo(err error, id string) error {
	st, ok := status.FromError(err)
	if err == nil || !ok || id == "" {
		return err
	}
	for _, d := range st.Details() {
		if _, ok := d.(*errdetails.RequestInfo); ok {
			return err
		}
	}
	if s, derr := st.WithDetails(&errdetails.RequestInfo{RequestId: id}); derr == nil {
		return s.Err()
	}
	return err
}
