package telemetry

import (
	"io"
	"log/slog"
)

// NewLogger returns the facade's JSON logger, writing to w at level:
// every duration in every line, whoever logs it, in one form, Go's
// (20s, 1.5ms), never a count of nanoseconds.
func NewLogger(w io.Writer, level slog.Leveler) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level, ReplaceAttr: durationText}))
}

// durationText writes a duration as its String.
func durationText(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		a.Value = slog.StringValue(a.Value.Duration().String())
	}
	return a
}
