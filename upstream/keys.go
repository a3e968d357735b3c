package upstream

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/dintero-facade/dintero-facade/internal/oidckeys"
)

// IDTokenOptions shape the verification of authorize's id_token.
type IDTokenOptions struct {
	// Issuer, when set, must be the token's iss.
	Issuer string
	// Leeway is the clock skew allowed on exp, nbf and iat. Default 30 s.
	Leeway time.Duration
	// KeysFor is how long an account's signing keys are used before they
	// are fetched again ahead of a call. Default 1 h.
	KeysFor time.Duration
	// RefetchEvery bounds how often a token signed by an unknown key
	// makes the account's keys be fetched again, whether the last refetch
	// succeeded or failed. Default 10 s.
	RefetchEvery time.Duration
	// MaxAccounts bounds the accounts whose keys are kept, the least
	// recently used dropped first (and fetched again when next needed); a
	// caller with a token of its own brings in at most a quarter of them.
	// Default 1,000.
	MaxAccounts int
	// MaxFetches bounds the keys fetches in flight, apart from
	// Options.MaxConcurrent, whose calls they never take: a fetch goes on
	// without its callers (up to Options.Timeout), so that a keys endpoint
	// that hangs would otherwise hold the bound of every call. A fetch
	// over it fails at once, the code not sent. Default 16.
	MaxFetches int
}

// withDefaults fills the zero values of o with their defaults.
func (o IDTokenOptions) withDefaults() IDTokenOptions {
	if o.Leeway <= 0 {
		o.Leeway = 30 * time.Second
	}
	if o.KeysFor <= 0 {
		o.KeysFor = time.Hour
	}
	if o.RefetchEvery <= 0 {
		o.RefetchEvery = 10 * time.Second
	}
	if o.MaxAccounts <= 0 {
		o.MaxAccounts = 1000
	}
	if o.MaxFetches <= 0 {
		o.MaxFetches = 16
	}
	return o
}

// ErrSigningKeys means the account's signing keys could not be had: before
// authorize, the verification code was then not sent (the service says
// so), and at the warm-up no code is involved. It wraps the cause.
var ErrSigningKeys = errors.New("the account's signing keys could not be fetched")

// OpKeys is Dintero's keys endpoint: an account's signing keys, fetched
// before its first authorize and again when a token names a key not seen
// yet. It has a circuit breaker of its own.
var OpKeys = define(Operation{
	name: "Keys", method: http.MethodGet, path: "/accounts/{oid}/auth/keys",
	operationID: "aid_auths_keys_get", idempotent: true,
})

// accountKeys are one account's signing keys as one call reaches them:
// from the client's key set, fetched when they must be with the call's
// credentials. Calls that authenticate alike share a fetch.
type accountKeys struct {
	c       *Client
	call    Call
	account string
}

// Keys returns the account's keys of kid, for the id_token's
// verification.
func (k *accountKeys) Keys(ctx context.Context, kid string) ([]*rsa.PublicKey, error) {
	return k.c.keys.Keys(ctx, k.account, k.call.Authorization, kid, k)
}

// FetchKeys calls the keys endpoint for the key set. Its error keeps the
// call's Meta.
func (k *accountKeys) FetchKeys(ctx context.Context) ([]oidckeys.Key, error) {
	keys, meta, err := k.c.getKeys(ctx, k.call, k.account)
	if err != nil {
		return nil, &keysError{meta: meta, err: err}
	}
	return keys, nil
}

// keysError is a failed keys fetch, with its Meta.
type keysError struct {
	meta Meta
	err  error
}

func (e *keysError) Error() string { return e.err.Error() }
func (e *keysError) Unwrap() error { return e.err }

// Refused reports whether Dintero refused the fetch for its token: a 4xx
// answer of the keys endpoint, which says nothing of the keys.
func (e *keysError) Refused() bool {
	var de *Error
	return errors.As(e.err, &de) && de.Reason == nil && de.StatusCode/100 == 4 && de.StatusCode != http.StatusTooManyRequests && !errors.Is(e.err, ErrTokenFetch)
}

// ensureKeys makes sure the account's signing keys are at hand before a
// verification code is spent: fetched once, shared by concurrent calls
// that authenticate alike, and fetched again once older than KeysFor.
// Stale keys still serve when a new fetch fails. On error, Meta is the
// keys fetch's.
func (c *Client) ensureKeys(ctx context.Context, keys *accountKeys) (Meta, error) {
	err := c.keys.Ensure(ctx, keys.account, keys.call.Authorization, keys)
	if err == nil {
		return Meta{}, nil
	}
	var meta Meta
	if ke := (*keysError)(nil); errors.As(err, &ke) {
		meta = ke.meta
	}
	return meta, fmt.Errorf("%w: %w", ErrSigningKeys, err)
}

// getKeys calls the keys endpoint, with the retries of an idempotent call.
func (c *Client) getKeys(ctx context.Context, call Call, account string) ([]oidckeys.Key, Meta, error) {
	path, err := OpKeys.urlPath(account)
	if err != nil {
		return nil, Meta{}, err
	}
	req := request{op: OpKeys, path: path}
	res, meta, err := c.send(ctx, call, account, &req)
	if err != nil {
		return nil, meta, err
	}
	if res.status != http.StatusOK {
		return nil, meta, c.answerError(&req, res, fmt.Errorf("%w: HTTP %d to the keys endpoint", ErrUnexpectedResponse, res.status))
	}
	keys, err := oidckeys.Parse(res.body)
	if err != nil {
		reason := ErrUnexpectedResponse
		if errors.Is(err, oidckeys.ErrNotKeys) {
			reason = ErrDecode
		}
		return nil, meta, &Error{StatusCode: res.status, RequestID: meta.RequestID, Reason: fmt.Errorf("%w: %w", reason, err)}
	}
	return keys, meta, nil
}
