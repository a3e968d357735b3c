// Package inproc is a gRPC channel within the process: a
// grpc.ClientConnInterface that runs the unary handlers of the services
// registered on it through a server's unary interceptor, on the caller's
// goroutine, copying messages instead of encoding them. The JSON gateway
// calls the service through it, so that a JSON call passes the very
// registration and interceptors a gRPC call does, without a second
// serialisation or HTTP/2 framing.
//
// A call sees what a gRPC server's handler sees: the caller's outgoing
// metadata as incoming metadata, the peer the caller's context holds (the
// gateway puts the HTTP client's address and TLS state there), the caller's
// deadline and cancellation, and a transport stream whose header and
// trailer reach the caller's grpc.Header and grpc.Trailer options. A call
// returns only when its handler does: handlers must honour their context,
// as the facade's do.
package inproc

import (
	"context"
	"fmt"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Channel is an in-process gRPC channel. Register services on it as on a
// grpc.Server, then call them through it as through a grpc.ClientConn. It
// serves unary methods only. Register before the first call.
type Channel struct {
	methods     map[string]method
	interceptor grpc.UnaryServerInterceptor
}

// method is one registered unary method and the implementation it calls.
type method struct {
	handler grpc.MethodHandler
	impl    any
}

var (
	_ grpc.ClientConnInterface = (*Channel)(nil)
	_ grpc.ServiceRegistrar    = (*Channel)(nil)
)

// New returns a channel whose calls pass through interceptor, as a
// server's calls pass through the one of grpc.UnaryInterceptor; nil calls
// the handlers as they are.
func New(interceptor grpc.UnaryServerInterceptor) *Channel {
	return &Channel{methods: map[string]method{}, interceptor: interceptor}
}

// RegisterService registers impl's unary methods, as grpc.Server does. A
// service with streaming methods, or one registered twice, is a program
// error: RegisterService panics, as grpc.Server does for the latter.
func (c *Channel) RegisterService(sd *grpc.ServiceDesc, impl any) {
	if len(sd.Streams) > 0 {
		panic(fmt.Sprintf("inproc: %s has streaming methods, which the channel does not serve", sd.ServiceName))
	}
	for _, m := range sd.Methods {
		name := "/" + sd.ServiceName + "/" + m.MethodName
		if _, dup := c.methods[name]; dup {
			panic(fmt.Sprintf("inproc: %s registered twice", name))
		}
		c.methods[name] = method{handler: m.Handler, impl: impl}
	}
}

// Invoke calls method's handler through the channel's interceptor with a
// copy of args, and copies its answer into reply. An error is a status, as
// from a gRPC server: a method not registered is Unimplemented, a
// context's error its code.
func (c *Channel) Invoke(ctx context.Context, name string, args, reply any, opts ...grpc.CallOption) error {
	m, ok := c.methods[name]
	if !ok {
		return status.Errorf(codes.Unimplemented, "unknown method %s", name)
	}
	in, ok := args.(proto.Message)
	if !ok {
		return status.Errorf(codes.Internal, "inproc: the request of %s is not a proto.Message", name)
	}
	md, _ := metadata.FromOutgoingContext(ctx)
	// The handler gets the caller's metadata as incoming, and none to send
	// on, as behind a gRPC server.
	ctx = metadata.NewOutgoingContext(metadata.NewIncomingContext(ctx, md), nil)
	st := &stream{name: name}
	ctx = grpc.NewContextWithServerTransportStream(ctx, st)
	dec := func(v any) error {
		out, ok := v.(proto.Message)
		if !ok {
			return status.Errorf(codes.Internal, "inproc: the request of %s is not a proto.Message", name)
		}
		proto.Merge(out, in)
		return nil
	}
	resp, err := m.handler(m.impl, ctx, dec, c.interceptor)
	st.deliver(opts)
	if err != nil {
		return toStatus(err)
	}
	out, ok := reply.(proto.Message)
	if !ok {
		return status.Errorf(codes.Internal, "inproc: the reply of %s is not a proto.Message", name)
	}
	r, ok := resp.(proto.Message)
	if !ok || r == nil || !r.ProtoReflect().IsValid() {
		return status.Errorf(codes.Internal, "inproc: %s answered neither an error nor a message", name)
	}
	move(out, r)
	return nil
}

// move sets reply's fields to those of resp, sharing resp's sub-messages
// instead of copying them: a handler gives its answer up when it returns,
// as it does to a gRPC server, so nothing else touches them. The request,
// which its caller keeps, is copied whole.
func move(reply, resp proto.Message) {
	dst, src := reply.ProtoReflect(), resp.ProtoReflect()
	if dst.Descriptor() != src.Descriptor() {
		proto.Reset(reply)
		proto.Merge(reply, resp)
		return
	}
	proto.Reset(reply)
	src.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		dst.Set(fd, v)
		return true
	})
	if u := src.GetUnknown(); len(u) > 0 {
		dst.SetUnknown(u)
	}
}

// NewStream refuses: the channel serves unary methods only.
func (c *Channel) NewStream(context.Context, *grpc.StreamDesc, string, ...grpc.CallOption) (grpc.ClientStream, error) {
	return nil, status.Error(codes.Unimplemented, "inproc: streams are not served")
}

// toStatus turns a handler's error into the status a gRPC client gets: a
// status as it is, a context's error its code, anything else Unknown.
func toStatus(err error) error {
	if st, ok := status.FromError(err); ok {
		return st.Err()
	}
	return status.FromContextError(err).Err()
}

// stream is the server transport stream of one call: it keeps the header
// and trailer the handler sets until the call ends.
type stream struct {
	name            string
	mu              sync.Mutex
	header, trailer metadata.MD
}

func (s *stream) Method() string { return s.name }

func (s *stream) SetHeader(md metadata.MD) error {
	s.mu.Lock()
	s.header = metadata.Join(s.header, md)
	s.mu.Unlock()
	return nil
}

func (s *stream) SendHeader(md metadata.MD) error { return s.SetHeader(md) }

func (s *stream) SetTrailer(md metadata.MD) error {
	s.mu.Lock()
	s.trailer = metadata.Join(s.trailer, md)
	s.mu.Unlock()
	return nil
}

// deliver hands the header and trailer to the call's grpc.Header and
// grpc.Trailer options.
func (s *stream) deliver(opts []grpc.CallOption) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range opts {
		switch o := o.(type) {
		case grpc.HeaderCallOption:
			*o.HeaderAddr = s.header
		case grpc.TrailerCallOption:
			*o.TrailerAddr = s.trailer
		}
	}
}
