package dinterotest

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

// LeakOptions are the goleak options of the project's tests: none, so
// that a leaked accept loop, reader or connection is found. Tests close
// the idle connections of every client they make.
func LeakOptions() []goleak.Option {
	return nil
}

// LogBuffer is a log sink safe for concurrent writes, for tests that read
// what a server logged.
type LogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns everything written.
func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Lines decodes the JSON lines whose msg is one of msgs (all lines when
// none is given); a line that is not JSON fails the test.
func (l *LogBuffer) Lines(t testing.TB, msgs ...string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if msg, _ := m["msg"].(string); len(msgs) == 0 || slices.Contains(msgs, msg) {
			out = append(out, m)
		}
	}
	return out
}
