package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dintero-facade/dintero-facade/internal/dinterotest"
	"github.com/dintero-facade/dintero-facade/internal/telemetry"
)

// TestBadValueMessages: a value that does not parse is refused naming the
// flag or the variable it came from, the form it must have and an example;
// a flag the facade does not have is named with its double dash.
func TestBadValueMessages(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{env: map[string]string{"DINTERO_FACADE_MAX_DEADLINE": "soon"}, want: `DINTERO_FACADE_MAX_DEADLINE="soon": want a duration such as 20s or 1m30s`},
		{args: []string{"--max-deadline", "soon"}, want: `--max-deadline "soon": want a duration such as 20s or 1m30s`},
		{args: []string{"--log-level", "loud"}, want: `--log-level "loud": want debug, info, warn or error`},
		{env: map[string]string{"DINTERO_FACADE_LOG_LEVEL": "loud"}, want: `DINTERO_FACADE_LOG_LEVEL="loud": want debug, info, warn or error`},
		{args: []string{"--max-recv-msg-bytes", "lots"}, want: `--max-recv-msg-bytes "lots": want a whole number such as 16384`},
		{args: []string{"--mock=maybe"}, want: `--mock "maybe": want true or false`},
		{args: []string{"--no-such-flag"}, want: `unknown flag --no-such-flag`},
		{args: []string{"--max-deadline"}, want: `--max-deadline needs a value`},
		{args: []string{"--max-deadline", "0s"}, want: `--max-deadline (DINTERO_FACADE_MAX_DEADLINE) 0s: want positive, a duration such as 20s or 1m30s`},
		{env: map[string]string{"DINTERO_FACADE_WARM_TIMEOUT": "-1s"}, want: `--warm-timeout (DINTERO_FACADE_WARM_TIMEOUT) -1s: want 0 (no warm-up) or more, a duration such as 10s`},
		{args: []string{"--mock"}, env: map[string]string{"DINTERO_FACADE_DINTERO_URL": "https://api.dintero.com/v1"}, want: `--mock and --dintero-url (or DINTERO_FACADE_DINTERO_URL) exclude each other`},
	} {
		var usage bytes.Buffer
		_, err := parseConfig(tc.args, envOf(tc.env), &usage)
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%q %v: got %v; want %s", tc.args, tc.env, err, tc.want)
		}
		if usage.Len() > 0 {
			t.Errorf("%q: the usage was printed:\n%s", tc.args, usage.String())
		}
	}
}

// TestBadFlagOneLine: the binary refuses a bad flag with one line naming
// it and a pointer to --help, not the whole usage, and exits 2; --help
// prints the usage and exits 0.
func TestBadFlagOneLine(t *testing.T) {
	out, err := exec.Command(binary(t), "--log-level", "loud").CombinedOutput()
	var ee *exec.ExitError
	want := "dintero-facade: --log-level \"loud\": want debug, info, warn or error\nRun dintero-facade --help for every flag and its variable.\n"
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || string(out) != want {
		t.Errorf("got %v:\n%s\nwant exit 2 and:\n%s", err, out, want)
	}
	out, err = exec.Command(binary(t), "--help").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Usage of dintero-facade") || !strings.Contains(string(out), "  -max-deadline value") {
		t.Errorf("--help: got %v:\n%s", err, out)
	}
}

// TestMockListensOnLoopback: --mock binds 127.0.0.1 unless an address is
// given, by flag or variable; without --mock the defaults stand.
func TestMockListensOnLoopback(t *testing.T) {
	for _, tc := range []struct {
		args           []string
		env            map[string]string
		wantGRPC, want string
	}{
		{[]string{"--mock"}, nil, "127.0.0.1:9090", "127.0.0.1:8080"},
		{[]string{"--mock", "--grpc-addr", ":9999"}, nil, ":9999", "127.0.0.1:8080"},
		{[]string{"--mock"}, map[string]string{"DINTERO_FACADE_HTTP_ADDR": ":7000"}, "127.0.0.1:9090", ":7000"},
		{nil, nil, ":9090", ":8080"},
	} {
		c, err := parseConfig(tc.args, envOf(tc.env), &bytes.Buffer{})
		if err != nil {
			t.Fatal(err)
		}
		if c.GRPCAddr != tc.wantGRPC || c.HTTPAddr != tc.want {
			t.Errorf("%q %v: got %s and %s; want %s and %s", tc.args, tc.env, c.GRPCAddr, c.HTTPAddr, tc.wantGRPC, tc.want)
		}
	}
}

// lineOf returns the first line of log whose msg starts with msg.
func lineOf(t *testing.T, log *dinterotest.LogBuffer, msg string) map[string]any {
	t.Helper()
	for _, l := range log.Lines(t) {
		if s, _ := l["msg"].(string); strings.HasPrefix(s, msg) {
			return l
		}
	}
	t.Fatalf("no line %q in:\n%s", msg, log)
	return nil
}

// TestDurationsInOneForm: the startup, warm-up and shutdown lines give
// durations in one form, Go's (20s), the shutdown's grace as the startup's
// configuration does; the logger writes any duration so.
func TestDurationsInOneForm(t *testing.T) {
	fake := dinterotest.New(t)
	f := startFacade(t, fake.URL, []string{"--shutdown-grace", "21s", "--shutdown-delay", "10ms"}, facadeCredentials)
	waitLog(t, f, "warmed up", 1)
	if err := f.stop(); err != nil {
		t.Fatal(err)
	}
	cfg, _ := lineOf(t, f.log, "dintero-facade starting")["config"].(map[string]any)
	down := lineOf(t, f.log, "shutting down")
	if cfg["shutdown_grace"] != "21s" || down["grace"] != "21s" || down["delay"] != "10ms" || cfg["shutdown_delay"] != "10ms" {
		t.Errorf("got startup %v and %v, shutdown %v and %v; want 21s and 10ms in both", cfg["shutdown_grace"], cfg["shutdown_delay"], down["grace"], down["delay"])
	}
	if took, _ := lineOf(t, f.log, "warmed up")["took"].(string); took == "" {
		t.Error("the warm-up's took is not a duration's text")
	} else if _, err := time.ParseDuration(took); err != nil {
		t.Errorf("the warm-up's took %q: %v", took, err)
	}
	var b bytes.Buffer
	telemetry.NewLogger(&b, nil).Info("x", "d", 1500*time.Millisecond, "n", 3)
	if !strings.Contains(b.String(), `"d":"1.5s","n":3`) {
		t.Errorf("got %s; want the duration as 1.5s", b.String())
	}
}

// TestWarmUpLine: the warm-up's line says what it did: with the mock's
// credentials, the account whose token and keys it fetched and the
// connection it opened; without credentials, that there was nothing to
// warm.
func TestWarmUpLine(t *testing.T) {
	f := startFacade(t, "", []string{"--mock"}, nil)
	waitLog(t, f, "warmed up", 1)
	l := lineOf(t, f.log, "warmed up")
	if l["msg"] != "warmed up: a token and the signing keys fetched per account" || len(l["accounts"].([]any)) != 1 || l["accounts"].([]any)[0] != "T12345678" || l["connections_opened"].(float64) < 1 {
		t.Errorf("got %v; want the account fetched and the connection opened", l)
	}
	fake := dinterotest.New(t)
	f = startFacade(t, fake.URL, nil, nil)
	waitLog(t, f, "nothing to warm", 1)
	if l := lineOf(t, f.log, "nothing to warm"); l["msg"] != "nothing to warm: no credentials" || len(fake.Requests()) != 0 {
		t.Errorf("got %v and %d requests; want nothing to warm, and nothing sent", l, len(fake.Requests()))
	}
	if strings.Contains(f.log.String(), "warmed up") {
		t.Errorf("the log claims a warm-up:\n%s", f.log.String())
	}
}

// TestEmptyCredentialsFile: an empty credentials file is a warning that
// says so; the warning about who may use credentials speaks of the time
// the file holds some, and nothing claims the facade holds any.
func TestEmptyCredentialsFile(t *testing.T) {
	for _, content := range []string{"", "[]\n", "# none yet\n"} {
		file := filepath.Join(t.TempDir(), "credentials.yaml")
		if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		fake := dinterotest.New(t)
		f := startFacade(t, fake.URL, []string{"--credentials-file", file}, nil)
		log := f.log.String()
		w := lineOf(t, f.log, "--credentials-file holds no credentials")
		if w["level"] != "WARN" || w["credentials_file"] != file {
			t.Errorf("%q: got %v; want a warning naming the file", content, w)
		}
		if !strings.Contains(log, "the facade has neither --policy-file nor mutual TLS: once --credentials-file holds Dintero client credentials, every caller") || strings.Contains(log, "the facade holds Dintero client credentials") {
			t.Errorf("%q: the policy warning does not fit an empty file:\n%s", content, log)
		}
	}
}
