package service_test

import (
	"context"
	"net"
	"os"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/descriptorpb"

	authv1 "github.com/dintero-facade/dintero-facade/gen/dintero/auth/v1"
)

// unavailable is an AuthService that answers Unavailable to every call,
// and counts them.
type unavailable struct {
	authv1.UnimplementedAuthServiceServer
	deletes, authorizes atomic.Int32
}

func (u *unavailable) DeleteClientGrant(context.Context, *authv1.DeleteClientGrantRequest) (*authv1.DeleteClientGrantResponse, error) {
	u.deletes.Add(1)
	return nil, status.Error(codes.Unavailable, "down")
}

func (u *unavailable) Authorize(context.Context, *authv1.AuthorizeRequest) (*authv1.AuthorizeResponse, error) {
	u.authorizes.Add(1)
	return nil, status.Error(codes.Unavailable, "down")
}

// TestServiceConfig: a grpc-go client given docs/service_config.json
// retries DeleteClientGrant on UNAVAILABLE, up to the policy's attempts,
// and never retries Authorize, whose code is single-use; and the methods'
// idempotency_level says the same.
func TestServiceConfig(t *testing.T) {
	cfg, err := os.ReadFile("../docs/service_config.json")
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	fake := &unavailable{}
	authv1.RegisterAuthServiceServer(srv, fake)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithDefaultServiceConfig(string(cfg)))
	if err != nil {
		t.Fatalf("the service config is not one grpc-go takes: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	client := authv1.NewAuthServiceClient(conn)

	_, err = client.DeleteClientGrant(context.Background(), &authv1.DeleteClientGrantRequest{Oid: "T123", Id: "g"})
	if status.Code(err) != codes.Unavailable || fake.deletes.Load() != 4 {
		t.Errorf("DeleteClientGrant: got %v after %d attempts; want Unavailable after 4", err, fake.deletes.Load())
	}
	_, err = client.Authorize(context.Background(), &authv1.AuthorizeRequest{Oid: "T123"})
	if status.Code(err) != codes.Unavailable || fake.authorizes.Load() != 1 {
		t.Errorf("Authorize: got %v after %d attempts; want Unavailable after 1: never retried", err, fake.authorizes.Load())
	}

	levels := map[string]descriptorpb.MethodOptions_IdempotencyLevel{}
	ms := authv1.File_dintero_auth_v1_auth_proto.Services().ByName("AuthService").Methods()
	for i := range ms.Len() {
		levels[string(ms.Get(i).Name())] = ms.Get(i).Options().(*descriptorpb.MethodOptions).GetIdempotencyLevel()
	}
	if levels["DeleteClientGrant"] != descriptorpb.MethodOptions_IDEMPOTENT || levels["Authorize"] != descriptorpb.MethodOptions_IDEMPOTENCY_UNKNOWN {
		t.Errorf("got idempotency levels %v; want DeleteClientGrant IDEMPOTENT, Authorize IDEMPOTENCY_UNKNOWN", levels)
	}
}
