package upstream

import "time"

// Observer is told about each attempt and each token fetch. Its methods must
// be cheap and safe for concurrent use; their arguments hold no id or secret.
type Observer interface {
	// Attempt reports one HTTP attempt of the operation named op (an
	// Operation's Name): its number from 1, the status (0 when no answer
	// came back) and how long it took.
	Attempt(op string, attempt, status int, elapsed time.Duration)
	// TokenFetched reports a token fetched with the client credentials.
	TokenFetched()
	// BreakerState reports the circuit breaker's new state: closed,
	// half-open or open.
	BreakerState(state string)
}

// KeysBreakerObserver is an Observer that is also told about the keys
// endpoint's own breaker.
type KeysBreakerObserver interface {
	// KeysBreakerState reports the keys breaker's new state: closed,
	// half-open or open.
	KeysBreakerState(state string)
}

type nopObserver struct{}

func (nopObserver) Attempt(string, int, int, time.Duration) {}
func (nopObserver) TokenFetched()                           {}
func (nopObserver) BreakerState(string)                     {}

// Call carries what a single call brings from its caller, and the
// credentials it was allowed to use.
type Call struct {
	// Authorization is the caller's Authorization header value:
	// "Bearer <token>", the scheme in any case and one or more spaces,
	// else the call fails with ErrBadAuthorization and sends nothing. The
	// token is passed to Dintero as it came, after "Bearer ". Empty means
	// TokenSource.
	Authorization string
	// TokenSource is the facade's credentials for the call's account, from
	// Client.TokenSource: the snapshot the caller's permission was decided
	// on. Nil without a caller token means ErrNoCredentials.
	TokenSource *TokenSource
	// RequestID is the caller's request id, sent as X-Request-Id.
	RequestID string
}

// Meta describes how a call went, for logs and metrics. It is filled on
// success and on error.
type Meta struct {
	// Status is the HTTP status of Dintero's last answer, 0 if none came.
	Status int
	// Attempts counts the HTTP attempts made, token fetches excluded.
	Attempts int
	// RequestID is Dintero's request id from its last answer.
	RequestID string
	// Sent reports whether the request may have reached Dintero: false
	// only when the client knows nothing left the process (a refused
	// connection, a refusal of its own, a failed token fetch).
	Sent bool
	// Uncertain describes, in order, the attempts whose outcome is
	// unknown: no answer after the request may have left ("no answer:
	// timeout", "no answer: connection failed"), or a 502, 503 or 504 from
	// a proxy that may have passed it on ("HTTP 503").
	Uncertain []string
	// Undecoded names the parts of a success answer that could not be read
	// and were left unset ("body" for all of it).
	Undecoded []string
}
