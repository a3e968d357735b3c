package gateway

import (
	"context"
	"errors"
	"net/http"
	"strconv"

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

// refusal is an error of the gateway's own, in the facade's domain, with
// metadata md and details extra.
func refusal(code codes.Code, reason, msg string, md map[string]string, extra ...protoadapt.MessageV1) *status.Status {
	info := &errdetails.ErrorInfo{Reason: reason, Domain: service.FacadeDomain, Metadata: md}
	st := status.New(code, msg)
	if s, err := st.WithDetails(append([]protoadapt.MessageV1{info}, extra...)...); err == nil {
		return s
	}
	return st
}

// routingError answers a request no route takes (404, 405) in Dintero's
// shape, with its HTTP status.
func routingError(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, httpStatus int) {
	code, reason := codes.NotFound, "NOT_FOUND"
	switch httpStatus {
	case http.StatusMethodNotAllowed:
		code, reason = codes.Unimplemented, "METHOD_NOT_ALLOWED"
	case http.StatusBadRequest:
		code, reason = codes.InvalidArgument, service.ErrorReasonInvalidArgument
	}
	writeError(ctx, mux, m, w, r, &runtime.HTTPStatusError{HTTPStatus: httpStatus, Err: refusal(code, reason, http.StatusText(httpStatus), nil).Err()})
}

// refuse answers 400 in Dintero's shape for a request the gateway does not
// read.
func refuse(w http.ResponseWriter, r *http.Request, msg string) {
	writeError(r.Context(), nil, &runtime.JSONPb{MarshalOptions: protojson.MarshalOptions{UseProtoNames: true}}, w, r,
		refusal(codes.InvalidArgument, service.ErrorReasonInvalidArgument, msg, nil).Err())
}

// writeError answers an error in Dintero's shape,
// {"error": {"code", "message", "errors", …}}, with the HTTP status Dintero
// gave when it gave one (see errorResponse), and the call's request id. An
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
		st = refusal(st.Code(), rpccode.Code(st.Code()).String(), "the JSON gateway could not take the request ("+st.Code().String()+")", nil)
	}
	code, body := errorResponse(st)
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

// errorResponse is the JSON form of st: the HTTP status Dintero gave when
// the error carries one (an error of Dintero's domain), else the status
// grpc-gateway gives the code; and Dintero's error document, with the gRPC
// status beside its fields.
func errorResponse(st *status.Status) (int, *authv1.ErrorResponse) {
	body := &authv1.ErrorBody{Message: st.Message(), GrpcCode: rpccode.Code(st.Code()).String(), Details: st.Proto().GetDetails()}
	httpStatus := runtime.HTTPStatusFromCode(st.Code())
	var reason string
	var dintero *authv1.DinteroError
	var bad *errdetails.BadRequest
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			reason = d.GetReason()
			if n, err := strconv.Atoi(d.GetMetadata()["http_status"]); err == nil && d.GetDomain() == service.ErrorDomain && n >= 400 && n <= 599 {
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
