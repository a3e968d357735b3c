// Package gateway is the facade's JSON face: grpc-gateway over the service,
// with Dintero's paths and field names, and every error in Dintero's own
// error shape. It calls the service through an in-process channel
// (internal/inproc) on which the service is registered as on the gRPC
// server, through the same interceptor, so that a JSON call is validated,
// authorised, logged, audited, counted and recovered exactly like a gRPC
// call, without a second serialisation or HTTP/2 framing. It reads only
// what an operation takes: a body only where its HTTP rule has one, and
// then a bounded JSON object of the request's fields; bounded headers; a
// bounded query whose every name the operation's request has; and it answers as HTTP clients
// expect (headers.go, errors.go): an X-Request-Id on every answer,
// Retry-After, Allow, and the header at fault named.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/grpc-ecosystem/grpc-gateway/v2/utilities"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	authv1 "github.com/dintero-facade/dintero-facade/gen/dintero/auth/v1"
	"github.com/dintero-facade/dintero-facade/internal/inproc"
	"github.com/dintero-facade/dintero-facade/service"
)

// Options configure the gateway.
type Options struct {
	// MaxQuery bounds a request's query in bytes, as a gRPC request is
	// bounded, and the body of a route that takes one. Required.
	MaxQuery int
	// MaxHeaderBytes bounds a request's request line and header fields,
	// counted as HTTP/1.1 sends them; a request over it is refused 431.
	// Serve the gateway with an http.Server whose MaxHeaderBytes is
	// ServerMaxHeaderBytes of it. Required.
	MaxHeaderBytes int
}

// New returns the JSON gateway over the services that register puts on a
// registrar, called in process through interceptor: hand it the function
// and the interceptor the gRPC server is given. Requests are bounded
// before grpc-gateway reads them: headers of at most o.MaxHeaderBytes, a
// body only on a route whose HTTP rule has one (of at most o.MaxQuery
// bytes) and a query of at most o.MaxQuery bytes. Every answer carries an
// X-Request-Id, and every error, the gateway's own included, is answered
// in Dintero's shape. Mount it at the root, so that it answers the paths
// no route takes too.
func New(ctx context.Context, register func(grpc.ServiceRegistrar), interceptor grpc.UnaryServerInterceptor, o Options) (http.Handler, error) {
	if register == nil || interceptor == nil {
		return nil, errors.New("gateway: New needs the service's registration and interceptor")
	}
	if o.MaxQuery <= 0 || o.MaxHeaderBytes <= 0 {
		return nil, errors.New("gateway: MaxQuery and MaxHeaderBytes must be positive")
	}
	rs, err := loadRoutes()
	if err != nil {
		return nil, err
	}
	// The query is checked inside the interceptor, so that a refusal is
	// logged and counted like any invalid call.
	ch := inproc.New(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		return interceptor(ctx, req, info, func(ctx context.Context, req any) (any, error) {
			return strictQuery(ctx, req, info, h)
		})
	})
	register(ch)
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
	if err := authv1.RegisterAuthServiceHandlerClient(ctx, gw, authv1.NewAuthServiceClient(ch)); err != nil {
		return nil, fmt.Errorf("registering the gateway: %w", err)
	}
	return &handler{mux: gw, routes: rs, opts: o}, nil
}

// handler is the gateway: its own checks of a request, then grpc-gateway.
type handler struct {
	mux    *runtime.ServeMux
	routes routes
	opts   Options
}

// ServeHTTP gives the request an id (the caller's X-Request-Id when it can
// be used), refuses what the gateway does not take, and hands the rest to
// grpc-gateway with the id as the call's x-request-id.
func (g *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rt := g.routes.match(r.URL.EscapedPath())
	id := service.NewRequestID()
	if ids := r.Header.Values(requestIDHeader); len(ids) > 0 && service.ValidRequestID(ids[0]) {
		id = ids[0]
	}
	// The call carries its caller as a gRPC call does: as its peer.
	ctx := peer.NewContext(context.WithValue(r.Context(), requestKey{}, request{id: id, route: rt}), peerOf(r))
	r = r.WithContext(ctx)
	refused := checkHeaders(r, rt, g.opts.MaxHeaderBytes)
	if refused == nil {
		refused = checkBody(w, r, rt, g.opts.MaxQuery)
	}
	if refused == nil && len(r.URL.RawQuery) > g.opts.MaxQuery {
		refused = &refusalError{httpStatus: http.StatusBadRequest, st: refusal(codes.InvalidArgument, service.ErrorReasonInvalidArgument,
			fmt.Sprintf("the query is over the limit of %d bytes", g.opts.MaxQuery), rt.sentMetadata(false))}
	}
	if refused != nil {
		refuse(w, r, refused)
		return
	}
	r.Header.Set(requestIDHeader, id)
	if r.URL.RawQuery != "" {
		r = r.WithContext(context.WithValue(ctx, queryKey{}, r.URL.RawQuery))
	}
	g.mux.ServeHTTP(w, r)
}

// requestKey carries a request's request, which the gateway's errors read.
type requestKey struct{}

// request is what the gateway knows of a request before the call: its id
// and its route (nil when none takes its path).
type request struct {
	id    string
	route *route
}

// requestOf returns the request ctx carries.
func requestOf(ctx context.Context) request {
	r, _ := ctx.Value(requestKey{}).(request)
	return r
}

// peerOf is the HTTP client as a gRPC peer: its address and, over TLS, the
// connection's state, whose verified chain names the caller.
func peerOf(r *http.Request) *peer.Peer {
	p := &peer.Peer{Addr: remoteAddr(r.RemoteAddr)}
	if r.TLS != nil {
		p.AuthInfo = credentials.TLSInfo{State: *r.TLS, CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity}}
	}
	return p
}

// remoteAddr is an HTTP request's RemoteAddr as a net.Addr.
type remoteAddr string

func (remoteAddr) Network() string  { return "tcp" }
func (a remoteAddr) String() string { return string(a) }

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

// The HTTP headers the gateway passes to the service as gRPC metadata,
// besides what grpc-gateway passes by default (Authorization among them),
// and returns from the call's header metadata.
const (
	requestIDHeader = "X-Request-Id"
	userAgentHeader = "User-Agent"
	// MockFaultHeader asks a mock Dintero for a fault. It is metadata like
	// any other; only a facade serving --mock sends it on, to its mock.
	MockFaultHeader = "Dintero-Mock-Fault"
)

// incomingHeader passes X-Request-Id, User-Agent and Dintero-Mock-Fault
// as the metadata a gRPC call has them in; grpc-gateway passes
// Authorization itself. No other header is metadata: the service reads
// none, and a Grpc-Metadata-<key>, which grpc-gateway's default passes as
// <key>, is refused before (checkHeaders).
func incomingHeader(key string) (string, bool) {
	switch k := textproto.CanonicalMIMEHeaderKey(key); k {
	case requestIDHeader, userAgentHeader, MockFaultHeader:
		return strings.ToLower(k), true
	}
	return "", false
}

// outgoingHeader returns the request id as X-Request-Id; other header
// metadata keeps grpc-gateway's Grpc-Metadata- prefix.
func outgoingHeader(key string) (string, bool) {
	if strings.EqualFold(key, requestIDHeader) {
		return requestIDHeader, true
	}
	return runtime.MetadataHeaderPrefix + key, true
}
