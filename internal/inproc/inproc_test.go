package inproc_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"

	authv1 "github.com/dintero-facade/dintero-facade/gen/dintero/auth/v1"
	"github.com/dintero-facade/dintero-facade/internal/inproc"
)

// echo is an AuthService that records what its handler saw and answers
// with what the test sets.
type echo struct {
	authv1.UnimplementedAuthServiceServer
	got struct {
		ctx context.Context
		req *authv1.DeleteClientGrantRequest
	}
	resp *authv1.DeleteClientGrantResponse
	err  error
}

func (e *echo) DeleteClientGrant(ctx context.Context, req *authv1.DeleteClientGrantRequest) (*authv1.DeleteClientGrantResponse, error) {
	e.got.ctx, e.got.req = ctx, req
	req.Id = "changed by the handler"
	_ = grpc.SetHeader(ctx, metadata.Pairs("x-header", "h"))
	_ = grpc.SetTrailer(ctx, metadata.Pairs("x-trailer", "t"))
	return e.resp, e.err
}

// TestInvoke: a call reaches the handler through the interceptor, with the
// caller's metadata as incoming, none outgoing, the caller's peer and
// deadline, and a copy of the request; the answer, header and trailer come
// back; errors are statuses.
func TestInvoke(t *testing.T) {
	srv := &echo{resp: &authv1.DeleteClientGrantResponse{Grant: &authv1.ClientGrant{Id: "g", Scope: []string{"a"}}}}
	var methods []string
	ch := inproc.New(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		methods = append(methods, info.FullMethod)
		return h(ctx, req)
	})
	authv1.RegisterAuthServiceServer(ch, srv)
	client := authv1.NewAuthServiceClient(ch)

	p := &peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 7}}
	ctx, cancel := context.WithTimeout(peer.NewContext(context.Background(), p), time.Minute)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer x")
	req := &authv1.DeleteClientGrantRequest{Oid: "T123", Id: "g"}
	var header, trailer metadata.MD
	resp, err := client.DeleteClientGrant(ctx, req, grpc.Header(&header), grpc.Trailer(&trailer))
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(srv.resp, resp, protocmp.Transform()); d != "" {
		t.Errorf("answer (-want +got):\n%s", d)
	}
	if req.GetId() != "g" {
		t.Errorf("the handler changed the caller's request: got id %q", req.GetId())
	}
	if got := srv.got.req; got == req || got.GetOid() != "T123" {
		t.Errorf("the handler got %v (the caller's own message: %v); want a copy", got, got == req)
	}
	hctx := srv.got.ctx
	if md, _ := metadata.FromIncomingContext(hctx); len(md.Get("authorization")) != 1 || md.Get("authorization")[0] != "Bearer x" {
		t.Errorf("incoming metadata %v; want the caller's authorization", md)
	}
	if md, ok := metadata.FromOutgoingContext(hctx); ok && len(md) > 0 {
		t.Errorf("the handler has outgoing metadata %v; want none", md)
	}
	if got, ok := peer.FromContext(hctx); !ok || got != p {
		t.Errorf("peer %v; want the caller's", got)
	}
	if dl, ok := hctx.Deadline(); !ok || time.Until(dl) < 50*time.Second {
		t.Errorf("deadline %v, %v; want the caller's", dl, ok)
	}
	if m, ok := grpc.Method(hctx); !ok || m != authv1.AuthService_DeleteClientGrant_FullMethodName {
		t.Errorf("grpc.Method %q; want the call's", m)
	}
	if header.Get("x-header")[0] != "h" || trailer.Get("x-trailer")[0] != "t" {
		t.Errorf("header %v, trailer %v; want the handler's", header, trailer)
	}
	if len(methods) != 1 || methods[0] != authv1.AuthService_DeleteClientGrant_FullMethodName {
		t.Errorf("the interceptor saw %v", methods)
	}

	// Errors come back as statuses, as from a gRPC server.
	for _, tc := range []struct {
		err  error
		want codes.Code
	}{
		{status.Error(codes.NotFound, "no"), codes.NotFound},
		{context.DeadlineExceeded, codes.DeadlineExceeded},
		{context.Canceled, codes.Canceled},
		{errors.New("plain"), codes.Unknown},
	} {
		srv.err = tc.err
		if _, err := client.DeleteClientGrant(context.Background(), req); status.Code(err) != tc.want {
			t.Errorf("handler error %v: got %v; want %v", tc.err, err, tc.want)
		}
	}
	srv.err, srv.resp = nil, nil
	if _, err := client.DeleteClientGrant(context.Background(), req); status.Code(err) != codes.Internal {
		t.Errorf("neither an answer nor an error: got %v; want Internal", err)
	}
	// A method the channel does not serve, registered or not.
	if _, err := client.Authorize(context.Background(), &authv1.AuthorizeRequest{}); status.Code(err) != codes.Unimplemented {
		t.Errorf("Authorize (unimplemented by echo): got %v; want Unimplemented", err)
	}
	if err := ch.Invoke(context.Background(), "/no.Such/Method", req, &authv1.DeleteClientGrantResponse{}); status.Code(err) != codes.Unimplemented {
		t.Errorf("an unknown method: got %v; want Unimplemented", err)
	}
	if _, err := ch.NewStream(context.Background(), &grpc.StreamDesc{}, "/x/y"); status.Code(err) != codes.Unimplemented {
		t.Errorf("a stream: got %v; want Unimplemented", err)
	}
}

// TestRegisterTwice: a service registered twice is a program error, as on
// a grpc.Server.
func TestRegisterTwice(t *testing.T) {
	ch := inproc.New(nil)
	authv1.RegisterAuthServiceServer(ch, &echo{})
	defer func() {
		if recover() == nil {
			t.Error("no panic")
		}
	}()
	authv1.RegisterAuthServiceServer(ch, &echo{})
}
