package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	authv1 "github.com/dintero-facade/dintero-facade/gen/dintero/auth/v1"
	"github.com/dintero-facade/dintero-facade/internal/dinteromock"
	"github.com/dintero-facade/dintero-facade/internal/dinterotest"
)

var (
	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
)

// binary builds the real dintero-facade once per test run.
func binary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "dintero-facade-test-")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "dintero-facade")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

func removeBinary() {
	if binDir != "" {
		os.RemoveAll(binDir)
	}
}

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// process is the facade binary running.
type process struct {
	cmd      *exec.Cmd
	grpcAddr string
	httpAddr string
	stderr   *dinterotest.LogBuffer
	exited   chan error
}

func startBinary(t *testing.T, dinteroURL string, args ...string) *process {
	t.Helper()
	p := &process{grpcAddr: freeAddr(t), httpAddr: freeAddr(t), stderr: &dinterotest.LogBuffer{}, exited: make(chan error, 1)}
	p.cmd = exec.Command(binary(t), append([]string{"--dintero-url", dinteroURL}, args...)...)
	p.cmd.Env = append(os.Environ(), "DINTERO_FACADE_GRPC_ADDR="+p.grpcAddr, "DINTERO_FACADE_HTTP_ADDR="+p.httpAddr)
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- p.cmd.Wait() }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.exited
	})
	deadline := time.Now().Add(10 * time.Second)
	for p.healthz() != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatalf("the facade did not become healthy:\n%s", p.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return p
}

// healthz returns /healthz's status, 0 when the connection fails.
func (p *process) healthz() int {
	c := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://" + p.httpAddr + "/healthz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// wait returns the exit code, failing the test after limit.
func (p *process) wait(t *testing.T, limit time.Duration) int {
	t.Helper()
	select {
	case err := <-p.exited:
		p.exited <- err
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(limit):
		t.Fatalf("the facade did not exit within %v:\n%s", limit, p.stderr.String())
		return -1
	}
}

// slowDintero answers DELETE after d, or when the request is canceled; it
// holds grants g0 to g99 of T123.
func slowDintero(t *testing.T, d time.Duration) *dinterotest.Server {
	fake := dinterotest.New(t)
	for i := range 100 {
		fake.AddGrants("T123", fmt.Sprint("g", i))
	}
	fake.HandleRaw(dinterotest.OpDelete, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(d):
			fake.Mock.ServeHTTP(w, r)
		case <-r.Context().Done():
		}
	})
	return fake
}

// inflight starts n DeleteClientGrant calls and waits until Dintero has
// them all; the returned channel yields each call's error.
func inflight(t *testing.T, conn *grpc.ClientConn, fake *dinterotest.Server, n int) <-chan error {
	t.Helper()
	errs := make(chan error, n)
	client := authv1.NewAuthServiceClient(conn)
	for i := range n {
		go func() {
			_, err := client.DeleteClientGrant(withBearer(context.Background(), fake, "T123"), &authv1.DeleteClientGrantRequest{Oid: "T123", Id: fmt.Sprint("g", i)})
			errs <- err
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for fake.Count(dinterotest.OpDelete) < n {
		if time.Now().After(deadline) {
			t.Fatalf("Dintero got %d of %d calls", fake.Count(dinterotest.OpDelete), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return errs
}

// TestSIGTERMDrains: with 100 calls in flight, on SIGTERM the facade reports NOT_SERVING at once,
// keeps accepting for --shutdown-delay, then refuses new connections, lets
// every call in flight finish, and exits 0.
func TestSIGTERMDrains(t *testing.T) {
	fake := slowDintero(t, 2*time.Second)
	p := startBinary(t, fake.URL, "--shutdown-delay", "500ms", "--shutdown-grace", "10s")
	conn, err := grpc.NewClient(p.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const calls = 100
	errs := inflight(t, conn, fake, calls)

	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for p.healthz() != http.StatusServiceUnavailable {
		if time.Since(start) > 400*time.Millisecond {
			t.Fatalf("/healthz did not answer 503 during the shutdown delay")
		}
		time.Sleep(5 * time.Millisecond)
	}
	resp, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("gRPC health: got %v, %v; want NOT_SERVING", resp, err)
	}
	// After the delay, while the calls still run, new connections are refused.
	time.Sleep(time.Until(start.Add(1200 * time.Millisecond)))
	if c, err := net.DialTimeout("tcp", p.httpAddr, time.Second); err == nil {
		c.Close()
		t.Errorf("a new HTTP connection was accepted after the shutdown delay")
	}
	if c, err := net.DialTimeout("tcp", p.grpcAddr, time.Second); err == nil {
		c.Close()
		t.Errorf("a new gRPC connection was accepted after the shutdown delay")
	}
	for range calls {
		if err := <-errs; err != nil {
			t.Errorf("a call in flight failed: %v", err)
		}
	}
	if code := p.wait(t, 10*time.Second); code != 0 {
		t.Errorf("got exit code %d; want 0:\n%s", code, p.stderr.String())
	}
}

// TestSIGTERMGraceExpires: calls that outlive --shutdown-grace are cut and
// the exit code says so.
func TestSIGTERMGraceExpires(t *testing.T) {
	fake := slowDintero(t, 30*time.Second)
	p := startBinary(t, fake.URL, "--shutdown-grace", "300ms")
	conn, err := grpc.NewClient(p.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	errs := inflight(t, conn, fake, 3)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, 5*time.Second); code != 1 {
		t.Errorf("got exit code %d; want 1 when calls were cut:\n%s", code, p.stderr.String())
	}
	for range 3 {
		if err := <-errs; status.Code(err) != codes.Unavailable && status.Code(err) != codes.Canceled {
			t.Errorf("a cut call got %v; want Unavailable or Canceled", err)
		}
	}
	if !bytes.Contains([]byte(p.stderr.String()), []byte("shutdown grace expired")) {
		t.Errorf("the log does not say the grace expired:\n%s", p.stderr.String())
	}
}

// TestBinaryRefusesBadConfig: a bad configuration stops the binary at once
// with a message naming the problem.
func TestBinaryRefusesBadConfig(t *testing.T) {
	out, err := exec.Command(binary(t), "--dintero-url", "http://dintero.example.com/v1").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !bytes.Contains(out, []byte("http is allowed only for a loopback host")) {
		t.Errorf("got %v, %s; want exit 2 naming the URL problem", err, out)
	}
}

// TestSIGHUPReloadsCredentials: the binary reloads --credentials-file on
// SIGHUP. The file is a symlink into a directory the facade does not
// watch, so that only the signal can make it read the new content; after
// it, a call on the account the new content adds uses its credentials.
func TestSIGHUPReloadsCredentials(t *testing.T) {
	fake := dinterotest.New(t, dinterotest.Options{Mock: dinteromock.Options{Clients: twoClients("sighup-secret-2")}})
	fake.AddGrants("P22222222", "g")
	watched, elsewhere := t.TempDir(), t.TempDir()
	target := filepath.Join(elsewhere, "credentials.yaml")
	first := "- {account_id: T111, client_id: client-a, client_secret: secret-a-0001}\n"
	if err := os.WriteFile(target, []byte(first), 0o600); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(watched, "credentials.yaml")
	if err := os.Symlink(target, file); err != nil {
		t.Fatal(err)
	}
	p := startBinary(t, fake.URL, "--credentials-file", file)
	conn, err := grpc.NewClient(p.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := authv1.NewAuthServiceClient(conn)
	if _, err := client.DeleteClientGrant(context.Background(), &authv1.DeleteClientGrantRequest{Oid: "P22222222", Id: "g"}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("before the reload: got %v; want Unauthenticated, no credentials for P22222222", err)
	}
	if err := os.WriteFile(target, []byte(first+"- {account_id: P22222222, client_id: client-b, client_secret: sighup-secret-2}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if strings.Contains(p.stderr.String(), "credentials reloaded") {
		t.Fatal("the facade reloaded without the signal: the test cannot tell the signal's work")
	}
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	want := `"msg":"credentials reloaded","why":"SIGHUP","accounts":["P22222222","T111"]`
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(p.stderr.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no successful reload after SIGHUP; want %s in:\n%s", want, p.stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := client.DeleteClientGrant(context.Background(), &authv1.DeleteClientGrantRequest{Oid: "P22222222", Id: "g"}); err != nil {
		t.Errorf("after the reload: got %v; want the new credentials used", err)
	}
	if strings.Contains(p.stderr.String(), "sighup-secret-2") || strings.Contains(p.stderr.String(), "secret-a-0001") {
		t.Error("a client secret reached the log")
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, 5*time.Second); code != 0 {
		t.Errorf("exit code %d after SIGHUP and SIGTERM; want 0", code)
	}
}
