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
		})
	}
}
