package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		check   func(Config) string
		wantErr string
	}{
		{name: "defaults", check: func(c Config) string {
			if c.GRPCAddr != ":9090" || c.HTTPAddr != ":8080" || c.DinteroURL != "https://api.dintero.com/v1" || c.DinteroTimeout != 10*time.Second ||
				c.ShutdownDelay != 0 || c.ShutdownGrace != 20*time.Second || c.LogLevel != slog.LevelInfo || len(c.Credentials) != 0 {
				return fmt.Sprintf("%+v", c)
			}
			return ""
		}},
		{name: "env", env: map[string]string{"DINTERO_FACADE_GRPC_ADDR": ":1", "DINTERO_FACADE_SHUTDOWN_DELAY": "3s", "DINTERO_FACADE_LOG_LEVEL": "debug"}, check: func(c Config) string {
			if c.GRPCAddr != ":1" || c.ShutdownDelay != 3*time.Second || c.LogLevel != slog.LevelDebug {
				return fmt.Sprintf("%+v", c)
			}
			return ""
		}},
		{name: "flag wins", args: []string{"--grpc-addr", ":2"}, env: map[string]string{"DINTERO_FACADE_GRPC_ADDR": ":1"}, check: func(c Config) string {
			if c.GRPCAddr != ":2" {
				return c.GRPCAddr
			}
			return ""
		}},
		{name: "credentials", env: map[string]string{"DINTERO_CLIENT_ID": "id", "DINTERO_CLIENT_SECRET": "s3cr3t-value", "DINTERO_ACCOUNT_ID": "T123"}, check: func(c Config) string {
			if len(c.Credentials) != 1 || c.Credentials[0].ClientSecret != "s3cr3t-value" || c.Credentials[0].AccountID != "T123" {
				return fmt.Sprintf("%v", c.Credentials)
			}
			return ""
		}},
		{name: "loopback http", args: []string{"--dintero-url", "http://127.0.0.1:8000/v1"}},
		{name: "localhost http", args: []string{"--dintero-url", "http://localhost:8000/v1"}},
		{name: "ipv6 loopback http", args: []string{"--dintero-url", "http://[::1]:8000/v1"}},
		{name: "remote http", args: []string{"--dintero-url", "http://api.dintero.com/v1"}, wantErr: "http is allowed only for a loopback host"},
		{name: "private http", args: []string{"--dintero-url", "http://10.0.0.1/v1"}, wantErr: "http is allowed only for a loopback host"},
		{name: "other scheme", args: []string{"--dintero-url", "ftp://api.dintero.com/v1"}, wantErr: "scheme must be https"},
		{name: "relative", args: []string{"--dintero-url", "/v1"}, wantErr: "not an absolute URL: want one such as https://api.dintero.com/v1"},
		{name: "bad env value", env: map[string]string{"DINTERO_FACADE_SHUTDOWN_GRACE": "soon"}, wantErr: "DINTERO_FACADE_SHUTDOWN_GRACE"},
		{name: "partial credentials", env: map[string]string{"DINTERO_CLIENT_ID": "id"}, wantErr: "DINTERO_CLIENT_SECRET, DINTERO_ACCOUNT_ID not set"},
		{name: "bad account id", env: map[string]string{"DINTERO_CLIENT_ID": "id", "DINTERO_CLIENT_SECRET": "s", "DINTERO_ACCOUNT_ID": "acct-1"}, wantErr: `DINTERO_ACCOUNT_ID: want a Dintero account id, P or T then 3 or 8 digits, such as P00000001 or T12345678`},
		{name: "audience alone", env: map[string]string{"DINTERO_AUDIENCE": "a"}, wantErr: "DINTERO_AUDIENCE is set"},
		{name: "negative grace", args: []string{"--shutdown-grace", "-1s"}, wantErr: "--shutdown-grace (DINTERO_FACADE_SHUTDOWN_GRACE) -1s: want positive, a duration such as 20s"},
		{name: "no keys kept", args: []string{"--id-token-keys-accounts", "0"}, wantErr: "--id-token-keys-accounts (DINTERO_FACADE_ID_TOKEN_KEYS_ACCOUNTS) 0: want positive, a whole number such as 1000"},
		{name: "stray argument", args: []string{"serve"}, wantErr: "unexpected arguments"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			c, err := parseConfig(tc.args, envOf(tc.env), &out)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v; want an error containing %q", err, tc.wantErr)
				}
				// A mistyped variable may hold a secret: its value is never quoted.
				if v := tc.env["DINTERO_ACCOUNT_ID"]; v != "" && strings.Contains(err.Error(), v) {
					t.Errorf("error %q quotes DINTERO_ACCOUNT_ID's value", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("got %v; want no error", err)
			}
			if tc.check != nil {
				if bad := tc.check(c); bad != "" {
					t.Errorf("got %s", bad)
				}
			}
		})
	}
}

func TestHelpListsFlagsAndEnv(t *testing.T) {
	var out bytes.Buffer
	_, err := parseConfig([]string{"--help"}, envOf(nil), &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("got %v; want flag.ErrHelp", err)
	}
	for _, want := range []string{"-grpc-addr", "DINTERO_FACADE_GRPC_ADDR", "-shutdown-grace", "DINTERO_FACADE_SHUTDOWN_GRACE", "DINTERO_CLIENT_SECRET"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--help does not mention %s:\n%s", want, out.String())
		}
	}
}

// TestHelpShowsDefaults: --help gives every flag's default that the
// manual's table gives, the zero-looking ones too (--log-level's INFO is
// slog.Level's zero, --shutdown-delay's 0s a Duration's, which the flag
// package left out), and none for an empty string or a switch.
func TestHelpShowsDefaults(t *testing.T) {
	var out bytes.Buffer
	if _, err := parseConfig([]string{"--help"}, envOf(nil), &out); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("got %v; want flag.ErrHelp", err)
	}
	entries := map[string]string{}
	for _, e := range strings.Split(out.String(), "\n  -")[1:] {
		name, _, _ := strings.Cut(e, "\n")
		name, _, _ = strings.Cut(name, " ")
		entries[name] = e
	}
	var c Config
	for _, o := range c.options() {
		e, ok := entries[o.Name]
		if !ok {
			t.Errorf("--help has no -%s:\n%s", o.Name, out.String())
			continue
		}
		want := "(default " + fmt.Sprint(o.Default) + ")"
		if o.Default == "" || o.Default == false {
			if strings.Contains(e, "(default") {
				t.Errorf("-%s: --help gives a default of nothing: %q", o.Name, e)
			}
			continue
		}
		if !strings.Contains(e, want) {
			t.Errorf("-%s: --help says %q; want %s, as the manual's table", o.Name, e, want)
		}
	}
}

func TestConfigLogMasksSecret(t *testing.T) {
	c, err := parseConfig(nil, envOf(map[string]string{"DINTERO_CLIENT_ID": "id", "DINTERO_CLIENT_SECRET": "s3cr3t-value", "DINTERO_ACCOUNT_ID": "T123"}), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	slog.New(slog.NewJSONHandler(&out, nil)).Info("starting", "config", c)
	if strings.Contains(out.String(), "s3cr3t-value") || !strings.Contains(out.String(), `"client_id":"id"`) {
		t.Errorf("got %s; want the config with the secret masked", out.String())
	}
	if s := fmt.Sprintf("%v %+v", c, c); strings.Contains(s, "s3cr3t-value") {
		t.Errorf("printed config holds the secret: %s", s)
	}
}
