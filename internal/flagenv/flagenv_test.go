package flagenv_test

import (
	"errors"
	"flag"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/dintero-facade/dintero-facade/internal/flagenv"
)

// TestParse: a flag wins over its variable, the variable over the default;
// given names what the flags or the variables set; a bad variable is
// named; values are logged under snake-case names.
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
	if s != ":3" || d != 5*time.Second || n != 3 || !b || l != slog.LevelWarn || !given["an-addr"] || !given["a-timeout"] || given["a-count"] {
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
	if _, err := flagenv.Parse(fs, "P_", nil, func(k string) string { return map[string]string{"P_A_COUNT": "many"}[k] }); err == nil || err.Error() != `P_A_COUNT="many": want a whole number such as 3` {
		t.Errorf("a bad variable: got %v; want it named, with the form and the default as example", err)
	}
	fs = flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	flagenv.Register(fs, "P_", opts)
	var ve *flagenv.ValueError
	if _, err := flagenv.Parse(fs, "P_", []string{"--a-timeout", strings.Repeat("x", 100)}, func(string) string { return "" }); !errors.As(err, &ve) || ve.Source != "--a-timeout" || len(err.Error()) > 140 {
		t.Errorf("a bad flag: got %v; want a ValueError naming --a-timeout, its value cut", err)
	}
	fs = flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	flagenv.Register(fs, "P_", opts)
	if _, err := flagenv.Parse(fs, "P_", []string{"extra"}, func(string) string { return "" }); err == nil {
		t.Error("an argument was accepted")
	}
}

// TestParseWritesNothing: a bad flag and --help leave the flag set's
// output untouched: the caller prints one line, or the usage, itself.
func TestParseWritesNothing(t *testing.T) {
	var d time.Duration
	for _, args := range [][]string{{"--a-timeout", "soon"}, {"--nope"}, {"--help"}} {
		var out strings.Builder
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(&out)
		flagenv.Register(fs, "P_", []flagenv.Option{{Name: "a-timeout", Field: &d, Default: time.Second, Help: "h"}})
		if _, err := flagenv.Parse(fs, "P_", args, func(string) string { return "" }); err == nil {
			t.Errorf("%q: no error", args)
		}
		if out.Len() > 0 {
			t.Errorf("%q: Parse wrote %q", args, out.String())
		}
		if fs.Output() != &out {
			t.Errorf("%q: Parse left the output changed", args)
		}
	}
}
