package telemetry

import (
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/dintero-facade/dintero-facade/internal/dinterotest"
)

// TestErrorLog: OpenTelemetry's errors become JSON WARN lines, each
// distinct message at most once a period, the next line naming how many
// were held back; another message is not held back by the first.
func TestErrorLog(t *testing.T) {
	logs := &dinterotest.LogBuffer{}
	e := newErrorLog(slog.New(slog.NewJSONHandler(logs, nil)), time.Minute)
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	e.now = func() time.Time { return clock }
	down := errors.New("traces export: exporter export timeout: rpc error: code = Unavailable desc = connection refused")
	for range 100 {
		e.Handle(down)
		clock = clock.Add(100 * time.Millisecond) // 10 s in all
	}
	e.Handle(errors.New("another error"))
	e.Handle(nil)
	clock = clock.Add(time.Minute)
	e.Handle(down)
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not a JSON line: %q", l)
		}
		lines = append(lines, m)
	}
	if len(lines) != 3 {
		t.Fatalf("got %d lines; want 3 (the first, the other error, the first again a minute on):\n%s", len(lines), logs)
	}
	for i, want := range []struct {
		err  string
		held any
	}{{down.Error(), nil}, {"another error", nil}, {down.Error(), float64(99)}} {
		if l := lines[i]; l["level"] != "WARN" || l["msg"] != "OpenTelemetry error" || l["error"] != want.err || l["held_back"] != want.held {
			t.Errorf("line %d: got %v; want WARN %q, held_back %v", i, l, want.err, want.held)
		}
	}
}
