package main

import (
	"context"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	authv1 "github.com/dintero-facade/dintero-facade/gen/dintero/auth/v1"
	"github.com/dintero-facade/dintero-facade/internal/probe"
	"github.com/dintero-facade/dintero-facade/internal/telemetry"
)

// TestStreamWorkers: as many calls at once as may be in flight to Dintero
// all run on the gRPC server's reused workers, whose stacks have grown
// already, and none on a fresh goroutine.
func TestStreamWorkers(t *testing.T) {
	for _, tc := range []struct{ limit, calls int }{
		{256, 256},
		{1, minStreamWorkers},
	} {
		svc := &stackProbe{arrived: make(chan struct{}), want: int64(tc.calls)}
		pass := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			return h(ctx, req)
		}
		gs := newGRPCServer(Config{MaxConcurrent: tc.limit, MaxRecvMsgBytes: 1 << 20}, func(r grpc.ServiceRegistrar) { authv1.RegisterAuthServiceServer(r, svc) }, pass, nil, &telemetry.Telemetry{GRPC: telemetry.NewGRPCMetrics()}, probe.New())
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go func() { _ = gs.Serve(l) }()
		conn, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		client := authv1.NewAuthServiceClient(conn)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var wg sync.WaitGroup
		var failed atomic.Int64
		for range tc.calls {
			wg.Go(func() {
				if _, err := client.DeleteClientGrant(ctx, &authv1.DeleteClientGrantRequest{}); err != nil {
					failed.Add(1)
				}
			})
		}
		wg.Wait()
		cancel()
		_ = conn.Close()
		gs.Stop()
		if failed.Load() != 0 || svc.onWorker.Load() != int64(tc.calls) {
			t.Errorf("--max-concurrent-upstream %d, %d calls at once: %d ran on a worker, %d failed; want all on workers", tc.limit, tc.calls, svc.onWorker.Load(), failed.Load())
		}
	}
	for limit, want := range map[int]uint32{256: 256, 1: minStreamWorkers, 1 << 20: maxStreamWorkers} {
		if got := streamWorkers(Config{MaxConcurrent: limit}); got != want {
			t.Errorf("streamWorkers(--max-concurrent-upstream %d) = %d; want %d", limit, got, want)
		}
	}
}

// stackProbe holds every call until want calls are in, and counts those
// that run on a gRPC stream worker.
type stackProbe struct {
	authv1.UnimplementedAuthServiceServer
	arrived  chan struct{}
	n, want  int64
	onWorker atomic.Int64
	once     sync.Once
	mu       sync.Mutex
}

func (p *stackProbe) DeleteClientGrant(ctx context.Context, _ *authv1.DeleteClientGrantRequest) (*authv1.DeleteClientGrantResponse, error) {
	buf := make([]byte, 64<<10)
	if strings.Contains(string(buf[:runtime.Stack(buf, false)]), "grpc.(*Server).serverWorker") {
		p.onWorker.Add(1)
	}
	p.mu.Lock()
	p.n++
	if p.n == p.want {
		p.once.Do(func() { close(p.arrived) })
	}
	p.mu.Unlock()
	select {
	case <-p.arrived:
	case <-ctx.Done():
	}
	return &authv1.DeleteClientGrantResponse{}, nil
}
