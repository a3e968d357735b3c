// Package gateway is the facade's JSON face: grpc-gateway over the service,
// in process, with Dintero's paths and field names, and every error in
// Dintero's own error shape. It reads only what an operation takes: no
// body, a bounded query whose every name the operation has.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"net/url"
	"sort"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/grpc-ecosystem/grpc-gateway/v2/utilities"
	rpccode "google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	authv1 "github.com/dintero-facade/dintero-facade/gen/dintero/auth/v1"
	"github.com/dintero-facade/dintero-facade/service"
)

// Options configure the gateway.
type Options struct {
	// MaxQuery bounds a request's query in bytes, as a gRPC request is
	// bounded.
	MaxQuery int
}

// New returns the JSON gateway over srv, calling it in process: no second
// serialisation and no HTTP/2 framing on the hot path. That path skips the
// gRPC server, so New runs interceptor around every call, as the gRPC
// server does. Requests are bounded before grpc-gateway reads them: no body
// (neither operation takes one) and a query of at most o.MaxQuery bytes.
// Every error, the gateway's own included, is answered in Dintero's shape.
func New(ctx context.Context, srv authv1.AuthServiceServer, interceptor grpc.UnaryServerInterceptor, o Options) (http.Handler, error) {
	srv = service.Intercepted(strictQuery{srv: srv}, interceptor)
	maxQuery := o.MaxQuery
	gw := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.JSONPb{
			// Dintero's own field names, so a grant has Dintero's shape.
			MarshalOptions: protojson.MarshalOptions{UseProtoNames: true},
		}),
		runtime.WithIncomingHeaderMatcher(incomingHeader),
		runtime.WithOutgoingHeaderMatcher(outgoingHeader),
		runtime.WithErrorHandler(writeError),
		runtime.WithRoutingErrorHandler(routingError),
		// strictQuery judges the query's names; the parser only fills the
		// request, with the first of repeated values, so that no error of
		// its own quotes a value (a verification code given twice).
		runtime.SetQueryParameterParser(firstValues{}),
	)
	if err := authv1.RegisterAuthServiceHandlerServer(ctx, gw, srv); err != nil {
		return nil, fmt.Errorf("registering the gateway: %w", err)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength != 0 || len(r.TransferEncoding) > 0 {
			refuse(w, r, "the operation takes no body: send its parameters in the path and the query")
			return
		}
		if len(r.URL.RawQuery) > maxQuery {
			refuse(w, r, fmt.Sprintf("the query is over %d bytes", maxQuery))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 0)
		// The in-process path has no gRPC peer: say who called.
		c := service.Caller{Addr: r.RemoteAddr, UserAgent: r.UserAgent()}
		if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.VerifiedChains[0]) > 0 {
			c.Identity = service.Identity(r.TLS.VerifiedChains[0][0])
		}
		ctx := service.WithCaller(r.Context(), c)
		if r.URL.RawQuery != "" {
			ctx = context.WithValue(ctx, queryKey{}, r.URL.RawQuery)
		}
		gw.ServeHTTP(w, r.WithContext(ctx))
	}), nil
}

// firstValues is grpc-gateway's query parser, given the first value of
// each parameter.
type firstValues struct{}

func (firstValues) Parse(msg proto.Message, values url.Values, filter *utilities.DoubleArray) error {
	first := make(url.Values, len(values))
	for k, v := range values {
		if len(v) > 0 {
			first[k] = v[:1]
		}
	}
	return (&runtime.DefaultQueryParser{}).Parse(msg, first, filter)
}

// routingError answers a request no route takes (404, 405) in Dintero's
// shape, with its HTTP status.
func routingError(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, httpStatus int) {
	code, reason := codes.NotFound, "NOT_FOUND"
	switch httpStatus {
	case http.StatusMethodNotAllowed:
		code, reason = codes.Unimplemented, "METHOD_NOT_ALLOWED"
	case http.StatusBadRequest:
		code, reason = codes.InvalidArgument, service.ReasonInvalidArgument
	}
	writeError(ctx, mux, m, w, r, &runtime.HTTPStatusError{HTTPStatus: httpStatus, Err: service.Refusal(code, reason, http.StatusText(httpStatus)).Err()})
}

// refuse answers 400 in Dintero's shape for a request the gateway does not
// read.
func refuse(w http.ResponseWriter, r *http.Request, msg string) {
	writeError(r.Context(), nil, &runtime.JSONPb{MarshalOptions: protojson.MarshalOptions{UseProtoNames: true}}, w, r,
		service.Refusal(codes.InvalidArgument, service.ReasonInvalidArgument, msg).Err())
}

// writeError answers an error in Dintero's shape,
// {"error": {"code", "message", "errors", …}}, with the HTTP status Dintero
// gave when it gave one (service.HTTPError), and the call's request id. An
// error of grpc-gateway's own, which carries no ErrorInfo, may quote what
// the caller sent (a verification code among it): its message is not
// passed on.
func writeError(ctx context.Context, _ *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, _ *http.Request, err error) {
	var routing *runtime.HTTPStatusError
	httpStatus := 0
	if errors.As(err, &routing) {
		httpStatus, err = routing.HTTPStatus, routing.Err
	}
	st := status.Convert(err)
	if !hasErrorInfo(st) {
		st = service.Refusal(st.Code(), rpccode.Code(st.Code()).String(), "the JSON gateway could not take the request ("+st.Code().String()+")")
	}
	code, body := service.HTTPError(st)
	if httpStatus == 0 {
		httpStatus = code
	}
	if md, ok := runtime.ServerMetadataFromContext(ctx); ok {
		for k, vs := range md.HeaderMD {
			if h, ok := outgoingHeader(k); ok {
				for _, v := range vs {
					w.Header().Add(h, v)
				}
			}
		}
	}
	buf, merr := m.Marshal(body)
	if merr != nil {
		buf = []byte(`{"error":{"code":"INTERNAL","message":"the error could not be encoded"}}`)
		httpStatus = http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(httpStatus)
	_, _ = w.Write(buf)
}

// hasErrorInfo reports whether st carries a google.rpc.ErrorInfo: the
// facade's and Dintero's errors all do.
func hasErrorInfo(st *status.Status) bool {
	for _, d := range st.Details() {
		if _, ok := d.(*errdetails.ErrorInfo); ok {
			return true
		}
	}
	return false
}

// queryKey carries a gateway request's query to strictQuery.
type queryKey struct{}

// strictQuery refuses, for the gateway's calls, query parameters the
// request message does not have (a typo such as verificaton_code, or
// nonce) and parameters the path already binds, which grpc-gateway would
// drop unseen. It runs inside the interceptors, so that a refusal is
// logged like any invalid call.
type strictQuery struct {
	authv1.UnimplementedAuthServiceServer
	srv authv1.AuthServiceServer
}

func (s strictQuery) DeleteClientGrant(ctx context.Context, req *authv1.DeleteClientGrantRequest) (*authv1.DeleteClientGrantResponse, error) {
	if err := checkQuery(ctx, authv1.AuthService_DeleteClientGrant_FullMethodName, req); err != nil {
		return nil, err
	}
	return s.srv.DeleteClientGrant(ctx, req)
}

func (s strictQuery) Authorize(ctx context.Context, req *authv1.AuthorizeRequest) (*authv1.AuthorizeResponse, error) {
	if err := checkQuery(ctx, authv1.AuthService_Authorize_FullMethodName, req); err != nil {
		return nil, err
	}
	return s.srv.Authorize(ctx, req)
}

// checkQuery checks the names of the call's query against msg's fields
// and the route's path parameters.
func checkQuery(ctx context.Context, method string, msg proto.Message) error {
	raw, _ := ctx.Value(queryKey{}).(string)
	if raw == "" {
		return nil
	}
	// grpc-gateway parsed it already: a query that does not parse
	// never gets here.
	q, _ := url.ParseQuery(raw)
	pattern, _ := runtime.HTTPPathPattern(ctx)
	fields := msg.ProtoReflect().Descriptor().Fields()
	var p service.QueryProblems
	for k, v := range q {
		switch {
		case fields.ByName(protoreflect.Name(k)) == nil:
			p.Unknown = append(p.Unknown, k)
		case strings.Contains(pattern, "{"+k+"}") || strings.Contains(pattern, "{"+k+"="):
			p.Bound = append(p.Bound, k)
		case len(v) > 1:
			p.Repeated = append(p.Repeated, k)
		}
	}
	if len(p.Unknown)+len(p.Bound)+len(p.Repeated) == 0 {
		return nil
	}
	for _, names := range [][]string{p.Unknown, p.Bound, p.Repeated} {
		sort.Strings(names)
	}
	return service.InvalidQuery(method, p)
}

// incomingHeader admits X-Request-Id to the call's metadata, besides what
// grpc-gateway admits by default (Authorization among them).
func incomingHeader(key string) (string, bool) {
	if textproto.CanonicalMIMEHeaderKey(key) == "X-Request-Id" {
		return service.RequestIDKey, true
	}
	return runtime.DefaultHeaderMatcher(key)
}

// outgoingHeader returns the request id as X-Request-Id; other header
// metadata keeps grpc-gateway's Grpc-Metadata- prefix.
func outgoingHeader(key string) (string, bool) {
	if strings.EqualFold(key, service.RequestIDKey) {
		return "X-Request-Id", true
	}
	return runtime.MetadataHeaderPrefix + key, true
}
