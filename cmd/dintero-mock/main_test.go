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
		want string
	}{
		{[]string{"--grants", bad}, "has no id"},
		{[]string{"--grants", filepath.Join(t.TempDir(), "missing.json")}, "no such file"},
		{[]string{"--addr", "256.0.0.1:1"}, "256.0.0.1"},
		{[]string{"--clients", writeFile(t, `[{"client_id": "only-id"}]`)}, "needs client_id and client_secret"},
		{[]string{"--no-such-flag"}, "not defined"},
	} {
		if err := run(tc.args); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("run(%q) = %v; want an error containing %q", tc.args, err, tc.want)
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
