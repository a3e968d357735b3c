package telemetry

import (
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
)

// maxErrorKinds bounds the distinct messages errorLog remembers.
const maxErrorKinds = 64

// errorLog is an otel.ErrorHandler that writes OpenTelemetry's own errors
// (an export that failed, a collector unreachable) to the facade's log as
// JSON, never the plain lines of Go's log package: at most one WARN line
// per distinct message in every period, naming how many like it were held
// back since the last such line. A collector that is down makes an error every few
// seconds; the log should say so, not be flooded.
type errorLog struct {
	log   *slog.Logger
	every time.Duration
	now   func() time.Time

	mu   sync.Mutex
	seen map[string]*errorKind
}

// errorKind is one distinct message: when it was last logged and how many
// came since.
type errorKind struct {
	logged time.Time
	held   int
}

// newErrorLog returns an errorLog that logs each distinct message at most
// once every period.
func newErrorLog(log *slog.Logger, every time.Duration) *errorLog {
	return &errorLog{log: log, every: every, now: time.Now, seen: map[string]*errorKind{}}
}

var _ otel.ErrorHandler = (*errorLog)(nil)

// Handle logs err, unless the same message was logged less than a period
// ago.
func (e *errorLog) Handle(err error) {
	if err == nil {
		return
	}
	msg := err.Error()
	now := e.now()
	e.mu.Lock()
	k, ok := e.seen[msg]
	if ok && now.Sub(k.logged) < e.every {
		k.held++
		e.mu.Unlock()
		return
	}
	if !ok {
		if len(e.seen) >= maxErrorKinds {
			clear(e.seen)
		}
		k = &errorKind{}
		e.seen[msg] = k
	}
	held := k.held
	k.logged, k.held = now, 0
	e.mu.Unlock()
	attrs := []any{"error", msg}
	if held > 0 {
		attrs = append(attrs, "held_back", held)
	}
	e.log.Warn("OpenTelemetry error", attrs...)
}
