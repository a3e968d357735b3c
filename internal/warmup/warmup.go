// Package warmup readies the client of Dintero before the facade reports
// SERVING: a connection, and the tokens and signing keys of the accounts
// it holds credentials for.
package warmup

import (
	"context"
	"log/slog"
	"time"
)

// Run calls warm within timeout, and returns once it succeeded or the
// time is up; calls that come meanwhile are served. If Dintero cannot be
// had in time, it says so and keeps trying in the background, backing off
// from a second to 30 s, until warm succeeds or ctx ends. stop ends the
// background tries and waits for them. A timeout of 0 warms nothing.
func Run(ctx context.Context, warm func(context.Context) error, timeout time.Duration, log *slog.Logger) (stop func()) {
	if timeout <= 0 {
		return func() {}
	}
	start := time.Now()
	wctx, cancel := context.WithTimeout(ctx, timeout)
	err := warm(wctx)
	cancel()
	if err == nil {
		log.Info("warmed up: connected to Dintero, tokens and signing keys fetched", "took", time.Since(start).String())
		return func() {}
	}
	log.Warn("Dintero could not be had at start: serving, and trying again in the background", "error", err.Error())
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for wait := time.Second; ; wait = min(2*wait, 30*time.Second) {
			t := time.NewTimer(wait)
			select {
			case <-quit:
				t.Stop()
				return
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			wctx, cancel := context.WithTimeout(ctx, timeout)
			err := warm(wctx)
			cancel()
			if err == nil {
				log.Info("warmed up: connected to Dintero, tokens and signing keys fetched")
				return
			}
			log.Warn("Dintero still cannot be had", "error", err.Error())
		}
	}()
	return func() { close(quit); <-done }
}
