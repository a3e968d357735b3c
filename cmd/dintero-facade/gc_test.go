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
	for _, tt := range []struct{ gogc, want string }{
		{"", `"gogc":400`},
		{"250", `"gogc":250`},
		{"off", `"gogc":-1`},
	} {
		t.Run("GOGC="+tt.gogc, func(t *testing.T) {
			t.Setenv("GOGC", tt.gogc)
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
