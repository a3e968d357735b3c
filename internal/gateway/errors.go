package gateway

import (
	"context"
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	rpccode "google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/structpb"

	authv1 "github.com/dintero-facade/dintero-facade/gen/dintero/auth/v1"
	"github.com/dintero-facade/dintero-facade/service"
)

// The reasons of the gateway's own refusals that the service has no
// reason for.
const (
	reasonNotFound         = "NOT_FOUND"
	reasonMethodNotAllowed = "METHOD_NOT_ALLOWED"
	reasonHeadersTooLarge  = "HEADERS_TOO_LARGE"
	reasonContentTooLarge  = "CONTENT_TOO_LARGE"
	reasonGatewayError     = "GATEWAY_ERROR"
)

// refusal is an error of the gateway's own, in the facade's domain, with
// metadata md and details extra.
func refusal(code codes.Code, reason, msg string, md map[string]string, extra ...protoadapt.MessageV1) *status.Status {
	info := &errdetails.ErrorInfo{Reason: reason, Domain: service.ErrorDomain, Metadata: md}
	st := status.New(code, msg)
	if s, err := st.WithDetails(append([]protoadapt.MessageV1{info}, extra...)...); err == nil {
		return s
	}
	return st
}

// refusalError is a request the gateway refuses before grpc-gateway sees
// it: the HTTP status and the status to answer with.
type refusalError struct {
	httpStatus int
	st         *status.Status
}

// jsonPb is the marshaler of the gateway's own refusals: grpc-gateway's,
// with Dintero's field names.
var jsonPb = &runtime.JSONPb{MarshalOptions: protojson.MarshalOptions{UseProtoNames: true}}

// refuse answers a refusal in Dintero's shape.
func refuse(w http.ResponseWriter, r *http.Request, e *refusalError) {
	writeError(r.Context(), nil, jsonPb, w, r, &runtime.HTTPStatusError{HTTPStatus: e.httpStatus, Err: e.st.Err()})
}

// routingError answers a request no route takes (404, 405 with the
// methods the path takes in Allow) in Dintero's shape, with its HTTP
// status.
func routingError(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, httpStatus int) {
	rt := requestOf(ctx).route
	code, reason, msg := codes.NotFound, reasonNotFound, "no operation has this path: /openapi.json lists the API's paths"
	switch httpStatus {
	case http.StatusMethodNotAllowed:
		code, reason, msg = codes.Unimplemented, reasonMethodNotAllowed, "the method is not allowed at this path"
		if a := rt.allowHeader(); a != "" {
			w.Header().Set("Allow", a)
			msg += "; it takes " + a
		}
	case http.StatusBadRequest:
		code, reason, msg = codes.InvalidArgument, service.ErrorReasonInvalidArgument, http.StatusText(httpStatus)
	}
	writeError(ctx, mux, m, w, r, &runtime.HTTPStatusError{HTTPStatus: httpStatus, Err: refusal(code, reason, msg, rt.sentMetadata(false)).Err()})
}

// writeError answers an error in Dintero's shape,
// {"error": {"code", "message", "errors", …}}, with the HTTP status Dintero
// gave when it gave one (see errorResponse), the call's request id, and,
// when the error says when to retry (RetryInfo) on a 429 or a 503, that
// wait in Retry-After. An error of grpc-gateway's own, which carries no
// ErrorInfo, may quote what the caller sent (a verification code among
// it): its message is not passed on.
func writeError(ctx context.Context, _ *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, _ *http.Request, err error) {
	var routing *runtime.HTTPStatusError
	httpStatus := 0
	if errors.As(err, &routing) {
		httpStatus, err = routing.HTTPStatus, routing.Err
	}
	md, _ := runtime.ServerMetadataFromContext(ctx)
	st := status.Convert(err)
	if !hasErrorInfo(st) {
		// The call reached the service when the service gave it its id.
		called := len(md.HeaderMD.Get(strings.ToLower(requestIDHeader))) > 0
		// grpc-gateway's own errors carry no ErrorInfo: a body it could
		// not decode (checkBody has refused the bodies it can judge), or
		// an answer it could not encode. Their messages may quote what
		// the caller sent, so they are not passed on.
		reason := reasonGatewayError
		if st.Code() == codes.InvalidArgument {
			reason = service.ErrorReasonInvalidArgument
		}
		st = refusal(st.Code(), reason, "the JSON gateway could not take the request ("+st.Code().String()+")", requestOf(ctx).route.sentMetadata(called))
	}
	if id := requestOf(ctx).id; id != "" && !hasRequestInfo(st) {
		if s, err := st.WithDetails(&errdetails.RequestInfo{RequestId: id}); err == nil {
			st = s
		}
	}
	code, body := errorResponse(st)
	if httpStatus == 0 {
		httpStatus = code
	}
	for k, vs := range md.HeaderMD {
		if h, ok := outgoingHeader(k); ok {
			for _, v := range vs {
				w.Header().Add(h, v)
			}
		}
	}
	if w.Header().Get(requestIDHeader) == "" {
		if id := requestOf(ctx).id; id != "" {
			w.Header().Set(requestIDHeader, id)
		}
	}
	if wait := retryAfter(st); wait != "" && (httpStatus == http.StatusTooManyRequests || httpStatus == http.StatusServiceUnavailable) {
		w.Header().Set("Retry-After", wait)
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

// retryAfter is st's RetryInfo as Retry-After's whole seconds, rounded up;
// "" when st says nothing of when to retry.
func retryAfter(st *status.Status) string {
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok && ri.GetRetryDelay().AsDuration() > 0 {
			return strconv.FormatInt(int64(math.Ceil(ri.GetRetryDelay().AsDuration().Seconds())), 10)
		}
	}
	return ""
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

// errorResponse is the JSON form of st: the HTTP status Dintero gave when
// the error carries one (an error of Dintero's domain), else the status
// grpc-gateway gives the code; and Dintero's error document, with the gRPC
// status beside its fields.
func errorResponse(st *status.Status) (int, *authv1.ErrorResponse) {
	body := &authv1.ErrorBody{Message: st.Message(), GrpcCode: rpccode.Code(st.Code()).String(), Details: st.Proto().GetDetails()}
	httpStatus := runtime.HTTPStatusFromCode(st.Code())
	var reason, oauthError string
	var dintero *authv1.DinteroError
	var bad *errdetails.BadRequest
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			reason = d.GetReason()
			oauthError = d.GetMetadata()[service.MetadataKeyOAuthError]
			// Dintero's HTTP error passes on with its status; an error
			// the facade made of Dintero's answer (its credentials
			// refused, say) has the status of its own code.
			passed := d.GetReason() == service.ErrorReasonDintero || d.GetReason() == service.ErrorReasonNotFoundUncertain
			if n, err := strconv.Atoi(d.GetMetadata()[service.MetadataKeyDinteroHTTPStatus]); err == nil && passed && n >= 400 && n <= 599 {
				httpStatus = n
			}
		case *authv1.DinteroError:
			dintero = d
		case *errdetails.BadRequest:
			bad = d
		}
	}
	switch {
	case dintero.GetCode() != "" && reason != service.ErrorReasonNotFoundUncertain:
		body.Code = dintero.GetCode()
	case oauthError != "":
		body.Code = oauthError
	case reason != "":
		body.Code = reason
	default:
		body.Code = body.GrpcCode
	}
	switch {
	case len(dintero.GetErrors()) > 0:
		body.Errors = dintero.GetErrors()
	case bad != nil:
		for _, v := range bad.GetFieldViolations() {
			body.Errors = append(body.Errors, structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{
				"field":   structpb.NewStringValue(v.GetField()),
				"message": structpb.NewStringValue(v.GetDescription()),
			}}))
		}
	}
	return httpStatus, &authv1.ErrorResponse{Error: body}
}

// hasRequestInfo says whether st carries a google.rpc.RequestInfo.
func hasRequestInfo(st *status.Status) bool {
	for _, d := range st.Details() {
		if _, ok := d.(*errdetails.RequestInfo); ok {
			return true
		}
	}
	return false
}
