package main

import (
	"fmt"
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/dintero-facade/dintero-facade/internal/dinterotest"
)

func TestDecideGC(t *testing.T) {
	const v2, v1 = "/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"
	tests := []struct {
		name  string
		env   map[string]string
		files map[string]string
		want  gcSettings
	}{
		{"no setting, no cgroup", nil, nil, gcSettings{GOGC: 400, MemoryLimit: 80 << 20}},
		{"GOGC is the operator's", map[string]string{"GOGC": "150"}, nil, gcSettings{MemoryLimit: 80 << 20}},
		{"GOGC=off is the operator's", map[string]string{"GOGC": "off"}, nil, gcSettings{MemoryLimit: 80 << 20}},
		{"cgroup v2 limit", nil, map[string]string{v2: "134217728\n"}, gcSettings{GOGC: 400, MemoryLimit: 120795948}},
		{"cgroup v2 without a limit", nil, map[string]string{v2: "max\n"}, gcSettings{GOGC: 400, MemoryLimit: 80 << 20}},
		{"cgroup v2 wins over v1", nil, map[string]string{v2: "max\n", v1: "268435456\n"}, gcSettings{GOGC: 400, MemoryLimit: 80 << 20}},
		{"cgroup v1 limit", nil, map[string]string{v1: "268435456\n"}, gcSettings{GOGC: 400, MemoryLimit: 241591905}},
		{"cgroup v1 without a limit", nil, map[string]string{v1: "9223372036854771712\n"}, gcSettings{GOGC: 400, MemoryLimit: 80 << 20}},
		{"unreadable limit", nil, map[string]string{v2: "lots\n"}, gcSettings{GOGC: 400, MemoryLimit: 80 << 20}},
		{"GOMEMLIMIT is the operator's", map[string]string{"GOMEMLIMIT": "100MiB"}, map[string]string{v2: "134217728\n"}, gcSettings{GOGC: 400}},
		{"both the operator's", map[string]string{"GOGC": "200", "GOMEMLIMIT": "1GiB"}, map[string]string{v2: "134217728\n"}, gcSettings{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			getenv := func(k string) string { return tt.env[k] }
			readFile := func(name string) ([]byte, error) {
				if s, ok := tt.files[name]; ok {
					return []byte(s), nil
				}
				return nil, fmt.Errorf("open %s: %w", name, fs.ErrNotExist)
			}
			if got := decideGC(getenv, readFile); got != tt.want {
				t.Errorf("decideGC() = %+v; want %+v", got, tt.want)
			}
		})
	}
}

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
