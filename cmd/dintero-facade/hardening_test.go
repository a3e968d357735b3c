package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	authv1 "github.com/dintero-facade/dintero-facade/gen/dintero/auth/v1"
	"github.com/dintero-facade/dintero-facade/internal/dinterotest"
)

// TestProbesOnTheirOwnListener: under mutual TLS, the kubelet (no client
// certificate) reaches gRPC health and /healthz on --health-addr, a plain
// listener, while the service's listeners refuse it; both turn on shutdown.
func TestProbesOnTheirOwnListener(t *testing.T) {
	pki := dinterotest.NewPKI(t)
	fake := dinterotest.New(t)
	var healthAddr string
	f := startFacade(t, fake.URL, []string{"--tls-cert", pki.CertFile, "--tls-key", pki.KeyFile, "--client-ca", pki.CAFile,
		"--health-addr", "127.0.0.1:0", "--shutdown-delay", "1s"}, nil, func(o *Options) {
		ready := o.Ready
		o.Ready = func(l listeners) { healthAddr = l.Health.String(); ready(l) }
	})
	probe, err := grpc.NewClient(healthAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	hc := &http.Client{Transport: &http.Transport{}}
	defer hc.CloseIdleConnections()
	check := func(wantGRPC healthpb.HealthCheckResponse_ServingStatus, wantHTTP int) {
		t.Helper()
		for _, svc := range []string{"", "dintero.auth.v1.AuthService"} {
			resp, err := healthpb.NewHealthClient(probe).Check(context.Background(), &healthpb.HealthCheckRequest{Service: svc})
			if err != nil || resp.GetStatus() != wantGRPC {
				t.Errorf("gRPC health of %q on the probe listener: got %v, %v; want %v", svc, resp, err, wantGRPC)
			}
		}
		resp, err := hc.Get("http://" + healthAddr + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != wantHTTP {
			t.Errorf("/healthz on the probe listener: got %d; want %d", resp.StatusCode, wantHTTP)
		}
	}
	check(healthpb.HealthCheckResponse_SERVING, 200)

	noCert := tlsConn(t, f.grpcAddr, pki.ClientTLS())
	if _, err := healthpb.NewHealthClient(noCert).Check(context.Background(), &healthpb.HealthCheckRequest{}); err == nil {
		t.Error("gRPC health on the mTLS listener without a client certificate: accepted")
	}
	if resp, err := hc.Get("http://" + healthAddr + "/v1/accounts/T123/auth/client-grants/g"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("the gateway on the probe listener: got %d; want 404, only probes there", resp.StatusCode)
		}
	}

	stopped := make(chan error, 1)
	go func() { stopped <- f.stop() }()
	deadline := time.Now().Add(900 * time.Millisecond)
	for !strings.Contains(f.log.String(), "shutting down") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	check(healthpb.HealthCheckResponse_NOT_SERVING, 503)
	if err := <-stopped; err != nil {
		t.Errorf("shutdown: %v", err)
	}
}

// TestMaxDeadline: a caller's deadline beyond --max-deadline is cut to it,
// a call without one gets --dintero-timeout, and the HTTP server's write
// timeout lies above --max-deadline, so that a call that waits out a
// Retry-After still reaches its caller through the gateway.
func TestMaxDeadline(t *testing.T) {
	fake := dinterotest.New(t)
	fake.AddGrants("T123", "g1", "g2")
	f := startFacade(t, fake.URL, []string{"--max-deadline", "3s", "--dintero-timeout", "500ms"}, nil)
	// A 200 whose body never comes: the facade reads it until the call's
	// deadline ends, and the deletion is then answered (its body
	// undecoded). When that happens tells the deadline the call had
	// (--dintero-timeout bounds only each attempt's wait for headers).
	fake.HandleRaw(dinterotest.OpDelete, dinterotest.StallBody)
	for _, tc := range []struct {
		name     string
		deadline time.Duration
		want     codes.Code
		min, max time.Duration
	}{
		// The lower bounds carry the promise (the deadline was not cut
		// further); the upper ones only catch a deadline not applied, and
		// leave the answer's way back a second on a busy machine.
		{"a 30 s deadline is cut to 3 s", 30 * time.Second, codes.OK, 2900 * time.Millisecond, 4500 * time.Millisecond},
		{"no deadline: 500 ms", 0, codes.OK, 450 * time.Millisecond, 2 * time.Second},
		// The facade keeps a tenth of a caller's deadline (50 to 100 ms),
		// for its answer's way back, so the deletion is answered before the
		// caller gives up: OK, not DeadlineExceeded, proves the margin. A
		// deadline of 2 s keeps the whole 100 ms (200 ms kept 20 ms, which a
		// busy machine overran).
		{"a 2 s deadline stays, less its margin", 2 * time.Second, codes.OK, 1500 * time.Millisecond, 2 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := withBearer(context.Background(), fake, "T123")
			if tc.deadline > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.deadline)
				defer cancel()
			}
			oks := strings.Count(f.log.String(), `"code":"OK"`)
			start := time.Now()
			_, err := f.client.DeleteClientGrant(ctx, &authv1.DeleteClientGrantRequest{Oid: "T123", Id: "g1"})
			took := time.Since(start)
			if tc.deadline > 0 && tc.deadline < time.Minute && status.Code(err) == codes.DeadlineExceeded {
				// The facade answered at its deadline, less the margin,
				// and the way back overran the margin: a busy machine.
				// Its own line must say OK (service.TestDeadlineBound
				// pins the margin without a clock).
				waitLog(t, f, `"code":"OK"`, oks+1)
				t.Logf("the facade's OK reached the caller after its deadline (%v): a busy machine", took)
				return
			}
			if status.Code(err) != tc.want || took < tc.min || took > tc.max {
				t.Errorf("got %v after %v; want %v after %v to %v", err, took, tc.want, tc.min, tc.max)
			}
		})
	}

	fake.HandleRaw(dinterotest.OpDelete, dinterotest.Times(1, dinterotest.RateLimited(func() string { return "1" }), fake.Mock))
	h := bearer(fake, "T123")
	h["Grpc-Timeout"] = "30S"
	start := time.Now()
	code, _, body := f.do(t, http.MethodDelete, "/v1/accounts/T123/auth/client-grants/g2", h)
	if took := time.Since(start); code != 200 || took < 900*time.Millisecond {
		t.Errorf("through the gateway after a Retry-After of 1 s: got %d %s after %v; want 200 after about 1 s", code, body, took)
	}
	srv := newHTTPServer(http.NotFoundHandler(), Config{MaxDeadline: time.Minute, MaxRecvMsgBytes: 1}, slog.New(slog.DiscardHandler), nil)
	if srv.WriteTimeout <= time.Minute {
		t.Errorf("write timeout %v with --max-deadline 1m; want it above", srv.WriteTimeout)
	}
}

// TestGRPCMetadataBounded: metadata is bounded like a message: a 4 MiB
// user agent is refused, and no line of the log grows with it.
func TestGRPCMetadataBounded(t *testing.T) {
	fake := dinterotest.New(t)
	fake.AddGrants("T123", "g")
	f := startFacade(t, fake.URL, nil, nil)
	ctx := metadata.AppendToOutgoingContext(withBearer(context.Background(), fake, "T123"), "x-big", strings.Repeat("u", 4<<20))
	if _, err := f.client.DeleteClientGrant(ctx, &authv1.DeleteClientGrantRequest{Oid: "T123", Id: "g"}); err == nil {
		t.Error("4 MiB of metadata: accepted")
	}
	conn, err := grpc.NewClient(f.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithUserAgent(strings.Repeat("a", 4<<20)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := authv1.NewAuthServiceClient(conn).DeleteClientGrant(withBearer(context.Background(), fake, "T123"), &authv1.DeleteClientGrantRequest{Oid: "T123", Id: "g"}); err == nil {
		t.Error("a 4 MiB user agent: accepted")
	}
	for _, l := range strings.Split(f.log.String(), "\n") {
		if len(l) > 64<<10 {
			t.Errorf("a log line of %d bytes", len(l))
		}
	}
	if _, err := f.client.DeleteClientGrant(withBearer(context.Background(), fake, "T123"), &authv1.DeleteClientGrantRequest{Oid: "T123", Id: "g"}); err != nil {
		t.Errorf("a good call afterwards: %v", err)
	}
	if n := fake.Count(dinterotest.OpDelete); n != 1 {
		t.Errorf("Dintero got %d deletes; want only the good call's", n)
	}
}

// TestPprofOnLoopbackOnly: profiles expose the process's memory; the
// facade refuses to serve them anywhere but loopback.
func TestPprofOnLoopbackOnly(t *testing.T) {
	for _, addr := range []string{":6060", "0.0.0.0:6060", "[::]:6060", "10.0.0.1:6060", "example.com:6060", "6060"} {
		if _, err := parseConfig([]string{"--pprof-addr", addr}, envOf(nil), nil); err == nil || !strings.Contains(err.Error(), "loopback") {
			t.Errorf("--pprof-addr %s: got %v; want it refused", addr, err)
		}
	}
	for _, addr := range []string{"127.0.0.1:6060", "[::1]:0", "localhost:6060"} {
		if _, err := parseConfig([]string{"--pprof-addr", addr}, envOf(nil), nil); err != nil {
			t.Errorf("--pprof-addr %s: %v", addr, err)
		}
	}
}

// TestTLSReload: the certificate and the client CA are read again when
// their Secret changes: new handshakes get the new certificate and are
// judged by the new CA, connections already open are not dropped, and a
// bad file keeps the previous ones.
func TestTLSReload(t *testing.T) {
	a, b := dinterotest.NewPKI(t), dinterotest.NewPKI(t)
	files := func(p *dinterotest.PKI) map[string][]byte {
		out := map[string][]byte{}
		for name, path := range map[string]string{"tls.crt": p.CertFile, "tls.key": p.KeyFile, "ca.crt": p.CAFile} {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			out[name] = b
		}
		return out
	}
	sd := dinterotest.NewSecretDir(t)
	sd.Write(t, files(a))
	fake := dinterotest.New(t)
	fake.AddGrants("T123", "g1", "g2", "g3", "g4")
	f := startFacade(t, fake.URL, []string{"--tls-cert", sd.Path("tls.crt"), "--tls-key", sd.Path("tls.key"), "--client-ca", sd.Path("ca.crt")}, nil)
	roots := x509.NewCertPool()
	roots.AddCert(caOf(t, a))
	roots.AddCert(caOf(t, b))
	clientOf := func(p *dinterotest.PKI) *tls.Config {
		return &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{p.Client(t, "caller", "spiffe://example.org/caller")}, MinVersion: tls.VersionTLS12}
	}
	call := func(conn *grpc.ClientConn, id string) (*x509.Certificate, error) {
		var p peer.Peer
		_, err := authv1.NewAuthServiceClient(conn).DeleteClientGrant(withBearer(context.Background(), fake, "T123"), &authv1.DeleteClientGrantRequest{Oid: "T123", Id: id}, grpc.Peer(&p))
		if err != nil {
			return nil, err
		}
		return p.AuthInfo.(credentials.TLSInfo).State.PeerCertificates[0], nil
	}
	old := tlsConn(t, f.grpcAddr, clientOf(a))
	cert, err := call(old, "g1")
	if err != nil || cert.Issuer.String() != caOf(t, a).Subject.String() || cert.SerialNumber.Cmp(leafOf(t, a).SerialNumber) != 0 {
		t.Fatalf("before the rotation: got %v, %v; want A's certificate", cert, err)
	}

	sd.Write(t, files(b))
	waitLog(t, f, "TLS files reloaded", 1)
	if _, err := call(old, "g2"); err != nil {
		t.Errorf("the connection open before the rotation: %v; want it kept", err)
	}
	if cert, err := call(tlsConn(t, f.grpcAddr, clientOf(b)), "g3"); err != nil || cert.SerialNumber.Cmp(leafOf(t, b).SerialNumber) != 0 {
		t.Errorf("a new connection after the rotation: got %v, %v; want B's certificate", cert, err)
	}
	if _, err := call(tlsConn(t, f.grpcAddr, clientOf(a)), "g4"); err == nil {
		t.Error("a client certificate of the old CA on a new connection: accepted")
	}

	sd.Write(t, map[string][]byte{"tls.crt": []byte("not a certificate"), "tls.key": files(b)["tls.key"], "ca.crt": files(b)["ca.crt"]})
	waitLog(t, f, "TLS files not reloaded", 1)
	if cert, err := call(tlsConn(t, f.grpcAddr, clientOf(b)), "g4"); err != nil || cert.SerialNumber.Cmp(leafOf(t, b).SerialNumber) != 0 {
		t.Errorf("after a bad file: got %v, %v; want B's certificate still", cert, err)
	}
}

func caOf(t *testing.T, p *dinterotest.PKI) *x509.Certificate   { return parsePEM(t, p.CAFile) }
func leafOf(t *testing.T, p *dinterotest.PKI) *x509.Certificate { return parsePEM(t, p.CertFile) }

func parsePEM(t *testing.T, file string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s holds no PEM", file)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
