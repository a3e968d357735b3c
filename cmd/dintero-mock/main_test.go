package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dintero-facade/dintero-facade/internal/dinteromock"
)

func TestRunRefusesBadInput(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "grants.json")
	if err := os.WriteFile(bad, []byte(`{"T123": [{"client_id": "no id"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{args: []string{"--grants", bad}, want: "has no id"},
		{args: []string{"--grants", filepath.Join(t.TempDir(), "missing.json")}, want: "no such file"},
		{args: []string{"--addr", "256.0.0.1:1"}, want: "256.0.0.1"},
		{args: []string{"--clients", writeFile(t, `[{"client_id": "only-id"}]`)}, want: "needs client_id and client_secret"},
		{args: []string{"--no-such-flag"}, want: "unknown flag --no-such-flag"},
		{args: []string{"--failure-rate", "often"}, want: `--failure-rate "often": want a number such as 0.5`},
		{env: map[string]string{"DINTERO_MOCK_LATENCY": "slow"}, want: `DINTERO_MOCK_LATENCY="slow": want a duration such as 20s or 1m30s`},
		{args: []string{"--authorize-answer", "xml"}, want: "want query, fragment or json"},
	} {
		if err := run(tc.args, func(k string) string { return tc.env[k] }, io.Discard); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("run(%q, %v) = %v; want an error containing %q", tc.args, tc.env, err, tc.want)
		}
	}
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "f.json")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestBanner: the mock says at start its PID, its client credentials, the
// exact facade command that uses them, its grants and codes, and how to
// rotate its key; with clients of a file, an API client's credentials,
// not an application's.
func TestBanner(t *testing.T) {
	got := banner(4242, "http://127.0.0.1:8000", dinteromock.Options{})
	for _, want := range []string{
		"dintero-mock (pid 4242) serves Dintero's auth API at http://127.0.0.1:8000/v1\n",
		"client credentials (the mock's own, not secrets): account T12345678, client id mock-client, client secret mock-client-secret\n",
		"\n    DINTERO_ACCOUNT_ID=T12345678 DINTERO_CLIENT_ID=mock-client DINTERO_CLIENT_SECRET=mock-client-secret go run ./cmd/dintero-facade --dintero-url http://127.0.0.1:8000/v1\n",
		"grants of T12345678: 2f3c9c1e-6f1a-4f0e-9a53-6f2d0b1c4a01, 7e0e7d2c-1f4a-4b8e-9d55-1f2f9a3c0c11, b5d7c1a8-3e2f-4c6d-8a9b-0c1d2e3f4a5b\n",
		"verification codes of the application my-client (callback https://app.example.com/cb): 123456, 234567, 345678\n",
		"rotate the signing key: curl -X POST http://127.0.0.1:8000/_mock/rotate-keys (or kill -USR1 4242)\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("the banner lacks %q:\n%s", want, got)
		}
	}
	apps := []dinteromock.Client{
		{ID: "app", Secret: "app-secret", Accounts: []string{"P00000001"}, Callbacks: []string{"https://a.example/cb"}},
		{ID: "api", Secret: "api-secret", Accounts: []string{"P00000001"}, Scopes: []string{"admin:accounts"}},
	}
	if got := banner(1, "http://127.0.0.1:1", dinteromock.Options{Clients: apps}); !strings.Contains(got, "DINTERO_ACCOUNT_ID=P00000001 DINTERO_CLIENT_ID=api DINTERO_CLIENT_SECRET=api-secret go run") {
		t.Errorf("with clients of a file: got\n%s\nwant the API client's credentials", got)
	}
}

// TestRotateOn: each signal gives the mock a new signing key.
func TestRotateOn(t *testing.T) {
	m, err := dinteromock.New(dinteromock.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	sig := make(chan os.Signal)
	done := make(chan struct{})
	go func() { rotateOn(ctx, sig, m, slog.New(slog.NewTextHandler(io.Discard, nil))); close(done) }()
	before := m.KeyID()
	sig <- os.Interrupt
	sig <- os.Interrupt // the first rotation is done once the second is taken
	cancel()
	<-done
	if m.KeyID() == before {
		t.Error("the signing key did not change")
	}
}
