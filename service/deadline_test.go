package service_test

import (
	"context"
	"testing"
	"time"

	"github.com/dintero-facade/dintero-facade/service"
)

// TestDeadlineBound: the deadline a call gets, read at a fixed instant
// (no clock, so it holds on a busy machine): the default without one, the
// longest when the caller's is further, else the caller's less a tenth,
// at least 50 ms (but at most half) and at most 100 ms, kept for the
// answer's way back.
func TestDeadlineBound(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	const def, max = 10 * time.Second, 20 * time.Second
	for _, tc := range []struct {
		name string
		left time.Duration // until the caller's deadline; 0: none
		want time.Duration
	}{
		{"no deadline", 0, def},
		{"beyond the longest", 30 * time.Second, max},
		{"200 ms keeps 50 ms, more than a tenth", 200 * time.Millisecond, 150 * time.Millisecond},
		{"60 ms keeps half", 60 * time.Millisecond, 30 * time.Millisecond},
		{"800 ms keeps a tenth", 800 * time.Millisecond, 720 * time.Millisecond},
		{"2 s keeps 100 ms", 2 * time.Second, 1900 * time.Millisecond},
		{"1 s keeps 100 ms", time.Second, 900 * time.Millisecond},
		{"past", -time.Second, 0},
	} {
		ctx := context.Background()
		if tc.left != 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, now.Add(tc.left))
			defer cancel()
		}
		if got := service.DeadlineBound(ctx, now, def, max); got != tc.want {
			t.Errorf("%s: got %v; want %v", tc.name, got, tc.want)
		}
	}
}
