package service_test

import (
	"context"
	"flag"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	authv1 "github.com/dintero-facade/dintero-facade/gen/dintero/auth/v1"
	"github.com/dintero-facade/dintero-facade/internal/dinteromock"
	"github.com/dintero-facade/dintero-facade/internal/dinterotest"
	"github.com/dintero-facade/dintero-facade/internal/h2transport"
	"github.com/dintero-facade/dintero-facade/service"
	"github.com/dintero-facade/dintero-facade/upstream"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, dinterotest.LeakOptions()...)
}

type env struct {
	srv     *service.Server
	fake    *dinterotest.Server
	up      *upstream.Client
	client  authv1.AuthServiceClient
	log     *dinterotest.LogBuffer
	audit   *dinterotest.LogBuffer
	metrics *prometheus.Registry
}

// setup serves the service with its interceptor over an in-memory gRPC
// connection, calling the fake Dintero through the real upstream client.
func setup(t *testing.T, mod ...func(*upstream.Options, *service.Options)) *env {
	t.Helper()
	fake := dinterotest.New(t)
	tr := h2transport.New(5 * time.Second)
	t.Cleanup(tr.CloseIdleConnections)
	opts := upstream.Options{BaseURL: fake.URL, BackoffBase: time.Millisecond, BackoffMax: 2 * time.Millisecond, Transport: tr}
	reg := prometheus.NewRegistry()
	m, err := service.NewCounters(reg)
	if err != nil {
		t.Fatal(err)
	}
	so := service.Options{Counters: m}
	for _, f := range mod {
		f(&opts, &so)
	}
	up, err := upstream.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	logs, audits := &dinterotest.LogBuffer{}, &dinterotest.LogBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	audit := slog.New(slog.NewJSONHandler(audits, nil))
	ic, err := service.Interceptor(service.InterceptorOptions{Log: log, Audit: audit})
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(grpc.ChainUnaryInterceptor(ic))
	srv := service.New(up, so)
	authv1.RegisterAuthServiceServer(gs, srv)
	l := bufconn.Listen(1 << 20)
	go func() { _ = gs.Serve(l) }()
	t.Cleanup(gs.Stop)
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return l.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &env{srv: srv, fake: fake, up: up, client: authv1.NewAuthServiceClient(conn), log: logs, audit: audits, metrics: reg}
}

// credentials gives the facade the test client's credentials for T123.
func credentials(o *upstream.Options, _ *service.Options) {
	o.Credentials = []upstream.Credentials{{AccountID: "T123", ClientID: dinterotest.ClientID, ClientSecret: dinterotest.ClientSecret}}
}

// withToken is ctx with a caller's own token for account.
func (e *env) withToken(ctx context.Context, account string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", e.fake.Bearer(account))
}

// goodAuthorize is a valid authorize of the test application on T123; the
// tests that need it to succeed add its code.
func goodAuthorize() *authv1.AuthorizeRequest {
	return &authv1.AuthorizeRequest{
		Oid: "T123", Audience: dinteromock.Audience("T123"), Scope: "openid",
		ResponseType: "authenticate", ClientId: dinterotest.App, State: "s-1", RedirectUri: dinterotest.Callback,
		VerificationCode: "vc-4711-secret", Connection: "sms",
	}
}

// cmpProto returns the difference between two messages, "" when equal.
func cmpProto(got, want proto.Message) string {
	return cmp.Diff(want, got, protocmp.Transform())
}

// details returns a status's ErrorInfo and BadRequest.
func details(st *status.Status) (*errdetails.ErrorInfo, *errdetails.BadRequest) {
	var info *errdetails.ErrorInfo
	var br *errdetails.BadRequest
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			info = d
		case *errdetails.BadRequest:
			br = d
		}
	}
	return info, br
}
