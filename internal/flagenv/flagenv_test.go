package flagenv_test

import (
	"flag"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/dintero-facade/dintero-facade/internal/flagenv"
)

// TestParse: a flag wins over its variable, the variable over the default;
// a bad variable is named; values are logged under snake-case names.
func TestParse(t *testing.T) {
	var s string
	var d time.Duration
	var n int
	var b bool
	var l slog.Level
	opts := []flagenv.Option{
		{Name: "an-addr", Field: &s, Default: ":1", Help: "h"},
		{Name: "a-timeout", Field: &d, Default: time.Second, Help: "h"},
		{Name: "a-count", Field: &n, Default: 3, Help: "h"},
		{Name: "a-switch", Field: &b, Default: false, Help: "h"},
		{Name: "a-level", Field: &l, Default: slog.LevelInfo, Help: "h"},
	}
	env := map[string]string{"P_AN_ADDR": ":2", "P_A_TIMEOUT": "5s", "P_A_LEVEL": "warn"}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	flagenv.Register(fs, "P_", opts)
	given, err := flagenv.Parse(fs, "P_", []string{"--an-addr", ":3", "--a-switch"}, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if s != ":3" || d != 5*time.Second || n != 3 || !b || l != slog.LevelWarn || !given["an-addr"] || given["a-timeout"] {
		t.Errorf("got %q %v %d %v %v, given %v", s, d, n, b, l, given)
	}
	if got := flagenv.Attrs(opts)[1]; got.Key != "a_timeout" || got.Value.String() != "5s" {
		t.Errorf("got attr %v", got)
	}
	if flagenv.EnvName("P_", "an-addr") != "P_AN_ADDR" {
		t.Error("EnvName")
	}
	fs = flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	flagenv.Register(fs, "P_", opts)
	if _, err := flagenv.Parse(fs, "P_", nil, func(k string) string { return map[string]string{"P_A_COUNT": "many"}[k] }); err == nil || err.Error()[:9] != "P_A_COUNT" {
		t.Errorf("a bad variable: got %v; want it named", err)
	}
	fs = flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	flagenv.Register(fs, "P_", opts)
	if _, err := flagenv.Parse(fs, "P_", []string{"extra"}, func(string) string { return "" }); err == nil {
		t.Error("an argument was accepted")
	}
}
