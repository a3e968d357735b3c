package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	authv1 "github.com/dintero-facade/dintero-facade/gen/dintero/auth/v1"

	"github.com/dintero-facade/dintero-facade/service"
)

// The headers the gateway reads besides what it passes as metadata.
const (
	timeoutHeader = "Grpc-Timeout"
)

// timeoutForm is gRPC's TimeoutValue and TimeoutUnit (PROTOCOL-HTTP2): at
// most 8 digits and one of H, M, S, m, u, n. grpc-gateway would take more
// digits; a gRPC client sends no more.
var timeoutForm = regexp.MustCompile(`^[0-9]{1,8}[HMSmun]$`)

// timeoutHelp says what a Grpc-Timeout must be.
const timeoutHelp = "1 to 8 digits and a unit, H, M, S, m (milliseconds), u (microseconds) or n (nanoseconds), such as 2S or 200m"

// ServerMaxHeaderBytes is the http.Server.MaxHeaderBytes to serve the
// gateway (and LimitHeaders) with when its limit is limit. net/http
// refuses a request whose header section is over MaxHeaderBytes (and the
// 4 KiB of read buffer it allows besides, and a few bytes more when it
// looks for HTTP/2 without TLS) before any handler sees it, with a
// plain-text 431; the gateway refuses those between limit and that, in
// Dintero's shape, with the limit in the message. Twice the limit bounds
// what a client can make the server read.
func ServerMaxHeaderBytes(limit int) int { return 2 * limit }

// LimitHeaders refuses, with net/http's plain 431, a request whose request
// line and header fields are over limit bytes as HTTP/1.1 sends them, and
// passes the others to next: the same bound as the gateway's, for the
// handlers beside it (probes, metrics, profiles), which are not the JSON
// API. Their server's MaxHeaderBytes is ServerMaxHeaderBytes of limit too.
func LimitHeaders(next http.Handler, limit int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n, _ := headerBytes(r); n > limit {
			w.Header().Set("Connection", "close")
			http.Error(w, fmt.Sprintf("431 Request Header Fields Too Large: over the limit of %d bytes", limit), http.StatusRequestHeaderFieldsTooLarge)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// headerBytes is the size of r's request line and header fields as
// HTTP/1.1 sends them, "Method target HTTP/1.1\r\n", "Name: value\r\n" for
// each field (Host among them) and the blank line; and the name of the
// largest field.
func headerBytes(r *http.Request) (n int, largest string) {
	const crlf, colonSpace = 2, 2
	n = len(r.Method) + 1 + len(r.RequestURI) + 1 + len(r.Proto) + crlf
	biggest := 0
	if r.Host != "" {
		host := len("Host") + colonSpace + len(r.Host) + crlf
		n += host
		biggest, largest = host, "Host"
	}
	for k, vs := range r.Header {
		size := 0
		for _, v := range vs {
			size += len(k) + colonSpace + len(v) + crlf
		}
		n += size
		if size > biggest {
			biggest, largest = size, k
		}
	}
	return n + crlf, largest
}

// metadataHelp says why a Grpc-Metadata- header is refused.
const metadataHelp = "none; the JSON API takes Authorization, X-Request-Id, User-Agent and Grpc-Timeout by their own names"

// checkHeaders refuses what the gateway does not take in r's headers:
// more than limit bytes of them (431), any Grpc-Metadata-<key> (400:
// grpc-gateway would pass it as metadata <key>, a second way to send the
// authorization, the request id or a reserved grpc- key, past the checks
// of their own headers; a token sent so and dropped would leave the call
// on the facade's credentials), an X-Request-Id the facade cannot
// use (which grpc-gateway would drop unseen and the facade replace), and a
// Grpc-Timeout that is not gRPC's (grpc-gateway's own error names
// nothing). It returns nil for headers it takes.
func checkHeaders(r *http.Request, rt *route, limit int) *refusalError {
	if n, largest := headerBytes(r); n > limit {
		return &refusalError{
			httpStatus: http.StatusRequestHeaderFieldsTooLarge,
			st: refusal(codes.InvalidArgument, reasonHeadersTooLarge,
				fmt.Sprintf("the request line and headers are %d bytes, over the limit of %d bytes (the largest field is %s)", n, limit, largest),
				rt.sentMetadata(false)),
		}
	}
	for k := range r.Header {
		if len(k) >= len(runtime.MetadataHeaderPrefix) && strings.EqualFold(k[:len(runtime.MetadataHeaderPrefix)], runtime.MetadataHeaderPrefix) {
			return badHeader(rt, runtime.MetadataHeaderPrefix+"*", metadataHelp)
		}
	}
	if ids := r.Header.Values(requestIDHeader); len(ids) > 0 && !service.ValidRequestID(ids[0]) {
		return badHeader(rt, requestIDHeader, service.RequestIDForm)
	}
	if v := r.Header.Values(timeoutHeader); len(v) > 1 || (len(v) == 1 && !timeoutForm.MatchString(v[0])) {
		return badHeader(rt, timeoutHeader, timeoutHelp)
	}
	return nil
}

// badHeader refuses header, naming it and the form it must have, never
// its value.
func badHeader(rt *route, header, form string) *refusalError {
	return &refusalError{
		httpStatus: http.StatusBadRequest,
		st: refusal(codes.InvalidArgument, service.ErrorReasonInvalidArgument,
			"invalid "+header+" header: want "+form, rt.sentMetadata(false),
			&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: header, Description: "want " + form}}}),
	}
}

// checkBody refuses a body where the request's route takes none (413, the
// limit being 0 bytes), and on a route that takes one (its HTTP rule has a
// body) a body over limit bytes (413), a query (the fields go in the body,
// so that none is in a URL), or a body that is not a JSON object of the
// request's fields: an unknown field, a field the path binds, a value of
// the wrong type (400, naming the field, never quoting a value). Which
// routes take a body comes from the HTTP rules, through the OpenAPI
// document (routes.go). A body it keeps is handed on whole.
func checkBody(w http.ResponseWriter, r *http.Request, rt *route, limit int) *refusalError {
	if rt.takesBody(r.Method) {
		return checkJSONBody(w, r, rt, limit)
	}
	has := r.ContentLength > 0
	if r.ContentLength < 0 {
		var b [1]byte
		n, err := io.ReadFull(http.MaxBytesReader(w, r.Body, 1), b[:])
		has = n > 0 || !errors.Is(err, io.EOF)
	}
	if !has {
		r.Body = http.NoBody
		return nil
	}
	return &refusalError{
		httpStatus: http.StatusRequestEntityTooLarge,
		st: refusal(codes.InvalidArgument, reasonContentTooLarge,
			"request content over the limit of 0 bytes: this route takes no body; send its parameters in the path and the query",
			rt.sentMetadata(false)),
	}
}

// unknownField and badField find the field a protojson error names. The
// name is quoted only when it is field-like (unknown) or the request's
// (bad): protojson's message quotes the caller's text, in which a secret
// may stand.
var (
	unknownField = regexp.MustCompile(`unknown field "(.*?)"`)
	badField     = regexp.MustCompile(`field ([A-Za-z0-9_.]{1,64})`)
)

// checkJSONBody is checkBody on a route that takes a body.
func checkJSONBody(w http.ResponseWriter, r *http.Request, rt *route, limit int) *refusalError {
	invalid := func(field, desc string) *refusalError {
		return &refusalError{httpStatus: http.StatusBadRequest, st: refusal(codes.InvalidArgument, service.ErrorReasonInvalidArgument,
			"invalid body: "+field+": "+desc, rt.sentMetadata(false),
			&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: field, Description: desc}}})}
	}
	if r.URL.RawQuery != "" {
		return invalid("query", "this route takes its fields in the JSON body, not in the query")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(limit)))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return &refusalError{httpStatus: http.StatusRequestEntityTooLarge, st: refusal(codes.InvalidArgument, reasonContentTooLarge,
				fmt.Sprintf("request content over the limit of %d bytes", limit), rt.sentMetadata(false))}
		}
		return invalid("body", "could not be read")
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	md, ok := requestDescriptor(rt.op.Name)
	if !ok {
		return nil
	}
	msg := dynamicpb.NewMessage(md)
	if err := protojson.Unmarshal(body, msg); err != nil {
		if m := unknownField.FindStringSubmatch(err.Error()); m != nil {
			if !fieldLike.MatchString(m[1]) {
				m[1] = unnamed
			}
			return invalid(m[1], "unknown field")
		}
		if m := badField.FindStringSubmatch(err.Error()); m != nil {
			// protojson names the field by its JSON name; the API's are
			// the proto names.
			fd := md.Fields().ByJSONName(m[1])
			if fd == nil {
				fd = md.Fields().ByName(protoreflect.Name(m[1]))
			}
			if fd != nil {
				return invalid(string(fd.Name()), "not a value of the field's type")
			}
		}
		return invalid("body", "want a JSON object of "+string(md.Name())+"'s fields")
	}
	for _, p := range rt.pathParams() {
		if fd := md.Fields().ByName(protoreflect.Name(p)); fd != nil && msg.Has(fd) {
			return invalid(p, "given in the path, not in the body")
		}
	}
	return nil
}

// requestDescriptor is the request message of the service's method name.
func requestDescriptor(name string) (protoreflect.MessageDescriptor, bool) {
	m := authv1.File_dintero_auth_v1_auth_proto.Services().ByName("AuthService").Methods().ByName(protoreflect.Name(name))
	if m == nil {
		return nil, false
	}
	return m.Input(), true
}
