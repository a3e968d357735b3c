package warmup_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dintero-facade/dintero-facade/internal/dinterotest"
	"github.com/dintero-facade/dintero-facade/internal/warmup"
)

// TestRun: a warm-up that succeeds returns at once; one that fails is
// retried in the background until it succeeds, and stop ends the retries.
func TestRun(t *testing.T) {
	logs := &dinterotest.LogBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	var calls atomic.Int32
	ok := func(ctx context.Context) error {
		if _, has := ctx.Deadline(); !has {
			t.Error("the warm-up has no deadline")
		}
		calls.Add(1)
		return nil
	}
	warmup.Run(context.Background(), ok, time.Second, log)()
	if calls.Load() != 1 || !strings.Contains(logs.String(), "warmed up") {
		t.Errorf("got %d calls, log %s; want one, said", calls.Load(), logs)
	}
	warmup.Run(context.Background(), ok, 0, log)()
	if calls.Load() != 1 {
		t.Error("a timeout of 0 warmed up")
	}
	var tries atomic.Int32
	failTwice := func(context.Context) error {
		if tries.Add(1) <= 2 {
			return errors.New("unreachable")
		}
		return nil
	}
	stop := warmup.Run(context.Background(), failTwice, time.Second, log)
	if tries.Load() != 1 || !strings.Contains(logs.String(), "trying again in the background") {
		t.Errorf("got %d tries before returning; want 1, and a warning", tries.Load())
	}
	for deadline := time.Now().Add(20 * time.Second); tries.Load() < 3; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no retry succeeded")
		}
	}
	stop()
	never := func(context.Context) error { tries.Add(1); return errors.New("down") }
	tries.Store(0)
	stop = warmup.Run(context.Background(), never, time.Second, log)
	stop()
	time.Sleep(1500 * time.Millisecond)
	if n := tries.Load(); n != 1 {
		t.Errorf("got %d tries after stop; want the first only", n)
	}
}
