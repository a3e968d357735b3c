package upstream

import (
	"errors"
	"time"

	"github.com/sony/gobreaker/v2"
)

// BreakerOptions shape the circuit breaker in front of Dintero. It opens
// when Dintero keeps failing (502, 503 and 504 answers and transport
// failures; 4xx and 500 answers are Dintero working, on a request of a
// caller's choosing), answers ErrCircuitOpen at once while open, and after
// OpenFor lets one probe through: the breaker closes if it succeeds and
// opens again if not. There is one breaker for all accounts: an outage of
// Dintero is an outage for every account. The keys endpoint has a breaker
// of its own, with the same options: its outage pauses Authorize only.
type BreakerOptions struct {
	// ConsecutiveFailures opens the breaker. Default 10.
	ConsecutiveFailures uint32
	// FailureRatio opens the breaker when at least MinRequests calls in
	// the last Window failed at this ratio or more. Defaults 0.5, 20, 10 s.
	FailureRatio float64
	MinRequests  uint32
	Window       time.Duration
	// OpenFor is how long the breaker stays open before probing. Default 5 s.
	OpenFor time.Duration
}

// breakerFailure reports whether an answer counts as Dintero failing: the
// proxy in front of it found no healthy backend, or timed out. A 500 does
// not: it is one request's failure, which a caller could provoke at will,
// with its own token and an odd request, to pause every caller.
func breakerFailure(status int) bool { return uncertainStatus(status) }

// callerEnded marks an attempt that the caller's context ended.
type callerEnded struct{ err error }

func (e *callerEnded) Error() string { return e.err.Error() }
func (e *callerEnded) Unwrap() error { return e.err }

// errServerError marks a 5xx answer as a failure for the breaker; the
// answer itself still goes back to the caller.
var errServerError = errors.New("server error")

// newBreaker returns a breaker named name that tells state its changes.
func newBreaker(name string, o BreakerOptions, state func(string)) *gobreaker.CircuitBreaker[*response] {
	if o.ConsecutiveFailures == 0 {
		o.ConsecutiveFailures = 10
	}
	if o.FailureRatio <= 0 {
		o.FailureRatio = 0.5
	}
	if o.MinRequests == 0 {
		o.MinRequests = 20
	}
	if o.Window <= 0 {
		o.Window = 10 * time.Second
	}
	if o.OpenFor <= 0 {
		o.OpenFor = 5 * time.Second
	}
	return gobreaker.NewCircuitBreaker[*response](gobreaker.Settings{
		Name:         name,
		MaxRequests:  1,
		Interval:     o.Window,
		BucketPeriod: o.Window / 10,
		Timeout:      o.OpenFor,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			return c.ConsecutiveFailures >= o.ConsecutiveFailures ||
				(c.Requests >= o.MinRequests && float64(c.TotalFailures) >= o.FailureRatio*float64(c.Requests))
		},
		// A caller that gives up, or whose deadline is short, says
		// nothing about Dintero's health; nor does an answer too large to
		// read, which is an answer all the same. Dintero's own timeouts
		// (dial, TLS, response headers) do count.
		IsExcluded: func(err error) bool {
			if err == nil {
				return false
			}
			var ended *callerEnded
			var e *Error
			return errors.As(err, &ended) || errors.As(err, &e)
		},
		OnStateChange: func(_ string, _, to gobreaker.State) {
			state(to.String())
		},
	})
}
