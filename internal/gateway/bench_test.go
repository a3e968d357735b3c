package gateway_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	authv1 "github.com/dintero-facade/dintero-facade/gen/dintero/auth/v1"
	"github.com/dintero-facade/dintero-facade/internal/dinterotest"
	"github.com/dintero-facade/dintero-facade/internal/gateway"
	"github.com/dintero-facade/dintero-facade/service"
	"github.com/dintero-facade/dintero-facade/upstream"
)

const grantJSON = `{"id":"3d5c2f3a-6a1e-4e55-9d2f-2f1b8f0c9a77","client_id":"c","audience":"https://api.dintero.com/v1/accounts/T12345678","scope":["admin:accounts"],"type":"client_credentials","created_at":"2024-01-01T00:00:00Z","updated_at":"2024-01-01T00:00:00Z","deleted_at":"2024-01-02T00:00:00Z","created_by":"x","deleted_by":"y"}`

// benchServer is the service over a stub Dintero in memory that answers
// every DELETE with grantJSON, and the interceptor with discarding logs.
func benchServer(b *testing.B) (*service.Server, grpc.UnaryServerInterceptor) {
	stub := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, grantJSON)
	})
	up, err := upstream.New(upstream.Options{BaseURL: "https://api.dintero.com/v1", Transport: dinterotest.MemTransport{Handler: stub}})
	if err != nil {
		b.Fatal(err)
	}
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	ic, err := service.Interceptor(service.InterceptorOptions{Log: log, Audit: log})
	if err != nil {
		b.Fatal(err)
	}
	return service.New(up, service.Options{}), ic
}

// BenchmarkGateway is the cost of a DeleteClientGrant through the
// gateway, in process, the service's included (interceptor, log line at
// info level to io.Discard, the upstream client against a stub in
// memory); BenchmarkDirect is the same call without the gateway.
func BenchmarkGateway(b *testing.B) {
	srv, ic := benchServer(b)
	h, err := gateway.New(context.Background(), func(r grpc.ServiceRegistrar) { authv1.RegisterAuthServiceServer(r, srv) }, ic, gateway.Options{MaxQuery: 16 << 10})
	if err != nil {
		b.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodDelete, "/v1/accounts/T12345678/auth/client-grants/3d5c2f3a-6a1e-4e55-9d2f-2f1b8f0c9a77", nil)
	req.Header.Set("Authorization", "Bearer tok")
	req.Header.Set("User-Agent", "bench")
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatalf("got %d %s", w.Code, w.Body)
		}
	}
}

func BenchmarkDirect(b *testing.B) {
	srv, ic := benchServer(b)
	info := &grpc.UnaryServerInfo{Server: srv, FullMethod: authv1.AuthService_DeleteClientGrant_FullMethodName}
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer tok"))
	ctx = grpc.NewContextWithServerTransportStream(ctx, nopStream{})
	req := &authv1.DeleteClientGrantRequest{Oid: "T12345678", Id: "3d5c2f3a-6a1e-4e55-9d2f-2f1b8f0c9a77"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ic(ctx, req, info, func(ctx context.Context, r any) (any, error) {
			return srv.DeleteClientGrant(ctx, r.(*authv1.DeleteClientGrantRequest))
		}); err != nil {
			b.Fatal(err)
		}
	}
}

type nopStream struct{}

func (nopStream) Method() string                  { return authv1.AuthService_DeleteClientGrant_FullMethodName }
func (nopStream) SetHeader(metadata.MD) error     { return nil }
func (nopStream) SendHeader(metadata.MD) error    { return nil }
func (nopStream) SetTrailer(md metadata.MD) error { return nil }
