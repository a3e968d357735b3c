package service_test

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	authv1 "github.com/dintero-facade/dintero-facade/gen/dintero/auth/v1"
	"github.com/dintero-facade/dintero-facade/internal/dinteromock"
	"github.com/dintero-facade/dintero-facade/internal/dinterotest"
	"github.com/dintero-facade/dintero-facade/service"
	"github.com/dintero-facade/dintero-facade/upstream"
)

// BenchmarkDeleteClientGrant is the service's cost per call, interceptor
// and per-call log line (JSON, info level, to io.Discard) and audit line
// included, over an in-memory transport to the mock in its stateless mode
// (whose cost is included).
func BenchmarkDeleteClientGrant(b *testing.B) {
	key, _ := dinterotest.TestKeys(b)
	m, err := dinteromock.New(dinteromock.Options{Stateless: true, Key: key})
	if err != nil {
		b.Fatal(err)
	}
	tok, err := m.IssueToken("bench", dinteromock.Audience("T12345678"), []string{"admin:accounts"})
	if err != nil {
		b.Fatal(err)
	}
	up, err := upstream.New(upstream.Options{BaseURL: "https://api.dintero.com/v1", Transport: dinterotest.MemTransport{Handler: m}})
	if err != nil {
		b.Fatal(err)
	}
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	ic, err := service.Interceptor(service.InterceptorOptions{Log: log, Audit: log})
	if err != nil {
		b.Fatal(err)
	}
	srv := service.New(up, service.Options{})
	info := &grpc.UnaryServerInfo{Server: srv, FullMethod: authv1.AuthService_DeleteClientGrant_FullMethodName}
	handler := func(ctx context.Context, req any) (any, error) {
		return srv.DeleteClientGrant(ctx, req.(*authv1.DeleteClientGrantRequest))
	}
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+tok))
	ctx = grpc.NewContextWithServerTransportStream(ctx, nopStream{})
	req := &authv1.DeleteClientGrantRequest{Oid: "T12345678", Id: "3d5c2f3a-6a1e-4e55-9d2f-2f1b8f0c9a77"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ic(ctx, req, info, handler); err != nil {
			b.Fatal(err)
		}
	}
}

// nopStream stands in for the gRPC transport stream that takes response
// headers.
type nopStream struct{}

func (nopStream) Method() string                  { return authv1.AuthService_DeleteClientGrant_FullMethodName }
func (nopStream) SetHeader(metadata.MD) error     { return nil }
func (nopStream) SendHeader(metadata.MD) error    { return nil }
func (nopStream) SetTrailer(md metadata.MD) error { return nil }
