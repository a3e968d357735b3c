package reload_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/dintero-facade/dintero-facade/internal/dinterotest"
	"github.com/dintero-facade/dintero-facade/internal/reload"
	"github.com/dintero-facade/dintero-facade/upstream"
)

// target records the credentials it is given.
type target struct {
	mu  sync.Mutex
	got [][]upstream.Credentials
}

func (t *target) SetCredentials(c []upstream.Credentials) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.got = append(t.got, c)
	return nil
}

func (t *target) Accounts() []string { return nil }

func (t *target) calls() [][]upstream.Credentials {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([][]upstream.Credentials(nil), t.got...)
}

// eventually waits until cond holds, for at most 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
	}
}

// TestWatchCredentials: a change of the file and a signal each reload the
// credentials, a file that does not load is not applied, and nothing is
// reloaded once the context ends.
func TestWatchCredentials(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "credentials.yaml")
	write := func(s string) {
		if err := os.WriteFile(file, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("- {account_id: T111, client_id: a, client_secret: s1}\n")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tg := &target{}
	signal := make(chan struct{})
	if err := reload.WatchCredentials(ctx, file, nil, tg, reload.Options{Log: slog.New(slog.NewJSONHandler(io.Discard, nil)), Signal: signal}); err != nil {
		t.Fatal(err)
	}
	write("- {account_id: T111, client_id: a, client_secret: s2}\n")
	eventually(t, "the changed file applied", func() bool {
		c := tg.calls()
		return len(c) > 0 && c[len(c)-1][0].ClientSecret == "s2"
	})
	write("not: [a list")
	time.Sleep(300 * time.Millisecond) // past the settling time
	n := len(tg.calls())
	signal <- struct{}{}
	time.Sleep(100 * time.Millisecond)
	if got := tg.calls(); len(got) != n || got[len(got)-1][0].ClientSecret != "s2" {
		t.Errorf("a file that does not load was applied: %v", got)
	}
	write("- {account_id: T111, client_id: a, client_secret: s3}\n")
	time.Sleep(300 * time.Millisecond)
	signal <- struct{}{}
	eventually(t, "the signal's reload", func() bool {
		c := tg.calls()
		return c[len(c)-1][0].ClientSecret == "s3"
	})
}

// TestTLSFilesReload: a handshake after the files change takes the new
// certificate; files that do not load leave the previous one.
func TestTLSFilesReload(t *testing.T) {
	a, b := dinterotest.NewPKI(t), dinterotest.NewPKI(t)
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	put := func(p *dinterotest.PKI) {
		for src, dst := range map[string]string{p.CertFile: cert, p.KeyFile: key} {
			b, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dst, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	put(a)
	f, err := reload.NewTLSFiles(cert, key, "")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reg := prometheus.NewRegistry()
	m, err := reload.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Watch(ctx, reload.Options{Log: slog.New(slog.NewJSONHandler(io.Discard, nil)), Metrics: m}); err != nil {
		t.Fatal(err)
	}
	expiry := func() float64 { return gauge(t, reg, "dintero_facade_tls_certificate_expiry_timestamp_seconds", nil) }
	served := func() *x509.Certificate {
		tc, err := f.Config("h2").GetConfigForClient(&tls.ClientHelloInfo{})
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(tc.Certificates[0].Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if err := served().CheckSignatureFrom(caOf(t, a)); err != nil {
		t.Fatalf("the first certificate is not a's: %v", err)
	}
	if got, want := expiry(), float64(served().NotAfter.Unix()); got != want {
		t.Errorf("certificate expiry %v; want %v, the served certificate's NotAfter", got, want)
	}
	put(b)
	eventually(t, "b's certificate served", func() bool { return served().CheckSignatureFrom(caOf(t, b)) == nil })
	eventually(t, "b's expiry shown", func() bool { return expiry() == float64(served().NotAfter.Unix()) })
	if err := os.WriteFile(key, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if err := served().CheckSignatureFrom(caOf(t, b)); err != nil {
		t.Errorf("a broken key replaced the certificate: %v", err)
	}
	if g, err := reload.NewTLSFiles("", "", ""); g != nil || err != nil {
		t.Errorf("without a certificate: got %v, %v; want nil, nil", g, err)
	}
}

func caOf(t *testing.T, p *dinterotest.PKI) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(p.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	certs, err := parsePEMCerts(b)
	if err != nil || len(certs) == 0 {
		t.Fatalf("%s: %v", p.CAFile, err)
	}
	return certs[0]
}

func parsePEMCerts(b []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return out, nil
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
}

type metric = *dto.Metric

// metricValue returns value of the metric name with exactly labels; it
// fails the test when there is none.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string, value func(metric) float64) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			if maps.Equal(got, labels) || (len(got) == 0 && labels == nil) {
				return value(m)
			}
		}
	}
	t.Fatalf("no metric %s%v", name, labels)
	return 0
}

// TestWatchIgnoresOtherFiles: other files in the watched directory, the
// facade's own log redirected there above all, reload nothing. Before,
// every event in the directory was a change: each line a reload logged
// into that log was the next change, a reload every settling time for
// ever ("why":"file changed", the file unchanged).
func TestWatchIgnoresOtherFiles(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "credentials.yaml")
	if err := os.WriteFile(file, []byte("- {account_id: T111, client_id: a, client_secret: s1}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	logFile, err := os.Create(filepath.Join(dir, "facade.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tg := &target{}
	if err := reload.WatchCredentials(ctx, file, nil, tg, reload.Options{Log: slog.New(slog.NewJSONHandler(logFile, nil))}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte("- {account_id: T111, client_id: a, client_secret: s2}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the changed file applied", func() bool {
		c := tg.calls()
		return len(c) > 0 && c[len(c)-1][0].ClientSecret == "s2"
	})
	time.Sleep(300 * time.Millisecond) // past the settling time of the change
	n := len(tg.calls())
	for i := range 3 {
		if err := os.WriteFile(filepath.Join(dir, "other.txt"), []byte{byte(i)}, 0o600); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // several settling times
	if got := len(tg.calls()); got != n {
		t.Errorf("%d reloads after other files changed (the log line of each reload written into the directory, another file written); want none", got-n)
	}
}
