package gctune_test

import (
	"fmt"
	"io/fs"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/dintero-facade/dintero-facade/internal/gctune"
)

func TestDecide(t *testing.T) {
	const v2, v1 = "/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"
	tests := []struct {
		name  string
		env   map[string]string
		files map[string]string
		want  gctune.Settings
		// inFlight is --max-concurrent-upstream; 0 means its default, 256.
		inFlight int
	}{
		{"no setting, no cgroup", nil, nil, gctune.Settings{GOGC: 400, MemoryLimit: 80 << 20}, 0},
		{"GOGC is the operator's", map[string]string{"GOGC": "150"}, nil, gctune.Settings{MemoryLimit: 80 << 20}, 0},
		{"GOGC=off is the operator's", map[string]string{"GOGC": "off"}, nil, gctune.Settings{MemoryLimit: 80 << 20}, 0},
		{"GOGC=-1 is the operator's", map[string]string{"GOGC": "-1"}, nil, gctune.Settings{MemoryLimit: 80 << 20}, 0},
		{"GOGC=abc is ignored, and said", map[string]string{"GOGC": "abc"}, nil, gctune.Settings{GOGC: 400, MemoryLimit: 80 << 20, IgnoredGOGC: `"abc"`}, 0},
		{"GOGC=OFF is ignored, and said", map[string]string{"GOGC": "OFF"}, nil, gctune.Settings{GOGC: 400, MemoryLimit: 80 << 20, IgnoredGOGC: `"OFF"`}, 0},
		{"GOGC beyond 32 bits is ignored, and said", map[string]string{"GOGC": "4294967296"}, nil, gctune.Settings{GOGC: 400, MemoryLimit: 80 << 20, IgnoredGOGC: `"4294967296"`}, 0},
		{"a long bad GOGC is quoted cut", map[string]string{"GOGC": strings.Repeat("x", 100) + "\n"}, nil, gctune.Settings{GOGC: 400, MemoryLimit: 80 << 20, IgnoredGOGC: `"` + strings.Repeat("x", 32) + `\u2026"`}, 0},
		{"a bad GOGC with control bytes is quoted", map[string]string{"GOGC": "1\n\"x"}, nil, gctune.Settings{GOGC: 400, MemoryLimit: 80 << 20, IgnoredGOGC: `"1\n\"x"`}, 0},
		{"cgroup v2 limit", nil, map[string]string{v2: "134217728\n"}, gctune.Settings{GOGC: 400, MemoryLimit: 120795948}, 0},
		{"cgroup v2 without a limit", nil, map[string]string{v2: "max\n"}, gctune.Settings{GOGC: 400, MemoryLimit: 80 << 20}, 0},
		{"cgroup v2 wins over v1", nil, map[string]string{v2: "max\n", v1: "268435456\n"}, gctune.Settings{GOGC: 400, MemoryLimit: 80 << 20}, 0},
		{"cgroup v1 limit", nil, map[string]string{v1: "268435456\n"}, gctune.Settings{GOGC: 400, MemoryLimit: 241591905}, 0},
		{"cgroup v1 without a limit", nil, map[string]string{v1: "9223372036854771712\n"}, gctune.Settings{GOGC: 400, MemoryLimit: 80 << 20}, 0},
		{"unreadable limit", nil, map[string]string{v2: "lots\n"}, gctune.Settings{GOGC: 400, MemoryLimit: 80 << 20}, 0},
		{"GOMEMLIMIT is the operator's", map[string]string{"GOMEMLIMIT": "100MiB"}, map[string]string{v2: "134217728\n"}, gctune.Settings{GOGC: 400}, 0},
		{"both the operator's", map[string]string{"GOGC": "200", "GOMEMLIMIT": "1GiB"}, map[string]string{v2: "134217728\n"}, gctune.Settings{}, 0},
		{"1,250 in flight, the least limit", nil, nil, gctune.Settings{GOGC: 400, MemoryLimit: 80 << 20}, 1250},
		{"1,280 in flight: 64 KiB each is the least limit", nil, nil, gctune.Settings{GOGC: 400, MemoryLimit: 80 << 20}, 1280},
		{"4,096 in flight: 64 KiB each", nil, nil, gctune.Settings{GOGC: 400, MemoryLimit: 256 << 20}, 4096},
		{"2^47 in flight: 64 KiB each is more than int64 holds", nil, nil, gctune.Settings{GOGC: 400, MemoryLimit: math.MaxInt64}, 1 << 47},
		{"the most int64 holds at 64 KiB each", nil, nil, gctune.Settings{GOGC: 400, MemoryLimit: math.MaxInt64 - 65535}, math.MaxInt64 >> 16},
		{"4,096 in flight in a container: the container's", nil, map[string]string{v2: "134217728\n"}, gctune.Settings{GOGC: 400, MemoryLimit: 120795948}, 4096},
		{"4,096 in flight, GOMEMLIMIT the operator's", map[string]string{"GOMEMLIMIT": "100MiB"}, nil, gctune.Settings{GOGC: 400}, 4096},
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
			inFlight := tt.inFlight
			if inFlight == 0 {
				inFlight = 256
			}
			if got := gctune.Decide(getenv, readFile, inFlight); got != tt.want {
				t.Errorf("Decide() = %+v; want %+v", got, tt.want)
			}
		})
	}
}

func TestRestartEnv(t *testing.T) {
	for _, tt := range []struct {
		name    string
		env     []string
		want    []string
		restart bool
	}{
		{"no GODEBUG", []string{"PATH=/bin"}, []string{"PATH=/bin", "GODEBUG=gcshrinkstackoff=1"}, true},
		{"an empty GODEBUG", []string{"GODEBUG=", "PATH=/bin"}, []string{"GODEBUG=gcshrinkstackoff=1", "PATH=/bin"}, true},
		{"the operator's GODEBUG kept", []string{"GODEBUG=http2debug=1"}, []string{"GODEBUG=http2debug=1,gcshrinkstackoff=1"}, true},
		{"the operator's choice", []string{"GODEBUG=gctrace=1,gcshrinkstackoff=0"}, nil, false},
		{"after the restart", []string{"GODEBUG=gcshrinkstackoff=1"}, nil, false},
		// The runtime does not trim names: a spaced one is not its.
		{"a spaced name the runtime does not read", []string{"GODEBUG=gctrace=1, gcshrinkstackoff=1"}, []string{"GODEBUG=gctrace=1, gcshrinkstackoff=1,gcshrinkstackoff=1"}, true},
		{"the first GODEBUG is the runtime's", []string{"GODEBUG=gctrace=1", "GODEBUG=gcshrinkstackoff=0"}, []string{"GODEBUG=gctrace=1,gcshrinkstackoff=1", "GODEBUG=gcshrinkstackoff=0"}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := slices.Clone(tt.env)
			got, restart := gctune.RestartEnv(tt.env)
			if restart != tt.restart || !slices.Equal(got, tt.want) {
				t.Errorf("RestartEnv(%q) = %q, %v; want %q, %v", tt.env, got, restart, tt.want, tt.restart)
			}
			if !slices.Equal(tt.env, before) {
				t.Errorf("RestartEnv changed its argument to %q", tt.env)
			}
		})
	}
}

// FuzzRestartEnv: the process starts again at most once. Whatever the
// environment it was given, the one RestartEnv returns asks for no other
// restart, and the runtime's GODEBUG in it (the first) ends with the
// stack setting, which the runtime reads last and so keeps.
func FuzzRestartEnv(f *testing.F) {
	for _, seed := range [][2]string{{"", "PATH=/bin"}, {"GODEBUG=", "x"}, {"GODEBUG=a=1,gcshrinkstackoff=0", ""}, {"GODEBUG", "GODEBUG=b=2"}, {"GODEBUG= gcshrinkstackoff=1", "GODEBUG=gcshrinkstackoff=1"}} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		env, restart := gctune.RestartEnv([]string{a, b})
		if !restart {
			return
		}
		if again, twice := gctune.RestartEnv(env); twice {
			t.Fatalf("RestartEnv(%q) = %q, which restarts again as %q", []string{a, b}, env, again)
		}
		for _, kv := range env {
			if v, ok := strings.CutPrefix(kv, "GODEBUG="); ok {
				if !strings.HasSuffix(v, "gcshrinkstackoff=1") {
					t.Fatalf("RestartEnv(%q) = %q: the runtime's GODEBUG does not end with the setting", []string{a, b}, env)
				}
				return
			}
		}
		t.Fatalf("RestartEnv(%q) = %q: no GODEBUG", []string{a, b}, env)
	})
}
