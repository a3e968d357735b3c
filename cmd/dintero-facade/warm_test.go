package main

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	authv1 "github.com/dintero-facade/dintero-facade/gen/dintero/auth/v1"
	"github.com/dintero-facade/dintero-facade/internal/dinterotest"
)

var facadeCredentials = map[string]string{"DINTERO_CLIENT_ID": dinterotest.ClientID, "DINTERO_CLIENT_SECRET": dinterotest.ClientSecret, "DINTERO_ACCOUNT_ID": "T123"}

// TestWarmStart: before it reports SERVING, the facade holds the token and
// the signing keys of the accounts it has credentials for, so the first
// call pays for neither.
func TestWarmStart(t *testing.T) {
	fake := dinterotest.New(t)
	fake.AddGrants("T123", "g")
	f := startFacade(t, fake.URL, nil, facadeCredentials)
	if fake.Count(dinterotest.OpToken) != 1 || fake.Count(dinterotest.OpKeys) != 1 {
		t.Fatalf("at SERVING: %d token fetches, %d key fetches; want 1 and 1", fake.Count(dinterotest.OpToken), fake.Count(dinterotest.OpKeys))
	}
	h, err := healthpb.NewHealthClient(f.conn).Check(context.Background(), &healthpb.HealthCheckRequest{Service: authv1.AuthService_ServiceDesc.ServiceName})
	if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health: got %v, %v; want SERVING", h, err)
	}
	if _, err := f.client.DeleteClientGrant(context.Background(), &authv1.DeleteClientGrantRequest{Oid: "T123", Id: "g"}); err != nil {
		t.Fatal(err)
	}
	if n := fake.Count(dinterotest.OpToken); n != 1 {
		t.Errorf("the first call fetched a token again: %d fetches", n)
	}
	waitLog(t, f, "warmed up", 1)
}

// TestWarmStartUnreachable: with Dintero unreachable, the facade reports
// SERVING within --warm-timeout, says so, and keeps trying until Dintero
// is back.
func TestWarmStartUnreachable(t *testing.T) {
	fake := dinterotest.New(t)
	silent, stopSilent := dinterotest.SilentServer(t)
	start := time.Now()
	f := startFacade(t, silent, []string{"--warm-timeout", "300ms"}, facadeCredentials)
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("started after %v; want within the warm-up bound", took)
	}
	if code, _, body := f.do(t, http.MethodGet, "/healthz", nil); code != http.StatusOK {
		t.Errorf("/healthz: got %d %s; want 200: the facade serves without Dintero", code, body)
	}
	waitLog(t, f, "Dintero could not be had at start", 1)
	// The first retry, after a second, fails too, and says so.
	waitLog(t, f, "Dintero still cannot be had", 1)
	if strings.Contains(f.log.String(), "warmed up") {
		t.Fatalf("the log says warmed up while Dintero is silent:\n%s", f.log.String())
	}
	if strings.Contains(f.log.String(), "verification code") {
		t.Errorf("the warm-up speaks of a verification code, which it has none of:\n%s", f.log.String())
	}
	// Dintero comes back at the same address.
	stopSilent()
	stop := fake.ServeAt(t, silent)
	defer stop()
	deadline := time.Now().Add(10 * time.Second)
	for fake.Count(dinterotest.OpKeys) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the facade did not try again:\n%s", f.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	waitLog(t, f, "warmed up", 1)
}

// TestNoWarmStart: --warm-timeout 0 starts without touching Dintero.
func TestNoWarmStart(t *testing.T) {
	fake := dinterotest.New(t)
	startFacade(t, fake.URL, []string{"--warm-timeout", "0"}, facadeCredentials)
	if n := len(fake.Requests()); n != 0 {
		t.Errorf("Dintero got %d requests; want none", n)
	}
}

// TestNotServingWhileWarming: while the warm-up waits for Dintero, the
// listeners accept but health reports NOT_SERVING (503 on /healthz), and
// /livez says the process is alive.
func TestNotServingWhileWarming(t *testing.T) {
	fake := dinterotest.New(t)
	release := make(chan struct{})
	fake.Handle(dinterotest.OpToken, func(w http.ResponseWriter, r *http.Request) {
		<-release
		fake.Mock.ServeHTTP(w, r)
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	httpAddr := l.Addr().String()
	l.Close()
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	grpcAddr := gl.Addr().String()
	gl.Close()
	ready := make(chan struct{})
	go func() {
		defer close(release)
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			resp, err := http.Get("http://" + httpAddr + "/healthz")
			if err != nil {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusServiceUnavailable {
				t.Errorf("/healthz during the warm-up: got %d; want 503", resp.StatusCode)
			}
			// Liveness is not readiness: the process is alive.
			if resp, err := http.Get("http://" + httpAddr + "/livez"); err != nil {
				t.Errorf("/livez during the warm-up: %v", err)
			} else {
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Errorf("/livez during the warm-up: got %d; want 200", resp.StatusCode)
				}
			}
			conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Error(err)
				return
			}
			defer conn.Close()
			for _, svc := range []string{"", authv1.AuthService_ServiceDesc.ServiceName} {
				h, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{Service: svc})
				if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
					t.Errorf("gRPC health of %q during the warm-up: got %v, %v; want NOT_SERVING", svc, h, err)
				}
			}
			return
		}
		t.Error("the HTTP listener never accepted during the warm-up")
	}()
	f := startFacade(t, fake.URL, []string{"--http-addr", httpAddr, "--grpc-addr", grpcAddr}, facadeCredentials, func(o *Options) {
		r := o.Ready
		o.Ready = func(l listeners) { close(ready); r(l) }
	})
	<-ready
	if code, _, _ := f.do(t, http.MethodGet, "/healthz", nil); code != http.StatusOK {
		t.Errorf("/healthz after the warm-up: got %d; want 200", code)
	}
}
