package telemetry_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	authv1 "github.com/dintero-facade/dintero-facade/gen/dintero/auth/v1"
	"github.com/dintero-facade/dintero-facade/internal/telemetry"
)

// calls are the unary calls both interceptors count: successes, status
// errors, a context's error, a plain error, and a method the server did
// not register.
var calls = []struct {
	method string
	err    error
}{
	{authv1.AuthService_DeleteClientGrant_FullMethodName, nil},
	{authv1.AuthService_DeleteClientGrant_FullMethodName, nil},
	{authv1.AuthService_DeleteClientGrant_FullMethodName, status.Error(codes.NotFound, "no grant")},
	{authv1.AuthService_DeleteClientGrant_FullMethodName, context.DeadlineExceeded},
	{authv1.AuthService_Authorize_FullMethodName, status.Error(codes.Unavailable, "down")},
	{authv1.AuthService_Authorize_FullMethodName, context.Canceled},
	{authv1.AuthService_Authorize_FullMethodName, errPlain{}},
	{"/grpc.health.v1.Health/Check", nil},
	{"/other.v1.Service/Method", status.Error(codes.Internal, "x")},
	{"/other.v1.Service/Method", nil},
}

type errPlain struct{}

func (errPlain) Error() string { return "plain" }

// server is a gRPC server with the facade's service and health, as the
// facade registers them.
func server() *grpc.Server {
	gs := grpc.NewServer()
	authv1.RegisterAuthServiceServer(gs, authv1.UnimplementedAuthServiceServer{})
	healthpb.RegisterHealthServer(gs, health.NewServer())
	return gs
}

// TestGRPCMetricsAsGoGRPCMiddleware: the series, their values and their
// help are those of go-grpc-middleware's server metrics with the
// handling-time histogram, whose names dashboards use, after the same
// calls; the histogram's sums aside, since the times differ.
func TestGRPCMetricsAsGoGRPCMiddleware(t *testing.T) {
	ours, theirs := telemetry.NewGRPCMetrics(), grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram())
	gs := server()
	ours.InitializeMetrics(gs)
	theirs.InitializeMetrics(gs)
	for _, ic := range []grpc.UnaryServerInterceptor{ours.UnaryServerInterceptor(), theirs.UnaryServerInterceptor()} {
		for _, c := range calls {
			_, _ = ic(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: c.method}, func(context.Context, any) (any, error) { return "resp", c.err })
		}
	}
	text := func(c prometheus.Collector) string {
		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(c)
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for _, mf := range mfs {
			fmt.Fprintf(&b, "%s %s %s\n", mf.GetName(), mf.GetType(), mf.GetHelp())
			for _, m := range mf.GetMetric() {
				var labels []string
				for _, l := range m.GetLabel() {
					labels = append(labels, l.GetName()+"="+l.GetValue())
				}
				var v string
				switch {
				case m.GetCounter() != nil:
					v = fmt.Sprint(m.GetCounter().GetValue())
				case m.GetHistogram() != nil:
					// The count and the bounds; the times differ.
					h := m.GetHistogram()
					v = fmt.Sprint(h.GetSampleCount())
					for _, bk := range h.GetBucket() {
						v += fmt.Sprintf(" le=%g", bk.GetUpperBound())
					}
				}
				fmt.Fprintf(&b, "  %s %s\n", strings.Join(labels, ","), v)
			}
		}
		return b.String()
	}
	got, want := strings.Split(text(ours), "\n"), strings.Split(text(theirs), "\n")
	if !slices.Equal(got, want) {
		for i := range max(len(got), len(want)) {
			g, w := "", ""
			if i < len(got) {
				g = got[i]
			}
			if i < len(want) {
				w = want[i]
			}
			if g != w {
				t.Errorf("line %d: ours %q; go-grpc-middleware's %q", i, g, w)
			}
		}
	}
	if n := testutil.CollectAndCount(ours, "grpc_server_handled_total"); n < 2*17 {
		t.Errorf("%d handled series; want every code of each registered method", n)
	}
}

// BenchmarkGRPCMetrics is the cost per call of counting it.
func BenchmarkGRPCMetrics(b *testing.B) {
	for _, bc := range []struct {
		name string
		ic   grpc.UnaryServerInterceptor
		init func(*grpc.Server)
	}{
		{"ours", nil, nil},
		{"go-grpc-middleware", nil, nil},
	} {
		b.Run(bc.name, func(b *testing.B) {
			gs := server()
			var ic grpc.UnaryServerInterceptor
			if bc.name == "ours" {
				m := telemetry.NewGRPCMetrics()
				m.InitializeMetrics(gs)
				ic = m.UnaryServerInterceptor()
			} else {
				m := grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram())
				m.InitializeMetrics(gs)
				ic = m.UnaryServerInterceptor()
			}
			info := &grpc.UnaryServerInfo{FullMethod: authv1.AuthService_DeleteClientGrant_FullMethodName}
			h := func(context.Context, any) (any, error) { return "resp", nil }
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				_, _ = ic(ctx, nil, info, h)
			}
		})
	}
}
