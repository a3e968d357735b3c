// Package warmup readies the client of Dintero before the facade reports
// SERVING: a connection, and the tokens and signing keys of the accounts
// it holds credentials for; and says what it did.
package warmup

import (
	"context"
	"errors"
	"log/slog"
	"net/http/httptrace"
	"slices"
	"sync/atomic"
	"time"

	"github.com/dintero-facade/dintero-facade/upstream"
)

// Target is what the warm-up readies: upstream.Client.
type Target interface {
	// Warm readies the target, returning an *upstream.AccountError for
	// each account it could not ready.
	Warm(ctx context.Context) error
	// Accounts lists the accounts with credentials.
	Accounts() []string
}

// Run warms t within timeout, and returns once it succeeded or the time
// is up; calls that come meanwhile are served. It logs what it did: the
// connections it opened, and the accounts whose token and signing keys it
// fetched, or that there was nothing to warm. If Dintero cannot be had in
// time, it says so and keeps trying in the background, backing off from a
// second to 30 s, until the warm-up succeeds or ctx ends. stop ends the
// background tries and waits for them. A timeout of 0 warms nothing.
func Run(ctx context.Context, t Target, timeout time.Duration, log *slog.Logger) (stop func()) {
	if timeout <= 0 {
		return func() {}
	}
	r := warm(ctx, t, timeout, nil)
	if r.err == nil {
		r.log(log)
		return func() {}
	}
	log.Warn("Dintero could not be had at start: serving, and trying again in the background", r.attrs()...)
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		ready := r.ready
		for wait := time.Second; ; wait = min(2*wait, 30*time.Second) {
			t0 := time.NewTimer(wait)
			select {
			case <-quit:
				t0.Stop()
				return
			case <-ctx.Done():
				t0.Stop()
				return
			case <-t0.C:
			}
			r := warm(ctx, t, timeout, ready)
			if r.err == nil {
				r.log(log)
				return
			}
			ready = r.ready
			log.Warn("Dintero still cannot be had", r.attrs()...)
		}
	}()
	return func() { close(quit); <-done }
}

// result is what one warm-up did.
type result struct {
	took time.Duration
	// connections counts the connections to Dintero the warm-up opened.
	connections int64
	// ready are the accounts whose token and signing keys are at hand,
	// fetched the ones that were not before this warm-up, failed the
	// others.
	ready, fetched, failed []string
	err                    error
}

// warm warms t once, within timeout; before are the accounts that were
// ready before it.
func warm(ctx context.Context, t Target, timeout time.Duration, before []string) result {
	var conns atomic.Int64
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: func(c httptrace.GotConnInfo) {
		if !c.Reused {
			conns.Add(1)
		}
	}})
	start := time.Now()
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	accounts := t.Accounts()
	err := t.Warm(wctx)
	r := result{took: time.Since(start), connections: conns.Load(), err: err}
	for _, e := range joined(err) {
		if ae, ok := errors.AsType[*upstream.AccountError](e); ok {
			r.failed = append(r.failed, ae.Account)
		}
	}
	for _, a := range accounts {
		switch {
		case slices.Contains(r.failed, a):
		case slices.Contains(before, a):
			r.ready = append(r.ready, a)
		default:
			r.ready = append(r.ready, a)
			r.fetched = append(r.fetched, a)
		}
	}
	return r
}

// joined returns the errors err joins, or err alone.
func joined(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	if err == nil {
		return nil
	}
	return []error{err}
}

// log says what a successful warm-up did.
func (r result) log(log *slog.Logger) {
	switch {
	case len(r.ready) == 0 && r.connections == 0:
		log.Info("nothing to warm: no credentials", "took", r.took)
	case len(r.ready) == 0:
		log.Info("warmed up: connected to Dintero; no credentials, so no token or signing keys to fetch", "connections_opened", r.connections, "took", r.took)
	default:
		log.Info("warmed up: a token and the signing keys fetched per account", "accounts", r.fetched, "connections_opened", r.connections, "took", r.took)
	}
}

// attrs describe a warm-up that failed.
func (r result) attrs() []any {
	return []any{"error", r.err.Error(), "accounts_ready", r.ready, "accounts_failed", r.failed, "connections_opened", r.connections, "took", r.took}
}
