package main

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	authv1 "github.com/dintero-facade/dintero-facade/gen/dintero/auth/v1"
)

// TestConnectionAge: a caller's connection is asked to go (GOAWAY) once it
// is --grpc-max-connection-age old, and the caller's next call dials anew
// (behind a Service: to whichever replica, new ones included); a call in
// flight when the age is reached finishes within the grace.
func TestConnectionAge(t *testing.T) {
	fake := slowDintero(t, time.Second)
	f := startFacade(t, fake.URL, []string{"--grpc-max-connection-age", "200ms", "--grpc-max-connection-age-grace", "20s"}, nil)
	var dials atomic.Int32
	conn, err := grpc.NewClient(f.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			dials.Add(1)
			return (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// A call that outlives the age: a second at Dintero.
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if _, err := authv1.NewAuthServiceClient(conn).DeleteClientGrant(withBearer(ctx, fake, "T123"), &authv1.DeleteClientGrantRequest{Oid: "T123", Id: "g0"}); err != nil {
		t.Fatalf("a call in flight when its connection reached its age: %v; want it finished", err)
	}
	health := healthpb.NewHealthClient(conn)
	for deadline := time.Now().Add(10 * time.Second); dials.Load() < 2; time.Sleep(20 * time.Millisecond) {
		if _, err := health.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
			t.Fatalf("a call after the connection was asked to go: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the caller dialed %d times in 10 s with --grpc-max-connection-age 200ms; want a new connection", dials.Load())
		}
	}
}
