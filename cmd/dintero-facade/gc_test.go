package main

import (
	"strings"
	"testing"
	"time"

	"github.com/dintero-facade/dintero-facade/internal/dinterotest"
)

// TestBinaryTunesTheCollector: the real binary applies the settings, and
// reports what the runtime then has in effect.
func TestBinaryTunesTheCollector(t *testing.T) {
	binary(t) // built before GOGC changes: the compiler reads it too
	fake := dinterotest.New(t)
	for _, tt := range []struct{ gogc, godebug, want string }{
		{"", "", `"gogc":400`},
		{"250", "", `"gogc":250`},
		{"off", "", `"gogc":-1`},
		// The runtime ignores a malformed GOGC silently; the facade says
		// so, once, and applies its own target.
		{"abc", "", `"gogc":400`},
		// The process started again with the stack setting, or kept the
		// operator's.
		{"", "", `"godebug":"gcshrinkstackoff=1"`},
		{"", "gctrace=0", `"godebug":"gctrace=0,gcshrinkstackoff=1"`},
		{"", "gcshrinkstackoff=0", `"godebug":"gcshrinkstackoff=0"`},
	} {
		t.Run("GOGC="+tt.gogc+",GODEBUG="+tt.godebug, func(t *testing.T) {
			t.Setenv("GOGC", tt.gogc)
			t.Setenv("GODEBUG", tt.godebug)
			p := startBinary(t, fake.URL)
			line := ""
			for deadline := time.Now().Add(5 * time.Second); line == "" && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
				for _, l := range strings.Split(p.stderr.String(), "\n") {
					if strings.Contains(l, `"msg":"garbage collector"`) {
						line = l
					}
				}
			}
			if !strings.Contains(line, tt.want) {
				t.Errorf("the collector's line = %q; want it to hold %s", line, tt.want)
			}
			warned := strings.Count(p.stderr.String(), `"level":"WARN","msg":"GOGC is neither a whole number nor off`)
			if want := map[bool]int{true: 1}[tt.gogc == "abc"]; warned != want || want == 1 && !strings.Contains(p.stderr.String(), `"GOGC":"\"abc\"","gogc":400`) {
				t.Errorf("got %d warnings of GOGC=%q; want %d, naming it and the target:\n%s", warned, tt.gogc, want, p.stderr.String())
			}
		})
	}
}
