package upstream

import (
	"context"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/golang-jwt/jwt/v5"
	lru "github.com/hashicorp/golang-lru/v2"
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
	// recently used dropped first (and fetched again when next needed).
	// Default 1,000.
	MaxAccounts int
}

// IdentityResult is the outcome of an id_token's verification.
type IdentityResult int

// The outcomes of a verification.
const (
	// NotChecked: the answer carried no id_token.
	NotChecked IdentityResult = iota
	// Verified: every check passed.
	Verified
	// Invalid: a check failed; Identity.Reason says which.
	Invalid
)

// The reasons an id_token is invalid: a small fixed set, safe as a metric
// label.
const (
	ReasonMalformed      = "malformed"
	ReasonAlgorithm      = "algorithm"
	ReasonUnknownKey     = "unknown_key"
	ReasonSignature      = "signature"
	ReasonExpired        = "expired"
	ReasonNotYetValid    = "not_yet_valid"
	ReasonIssuedInFuture = "issued_in_future"
	ReasonAudience       = "audience"
	ReasonIssuer         = "issuer"
	ReasonClaims         = "claims"
	ReasonCritical       = "critical_header"
)

// Identity is what authorize's id_token proves.
type Identity struct {
	Result IdentityResult
	// Reason names the failed check when Result is Invalid.
	Reason string
	// Claims are set when Result is Verified.
	Claims *Claims
}

// Claims are a verified id_token's claims. They are personal data: never
// log them.
type Claims struct {
	Subject, Email, Name, Issuer string
	Audience                     []string
	Expires, IssuedAt            time.Time
	// Extra holds every other claim (Dintero's ext_ claims among them),
	// as decoded from JSON.
	Extra map[string]any
}

// ErrSigningKeys means the account's signing keys could not be had: before
// authorize, the verification code was then not sent (the service says
// so), and at the warm-up no code is involved. It wraps the cause.
var ErrSigningKeys = errors.New("the account's signing keys could not be fetched")

// signingKey is one RSA public key of an account.
type signingKey struct {
	kid string
	key *rsa.PublicKey
}

// keyring holds an account's signing keys, fetched from its keys
// endpoint. It exists only once a fetch succeeded.
type keyring struct {
	mu          sync.Mutex
	keys        []signingKey
	gen         uint64    // counts the fetches stored
	fetched     time.Time // when keys were fetched
	lastRefetch time.Time // when an unknown kid last made them be fetched, whatever came of it
	refetching  *refetch  // the refetch in flight for an unknown kid, nil when none
}

// refetch is a fetch of the keys for an unknown kid; done is closed when
// it has ended, ok set when it succeeded and refused when Dintero refused
// the token it was made with (which says nothing of the keys).
type refetch struct {
	done    chan struct{}
	ok      bool
	refused bool
}

// keySet is the signing keys of the accounts called: a bounded cache,
// least recently used out first, of the accounts whose keys were had.
// A fetch that failed leaves nothing in it, so that callers naming
// accounts at will cannot grow it.
type keySet struct {
	rings *lru.Cache[string, *keyring]
}

func newKeySet(size int) keySet {
	rings, err := lru.New[string, *keyring](size)
	if err != nil {
		panic(err) // size is positive: New's defaults see to it
	}
	return keySet{rings: rings}
}

// ring returns account's keyring, nil when its keys were never had (or
// were dropped for other accounts').
func (k keySet) ring(account string) *keyring {
	r, _ := k.rings.Get(account)
	return r
}

// put stores keys fetched at now as account's.
func (k keySet) put(account string, keys []signingKey, now time.Time) {
	r, ok := k.rings.Get(account)
	if !ok {
		r = &keyring{}
		if prev, found, _ := k.rings.PeekOrAdd(account, r); found {
			r = prev
		}
	}
	r.mu.Lock()
	r.keys, r.fetched = keys, now
	r.gen++
	r.mu.Unlock()
}

// gen returns how many fetches of account's keys were stored; 0 when
// none is held.
func (k keySet) gen(account string) uint64 {
	r, _ := k.rings.Peek(account)
	if r == nil {
		return 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.gen
}

// len is how many accounts' keys are held.
func (k keySet) len() int { return k.rings.Len() }

// ensureKeys makes sure the account's signing keys are at hand before a
// verification code is spent: fetched once, shared by concurrent calls that
// authenticate alike, and fetched again once older than KeysFor. Stale keys
// still serve when a new fetch fails.
func (c *Client) ensureKeys(ctx context.Context, call Call, account string) (Meta, error) {
	var have bool
	var seen uint64
	if r := c.keys.ring(account); r != nil {
		r.mu.Lock()
		var fresh bool
		have, fresh, seen = len(r.keys) > 0, c.now().Sub(r.fetched) < c.opts.IDToken.KeysFor, r.gen
		r.mu.Unlock()
		if fresh {
			return Meta{}, nil
		}
	}
	meta, err := c.fetchKeys(ctx, call, account, seen)
	if err != nil && have {
		return meta, nil
	}
	return meta, err
}

// fetchKeys fetches account's keys into the key set, unless keys were
// stored since the caller saw generation seen of them (a caller may join
// only after the fetch it waited for has ended). Calls that authenticate
// alike share one fetch, which no one caller's cancellation ends; calls
// with other tokens fetch on their own, so that a bad token fails only its
// own call.
func (c *Client) fetchKeys(ctx context.Context, call Call, account string, seen uint64) (Meta, error) {
	type result struct {
		meta Meta
		err  error
	}
	ch := c.keysFlight.DoChan(account+" "+call.Authorization, func() (any, error) {
		if c.keys.gen(account) != seen {
			return result{}, nil
		}
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.Timeout)
		defer cancel()
		keys, meta, err := c.getKeys(fctx, call, account)
		if err == nil {
			c.keys.put(account, keys, c.now())
		}
		return result{meta, err}, nil
	})
	select {
	case res := <-ch:
		v := res.Val.(result)
		if v.err != nil {
			return v.meta, fmt.Errorf("%w: %w", ErrSigningKeys, v.err)
		}
		return v.meta, nil
	case <-ctx.Done():
		return Meta{}, fmt.Errorf("%w: waiting for them: %w", ErrSigningKeys, context.Cause(ctx))
	}
}

// getKeys calls the keys endpoint, with the retries of an idempotent call.
func (c *Client) getKeys(ctx context.Context, call Call, account string) ([]signingKey, Meta, error) {
	path, err := c.path("accounts", account, "auth", "keys")
	if err != nil {
		return nil, Meta{}, err
	}
	req := request{op: opKeys, method: http.MethodGet, path: path, idempotent: true}
	res, meta, err := c.send(ctx, call, account, &req)
	if err != nil {
		return nil, meta, err
	}
	if res.status != http.StatusOK {
		return nil, meta, c.answerError(&req, res, fmt.Errorf("%w: HTTP %d to the keys endpoint", ErrUnexpectedResponse, res.status))
	}
	keys, err := parseKeys(res.body)
	if err != nil {
		return nil, meta, &Error{StatusCode: res.status, RequestID: meta.RequestID, Reason: err}
	}
	return keys, meta, nil
}

// opKeys is the keys fetch's operation, which has a breaker of its own.
const opKeys = "Keys"

// jwk is one key as the keys endpoint lists it.
type jwk struct {
	Alg string `json:"alg"`
	Kty string `json:"kty"`
	Use string `json:"use"`
	N   string `json:"n"`
	E   string `json:"e"`
	Kid string `json:"kid"`
}

// The RSA keys accepted: a modulus of 2,048 to 8,192 bits (a larger one
// makes each verification slow at will), the exponent 65537 (the only
// one in use, and a large one is as slow), and at most maxKeys keys per
// account.
const (
	minKeyBits = 2048
	maxKeyBits = 8192
	keyE       = 65537
	maxKeys    = 16
)

// parseKeys reads the keys endpoint's answer: Dintero's JSON array of keys
// (a {"keys": […]} set is read too). Keys that are not RS256 signing keys
// of a sound size (2,048 to 8,192 bits, exponent 65537), or have no kid,
// are skipped; none left is an error.
func parseKeys(body []byte) ([]signingKey, error) {
	var list []jwk
	if err := json.Unmarshal(body, &list, json.RejectUnknownMembers(false)); err != nil {
		var set struct {
			Keys []jwk `json:"keys"`
		}
		if json.Unmarshal(body, &set, json.RejectUnknownMembers(false)) != nil || set.Keys == nil {
			return nil, fmt.Errorf("%w: the keys answer is not a JSON array of keys", ErrDecode)
		}
		list = set.Keys
	}
	var out []signingKey
	for _, k := range list {
		if k.Kid == "" || k.Kty != "RSA" || (k.Use != "" && k.Use != "sig") || (k.Alg != "" && k.Alg != "RS256") {
			continue
		}
		if len(k.N) > maxKeyBits/6+4 {
			continue // longer than the largest modulus accepted: not decoded
		}
		n, errN := decodeBase64URL(k.N)
		e, errE := decodeBase64URL(k.E)
		if errN != nil || errE != nil || len(e) == 0 || len(e) > 4 {
			continue
		}
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
		if bits := pub.N.BitLen(); bits < minKeyBits || bits > maxKeyBits || pub.E != keyE {
			continue
		}
		if len(out) == maxKeys {
			break
		}
		out = append(out, signingKey{kid: k.Kid, key: pub})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: the keys answer holds no RS256 signing key", ErrUnexpectedResponse)
	}
	return out, nil
}

// decodeBase64URL decodes base64url with or without padding.
func decodeBase64URL(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}

// key returns the key of kid, if the ring holds it; a nil ring holds
// none.
func (r *keyring) key(kid string) *rsa.PublicKey {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range r.keys {
		if k.kid == kid {
			return k.key
		}
	}
	return nil
}

// joinRefetch returns the refetch in flight, or starts one (start is then
// true) unless one ended within every; nil when neither.
func (r *keyring) joinRefetch(now time.Time, every time.Duration) (_ *refetch, start bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.refetching != nil {
		return r.refetching, false
	}
	if !r.lastRefetch.IsZero() && now.Sub(r.lastRefetch) < every {
		return nil, false
	}
	r.refetching = &refetch{done: make(chan struct{})}
	return r.refetching, true
}

// endRefetch ends f with the fetch's error. Every end starts the interval
// before the next refetch, a failure too: while Dintero fails, calls do
// not each fetch again. A refusal of the token the fetch was made with
// does not: it says nothing of the keys, and another caller's token may
// read them.
func (r *keyring) endRefetch(f *refetch, err error, now time.Time) {
	r.mu.Lock()
	f.ok, f.refused = err == nil, refusedToken(err)
	if !f.refused {
		r.lastRefetch = now
	}
	r.refetching = nil
	r.mu.Unlock()
	close(f.done)
}

// refusedToken reports whether Dintero refused the keys fetch for its
// token: a 4xx answer of the keys endpoint.
func refusedToken(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Reason == nil && e.StatusCode/100 == 4 && e.StatusCode != http.StatusTooManyRequests && !errors.Is(err, ErrTokenFetch)
}

// errUnknownKey and errAlgorithm tell the key function's refusals apart.
var (
	errUnknownKey = errors.New("no signing key of the account has this kid")
	errAlgorithm  = errors.New("the token is not signed with RS256")
	errCritical   = errors.New("the token names critical header extensions, which the facade does not understand")
)

// verifyIDToken checks raw against account's keys: RS256 only, the key by
// kid (an unknown kid fetches the keys again, at most every RefetchEvery),
// the times with the leeway, an audience that is the redirect_uri or the
// client_id, and the issuer when one is configured.
//
// The calls that meet an unknown kid while a refetch is in flight wait for
// it; if Dintero refused it (another caller's token may not read the
// keys), each tries once with its own token.
func (c *Client) verifyIDToken(ctx context.Context, call Call, account, raw string, audiences ...string) Identity {
	r := c.keys.ring(account)
	seen := c.keys.gen(account)
	id := c.checkIDToken(raw, r.key, audiences)
	if id.Reason != ReasonUnknownKey {
		return id
	}
	if r == nil {
		// The keys were dropped for other accounts' since the call
		// began: fetch them once.
		if _, err := c.fetchKeys(ctx, call, account, seen); err != nil {
			return id
		}
		return c.checkIDToken(raw, c.keys.ring(account).key, audiences)
	}
	f, start := r.joinRefetch(c.now(), c.opts.IDToken.RefetchEvery)
	switch {
	case f == nil:
		return id
	case start:
		_, err := c.fetchKeys(ctx, call, account, seen)
		r.endRefetch(f, err, c.now())
	default:
		select {
		case <-f.done:
		case <-ctx.Done():
			return id
		}
		if f.refused {
			if _, err := c.fetchKeys(ctx, call, account, seen); err != nil {
				return id
			}
		}
	}
	return c.checkIDToken(raw, r.key, audiences)
}

// checkIDToken verifies raw with the keys lookup gives.
func (c *Client) checkIDToken(raw string, lookup func(kid string) *rsa.PublicKey, audiences []string) Identity {
	o := c.opts.IDToken
	opts := []jwt.ParserOption{
		// exp is required by typedClaims, with the other claims.
		jwt.WithLeeway(o.Leeway), jwt.WithIssuedAt(), jwt.WithTimeFunc(c.opts.Now),
		// The payload's numbers are read as json.Number, so that a large
		// ext_ claim keeps its digits.
		jwt.WithJSONNumber(),
	}
	if o.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(o.Issuer))
	}
	claims := jwt.MapClaims{}
	_, err := jwt.NewParser(opts...).ParseWithClaims(raw, claims, func(t *jwt.Token) (any, error) {
		// The algorithm is Dintero's, not the token's: none, HS256 with
		// the public key as secret, or any other is refused here.
		if t.Method != jwt.SigningMethodRS256 {
			return nil, errAlgorithm
		}
		// RFC 7515 §4.1.11: a token with a critical extension the
		// receiver does not understand is invalid; the facade knows none.
		if _, ok := t.Header["crit"]; ok {
			return nil, errCritical
		}
		kid, _ := t.Header["kid"].(string)
		if k := lookup(kid); k != nil {
			return k, nil
		}
		return nil, errUnknownKey
	})
	if err != nil {
		return Identity{Result: Invalid, Reason: invalidReason(err)}
	}
	cl, ok := typedClaims(claims)
	if !ok {
		return Identity{Result: Invalid, Reason: ReasonClaims}
	}
	if !slices.ContainsFunc(cl.Audience, func(a string) bool { return a != "" && slices.Contains(audiences, a) }) {
		return Identity{Result: Invalid, Reason: ReasonAudience}
	}
	return Identity{Result: Verified, Claims: cl}
}

// invalidReason names the check a verification error failed.
func invalidReason(err error) string {
	switch {
	case errors.Is(err, errAlgorithm):
		return ReasonAlgorithm
	case errors.Is(err, errUnknownKey):
		return ReasonUnknownKey
	case errors.Is(err, errCritical):
		return ReasonCritical
	case errors.Is(err, jwt.ErrTokenMalformed):
		return ReasonMalformed
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return ReasonSignature
	case errors.Is(err, jwt.ErrTokenExpired):
		return ReasonExpired
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return ReasonNotYetValid
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return ReasonIssuedInFuture
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return ReasonIssuer
	}
	return ReasonClaims
}

// typedClaims reads the documented claims; ok is false when one of them
// has the wrong type.
func typedClaims(m jwt.MapClaims) (*Claims, bool) {
	cl := &Claims{Extra: map[string]any{}}
	str := func(k string, dst *string) bool {
		v, ok := m[k]
		if !ok {
			return true
		}
		*dst, ok = v.(string)
		return ok
	}
	if !str("sub", &cl.Subject) || !str("email", &cl.Email) || !str("name", &cl.Name) || !str("iss", &cl.Issuer) || cl.Subject == "" {
		return nil, false
	}
	for _, k := range [...]string{"exp", "nbf", "iat"} {
		if v, ok := m[k]; ok && !timeInRange(v) {
			return nil, false
		}
	}
	aud, err := m.GetAudience()
	if err != nil {
		return nil, false
	}
	cl.Audience = aud
	exp, err := m.GetExpirationTime()
	if err != nil || exp == nil {
		return nil, false
	}
	cl.Expires = exp.UTC()
	if iat, err := m.GetIssuedAt(); err != nil {
		return nil, false
	} else if iat != nil {
		cl.IssuedAt = iat.UTC()
	}
	for k, v := range m {
		switch k {
		case "sub", "email", "name", "iss", "aud", "exp", "iat":
			continue
		}
		if depth(v) > maxClaimDepth {
			return nil, false
		}
		cl.Extra[k] = plainJSON(v)
	}
	return cl, true
}

// maxTimeClaim is 9999-12-31T23:59:59Z, the last second a protobuf
// Timestamp (and so the caller) can hold.
const maxTimeClaim = 253402300799

// timeInRange reports whether a time claim is a number of seconds from
// 1970 to the year 9999: one beyond overflows or cannot be answered.
func timeInRange(v any) bool {
	n, ok := v.(interface{ Float64() (float64, error) })
	if !ok {
		return false
	}
	f, err := n.Float64()
	return err == nil && f >= 0 && f <= maxTimeClaim
}

// maxClaimDepth bounds the nesting of a claim, well within what a protobuf
// decoder on the caller's side accepts.
const maxClaimDepth = 32

// depth returns how deep v nests arrays and objects.
func depth(v any) int {
	d := 0
	switch v := v.(type) {
	case []any:
		for _, x := range v {
			d = max(d, depth(x))
		}
		return d + 1
	case map[string]any:
		for _, x := range v {
			d = max(d, depth(x))
		}
		return d + 1
	}
	return 0
}

// plainJSON turns the JSON numbers of a decoded claim into float64 where
// that keeps the value exactly, else into their decimal text, so that no
// digit is lost on the way to a protobuf Struct.
func plainJSON(v any) any {
	switch v := v.(type) {
	case interface{ String() string }:
		f, acc := exactFloat(v.String())
		if acc {
			return f
		}
		return v.String()
	case []any:
		for i := range v {
			v[i] = plainJSON(v[i])
		}
		return v
	case map[string]any:
		for k := range v {
			v[k] = plainJSON(v[k])
		}
		return v
	}
	return v
}

// exactFloat parses the JSON number s and reports whether a float64 holds
// it exactly.
func exactFloat(s string) (float64, bool) {
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return 0, false
	}
	return r.Float64()
}
