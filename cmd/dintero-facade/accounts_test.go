package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	authv1 "github.com/dintero-facade/dintero-facade/gen/dintero/auth/v1"
	"github.com/dintero-facade/dintero-facade/internal/dinteromock"
	"github.com/dintero-facade/dintero-facade/internal/dinterotest"
)

// twoClients are a client of each of two accounts at Dintero, besides
// the test data set's.
func twoClients(secretB string) []dinteromock.Client {
	return append(dinterotest.Clients(),
		dinteromock.Client{ID: "client-a", Secret: "secret-a-0001", Accounts: []string{"T111"}, Scopes: []string{"admin:accounts"}},
		dinteromock.Client{ID: "client-b", Secret: secretB, Accounts: []string{"P22222222"}, Scopes: []string{"admin:accounts"}})
}

func credentialsYAML(secretB string) string {
	return `- account_id: T111
  client_id: client-a
  client_secret: secret-a-0001
- account_id: P22222222
  client_id: client-b
  client_secret: ` + secretB + "\n"
}

// waitLog waits until the facade's log holds want.
func waitLog(t *testing.T, f *facade, want string, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for strings.Count(f.log.String(), want) < n {
		if time.Now().After(deadline) {
			t.Fatalf("the log never said %q %d times:\n%s", want, n, f.log.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestCredentialsReload: the credentials file changes under load (a
// Kubernetes-style symlink swap): no call fails, the changed account
// fetches a new token and the other keeps its own; a bad file is refused
// and the previous credentials stay; SIGHUP reloads too.
func TestCredentialsReload(t *testing.T) {
	fake := dinterotest.New(t, dinterotest.Options{Mock: dinteromock.Options{Clients: twoClients("secret-b-0001")}, CountOnly: true})
	sd := dinterotest.NewSecretDir(t)
	sd.Write(t, map[string][]byte{"credentials.yaml": []byte(credentialsYAML("secret-b-0001"))})
	reload := make(chan struct{}, 1)
	f := startFacade(t, fake.URL, []string{"--credentials-file", sd.Path("credentials.yaml")}, nil, func(o *Options) { o.Reload = reload })

	var calls, failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 8 {
		account := []string{"T111", "P22222222"}[i%2]
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprint("g", i, "-", n)
				fake.AddGrants(account, id)
				_, err := f.client.DeleteClientGrant(context.Background(), &authv1.DeleteClientGrantRequest{Oid: account, Id: id})
				calls.Add(1)
				if err != nil {
					failed.Add(1)
					t.Errorf("a call for %s failed during the reload: %v", account, err)
				}
			}
		})
	}
	for calls.Load() < 200 {
		time.Sleep(5 * time.Millisecond)
	}
	// A rotation: Dintero first, then the facade.
	if err := fake.Mock.SetClients(twoClients("secret-b-0002")); err != nil {
		t.Fatal(err)
	}
	sd.Write(t, map[string][]byte{"credentials.yaml": []byte(credentialsYAML("secret-b-0002"))})
	waitLog(t, f, "credentials reloaded", 1)
	before := calls.Load()
	for calls.Load() < before+200 {
		time.Sleep(5 * time.Millisecond)
	}
	if a, b := len(fake.Mock.IssuedTokens("T111")), len(fake.Mock.IssuedTokens("P22222222")); a != 1 || b != 2 {
		t.Errorf("token fetches: %d for T111, %d for P22222222; want 1 (unchanged) and 2 (changed)", a, b)
	}

	sd.Write(t, map[string][]byte{"credentials.yaml": []byte("- account_id: nope\n  client_id: x\n  client_secret: leaked-if-logged\n")})
	waitLog(t, f, "credentials not reloaded", 1)
	before = calls.Load()
	for calls.Load() < before+200 {
		time.Sleep(5 * time.Millisecond)
	}
	reload <- struct{}{}
	waitLog(t, f, `"why":"SIGHUP"`, 1)
	close(stop)
	wg.Wait()
	if failed.Load() != 0 {
		t.Errorf("%d of %d calls failed", failed.Load(), calls.Load())
	}
	if strings.Contains(f.log.String(), "leaked-if-logged") || strings.Contains(f.log.String(), "secret-b-0002") {
		t.Error("a client secret reached the log")
	}
	t.Logf("%d calls during two reloads and a refused file, %d failed", calls.Load(), failed.Load())
}

// TestPolicy runs the policy table over real mutual TLS.
func TestPolicy(t *testing.T) {
	pki := dinterotest.NewPKI(t)
	fake := dinterotest.New(t, dinterotest.Options{Mock: dinteromock.Options{Clients: twoClients("secret-b-0001")}})
	fake.AddGrants("T111", "g")
	fake.AddGrants("P22222222", "g")
	fake.AddCode("T111", "v")
	dir := t.TempDir()
	creds := filepath.Join(dir, "credentials.yaml")
	policy := filepath.Join(dir, "policy.yaml")
	_ = os.WriteFile(creds, []byte(credentialsYAML("secret-b-0001")), 0o600)
	_ = os.WriteFile(policy, []byte(`rules:
  - identity: spiffe://example.org/ns/payments/sa/refunds
    accounts: ["T*"]
    operations: [DeleteClientGrant]
`), 0o600)
	f := startFacade(t, fake.URL, []string{"--tls-cert", pki.CertFile, "--tls-key", pki.KeyFile, "--client-ca", pki.CAFile, "--credentials-file", creds, "--policy-file", policy}, nil)
	refunds := authv1.NewAuthServiceClient(tlsConn(t, f.grpcAddr, pki.ClientTLS(pki.Client(t, "refunds", "spiffe://example.org/ns/payments/sa/refunds"))))
	other := authv1.NewAuthServiceClient(tlsConn(t, f.grpcAddr, pki.ClientTLS(pki.Client(t, "reports", "spiffe://example.org/ns/reports/sa/reports"))))
	del := func(c authv1.AuthServiceClient, ctx context.Context, oid string) error {
		_, err := c.DeleteClientGrant(ctx, &authv1.DeleteClientGrantRequest{Oid: oid, Id: "g"})
		return err
	}
	authz := func(c authv1.AuthServiceClient, ctx context.Context, oid string) error {
		_, err := c.Authorize(ctx, &authv1.AuthorizeRequest{Oid: oid, Audience: dinteromock.Audience(oid), ResponseType: "authenticate", ClientId: dinterotest.App, VerificationCode: "v"})
		return err
	}
	own := func(account string) context.Context {
		return metadata.AppendToOutgoingContext(context.Background(), "authorization", fake.Bearer(account))
	}
	bg := context.Background()
	for _, tc := range []struct {
		name     string
		call     func() error
		want     codes.Code
		sentToDi bool
	}{
		{"allowed", func() error { return del(refunds, bg, "T111") }, codes.OK, true},
		{"denied by account", func() error { return del(refunds, bg, "P22222222") }, codes.PermissionDenied, false},
		{"denied by operation", func() error { return authz(refunds, bg, "T111") }, codes.PermissionDenied, false},
		{"denied: unknown identity", func() error { return del(other, bg, "T111") }, codes.PermissionDenied, false},
		{"own token bypasses the policy", func() error { return del(other, own("P22222222"), "P22222222") }, codes.OK, true},
		{"own token, authorize", func() error { return authz(other, own("T111"), "T111") }, codes.OK, true},
		{"no credentials for the account", func() error { return del(refunds, bg, "T999") }, codes.Unauthenticated, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(fake.Requests())
			err := tc.call()
			if status.Code(err) != tc.want {
				t.Fatalf("got %v; want %v", err, tc.want)
			}
			sent := false
			for _, r := range fake.Requests()[before:] {
				sent = sent || r.Op == dinterotest.OpDelete || r.Op == dinterotest.OpAuthorize
			}
			if sent != tc.sentToDi {
				t.Errorf("sent to Dintero: %v; want %v", sent, tc.sentToDi)
			}
		})
	}
	logs := f.log.String()
	if n := strings.Count(logs, `"credentials":"denied"`); n != 3 {
		t.Errorf("got %d audit lines of denials; want 3:\n%s", n, logs)
	}
	if !strings.Contains(logs, `"msg":"audit","method":"/dintero.auth.v1.AuthService/Authorize"`) {
		t.Error("the denied Authorize was not audited")
	}
	tr := &http.Transport{TLSClientConfig: pki.ClientTLS(pki.Client(t, "prometheus", "spiffe://example.org/ns/monitoring/sa/prometheus"))}
	defer tr.CloseIdleConnections()
	metrics := scrape(t, &http.Client{Transport: tr}, strings.Replace(f.httpURL, "http://", "https://", 1)+"/metrics")
	for _, want := range []struct {
		labels []string
		n      float64
	}{
		{[]string{`account="T111"`, `decision="allowed"`, `operation="DeleteClientGrant"`}, 1},
		{[]string{`account="P22222222"`, `decision="denied"`}, 1},
		{[]string{`account="P22222222"`, `decision="own_token"`}, 1},
		{[]string{`account="other"`, `decision="no_credentials"`}, 1},
	} {
		if got := metric(t, metrics, "dintero_facade_credential_decisions_total", want.labels...); got != want.n {
			t.Errorf("decisions%v = %v; want %v", want.labels, got, want.n)
		}
	}
}

// TestPolicyReload: over real mutual TLS, a policy that drops a caller's
// rule, swapped in as the kubelet updates a ConfigMap, revokes the caller
// without a restart (PermissionDenied, nothing sent to Dintero); a policy
// that does not load leaves the last good one in force, logged as an ERROR
// naming what is wrong; SIGHUP reloads it; the metrics count each outcome.
func TestPolicyReload(t *testing.T) {
	pki := dinterotest.NewPKI(t)
	fake := dinterotest.New(t, dinterotest.Options{Mock: dinteromock.Options{Clients: twoClients("secret-b-0001")}})
	fake.AddGrants("T111", "g1", "g2", "g3")
	creds := filepath.Join(t.TempDir(), "credentials.yaml")
	_ = os.WriteFile(creds, []byte(credentialsYAML("secret-b-0001")), 0o600)
	const refunds, reports = "spiffe://example.org/ns/payments/sa/refunds", "spiffe://example.org/ns/reports/sa/reports"
	rule := func(identity string) string {
		return "  - {identity: \"" + identity + "\", accounts: [\"T*\"], operations: [DeleteClientGrant]}\n"
	}
	sd := dinterotest.NewSecretDir(t)
	sd.Write(t, map[string][]byte{"policy.yaml": []byte("rules:\n" + rule(refunds) + rule(reports))})
	reload := make(chan struct{}, 1)
	f := startFacade(t, fake.URL, []string{"--tls-cert", pki.CertFile, "--tls-key", pki.KeyFile, "--client-ca", pki.CAFile, "--credentials-file", creds, "--policy-file", sd.Path("policy.yaml")}, nil,
		func(o *Options) { o.Reload = reload })
	client := authv1.NewAuthServiceClient(tlsConn(t, f.grpcAddr, pki.ClientTLS(pki.Client(t, "refunds", refunds))))
	del := func(id string) error {
		_, err := client.DeleteClientGrant(context.Background(), &authv1.DeleteClientGrantRequest{Oid: "T111", Id: id})
		return err
	}
	if err := del("g1"); err != nil {
		t.Fatalf("before the revocation: %v", err)
	}

	// Revoke refunds.
	sd.Write(t, map[string][]byte{"policy.yaml": []byte("rules:\n" + rule(reports))})
	waitLog(t, f, `"msg":"policy reloaded","why":"file changed","rules":1`, 1)
	deletes := fake.Count(dinterotest.OpDelete)
	if err := del("g2"); status.Code(err) != codes.PermissionDenied {
		t.Errorf("after the revocation: %v; want PermissionDenied", err)
	}

	// A policy that does not load, then SIGHUP: the revocation stands.
	sd.Write(t, map[string][]byte{"policy.yaml": []byte("rules:\n" + rule(refunds) + "  - {identity: x, accounts: [T*], operations: [DeleteClientGrant], allow: all}\n")})
	waitLog(t, f, `"msg":"policy not reloaded: keeping the previous one"`, 1)
	reload <- struct{}{}
	waitLog(t, f, `"msg":"policy not reloaded: keeping the previous one"`, 2)
	if !strings.Contains(f.log.String(), `"level":"ERROR","msg":"policy not reloaded: keeping the previous one","why":"SIGHUP","error":"--policy-file: `) ||
		!strings.Contains(f.log.String(), `unknown field \"allow\"`) {
		t.Errorf("the refusal does not name what is wrong:\n%s", f.log.String())
	}
	if err := del("g3"); status.Code(err) != codes.PermissionDenied {
		t.Errorf("after a policy that does not load: %v; want PermissionDenied, the last good policy", err)
	}
	if n := fake.Count(dinterotest.OpDelete) - deletes; n != 0 {
		t.Errorf("Dintero got %d deletions from the revoked caller; want none", n)
	}
	tr := &http.Transport{TLSClientConfig: pki.ClientTLS(pki.Client(t, "prometheus", "spiffe://example.org/ns/monitoring/sa/prometheus"))}
	defer tr.CloseIdleConnections()
	metrics := scrape(t, &http.Client{Transport: tr}, strings.Replace(f.httpURL, "http://", "https://", 1)+"/metrics")
	for _, want := range []struct {
		name   string
		labels []string
		n      float64
	}{
		{"dintero_facade_reloads_total", []string{`file="policy"`, `result="ok"`}, 1},
		{"dintero_facade_reloads_total", []string{`file="policy"`, `result="error"`}, 2},
		{"dintero_facade_reload_last_successful", []string{`file="policy"`}, 0},
		{"dintero_facade_reload_last_successful", []string{`file="credentials"`}, 1},
		{"dintero_facade_reload_last_successful", []string{`file="tls"`}, 1},
		{"dintero_facade_tls_certificate_expiry_timestamp_seconds", nil, float64(leafOf(t, pki).NotAfter.Unix())},
		{"dintero_facade_build_info", []string{`version="test"`, `go_version="` + runtime.Version() + `"`}, 1},
	} {
		if got := metric(t, metrics, want.name, want.labels...); got != want.n {
			t.Errorf("%s%v = %v; want %v", want.name, want.labels, got, want.n)
		}
	}
}

func TestPolicyNeedsMTLS(t *testing.T) {
	_, err := parseConfig([]string{"--policy-file", "/dev/null"}, envOf(nil), nil)
	if err == nil || !strings.Contains(err.Error(), "--client-ca") {
		t.Errorf("got %v; want a policy without mutual TLS refused", err)
	}
}
