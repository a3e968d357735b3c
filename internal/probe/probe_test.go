package probe_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/test/bufconn"

	"github.com/dintero-facade/dintero-facade/internal/probe"
)

// TestState: health and /healthz start NOT_SERVING, follow Serve and
// Shutdown together, for the server and the named service; /livez answers
// 200 throughout, on the probes' own handler too.
func TestState(t *testing.T) {
	s := probe.New("svc")
	l := bufconn.Listen(1 << 16)
	gs := grpc.NewServer()
	s.Register(gs)
	go func() { _ = gs.Serve(l) }()
	defer gs.Stop()
	conn, err := grpc.NewClient("passthrough:///probe", grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return l.DialContext(ctx) }), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	check := func(stage string, want healthpb.HealthCheckResponse_ServingStatus, wantHTTP int) {
		t.Helper()
		for _, svc := range []string{"", "svc"} {
			r, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{Service: svc})
			if err != nil || r.GetStatus() != want {
				t.Errorf("%s: health of %q: got %v, %v; want %v", stage, svc, r.GetStatus(), err, want)
			}
		}
		w := httptest.NewRecorder()
		s.Healthz().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/healthz", nil))
		if w.Code != wantHTTP {
			t.Errorf("%s: /healthz %d; want %d", stage, w.Code, wantHTTP)
		}
		h, stop := s.Handler()
		defer stop()
		for _, path := range []string{"/healthz", "/livez"} {
			want := wantHTTP
			if path == "/livez" {
				want = http.StatusOK
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
			if w.Code != want {
				t.Errorf("%s: the probes' %s %d; want %d", stage, path, w.Code, want)
			}
		}
	}
	check("at start", healthpb.HealthCheckResponse_NOT_SERVING, http.StatusServiceUnavailable)
	s.Serve()
	check("serving", healthpb.HealthCheckResponse_SERVING, http.StatusOK)
	s.Shutdown()
	check("shutting down", healthpb.HealthCheckResponse_NOT_SERVING, http.StatusServiceUnavailable)
}
