// Package idtoken verifies an id_token, as go-oidc's IDTokenVerifier does
// apart from its KeySet: RS256 only, the key by kid from a KeySet, the
// times with a leeway, the audience and the issuer, and the claims read
// into types a caller can hold.
package idtoken

import (
	"context"
	"crypto/rsa"
	"errors"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// KeySet gives the public keys a token names by its kid: usually one, and
// each of them when the issuer lists the kid more than once (RFC 7517
// §4.5 allows it for equivalent alternatives). Its error, any error, or
// no key makes the token invalid with ReasonUnknownKey.
type KeySet interface {
	Keys(ctx context.Context, kid string) ([]*rsa.PublicKey, error)
}

// Result is the outcome of a verification.
type Result int

// The outcomes of a verification.
const (
	// NotChecked: there was no id_token to verify.
	NotChecked Result = iota
	// Verified: every check passed.
	Verified
	// Invalid: a check failed; Verification.Reason says which.
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

// Verification is what an id_token proves.
type Verification struct {
	Result Result
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

// Options configure a Verifier.
type Options struct {
	// Issuer, when set, must be the token's iss.
	Issuer string
	// Leeway is the clock skew allowed on exp, nbf and iat.
	Leeway time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Verifier verifies id_tokens. It is safe for concurrent use.
type Verifier struct {
	parser *jwt.Parser
}

// New returns a Verifier.
func New(o Options) *Verifier {
	if o.Now == nil {
		o.Now = time.Now
	}
	opts := []jwt.ParserOption{
		// exp is required by typedClaims, with the other claims.
		jwt.WithLeeway(o.Leeway), jwt.WithIssuedAt(), jwt.WithTimeFunc(o.Now),
		// The payload's numbers are read as json.Number, so that a large
		// ext_ claim keeps its digits.
		jwt.WithJSONNumber(),
	}
	if o.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(o.Issuer))
	}
	return &Verifier{parser: jwt.NewParser(opts...)}
}

// The key function's refusals, told apart by invalidReason.
var (
	errUnknownKey = errors.New("no key for the token's kid")
	errAlgorithm  = errors.New("the token is not signed with RS256")
	errCritical   = errors.New("the token names critical header extensions, which the facade does not understand")
)

// Verify checks raw: RS256 only, the key of its kid from keys, the times
// with the leeway, an audience among audiences (an empty one matches
// none), the issuer when one is configured, and claims of the documented
// types.
func (v *Verifier) Verify(ctx context.Context, raw string, keys KeySet, audiences ...string) Verification {
	claims := jwt.MapClaims{}
	_, err := v.parser.ParseWithClaims(raw, claims, func(t *jwt.Token) (any, error) {
		// The algorithm is the issuer's, not the token's: none, HS256
		// with the public key as secret, or any other is refused here.
		if t.Method != jwt.SigningMethodRS256 {
			return nil, errAlgorithm
		}
		// RFC 7515 §4.1.11: a token with a critical extension the
		// receiver does not understand is invalid; the facade knows none.
		if _, ok := t.Header["crit"]; ok {
			return nil, errCritical
		}
		kid, _ := t.Header["kid"].(string)
		ks, err := keys.Keys(ctx, kid)
		switch {
		case err != nil || len(ks) == 0 || slices.Contains(ks, nil):
			return nil, errUnknownKey
		case len(ks) == 1:
			return ks[0], nil
		}
		// The signature is tried against each, as go-oidc does.
		set := jwt.VerificationKeySet{Keys: make([]jwt.VerificationKey, len(ks))}
		for i, k := range ks {
			set.Keys[i] = k
		}
		return set, nil
	})
	if err != nil {
		return Verification{Result: Invalid, Reason: invalidReason(err)}
	}
	cl, ok := typedClaims(claims)
	if !ok {
		return Verification{Result: Invalid, Reason: ReasonClaims}
	}
	if !slices.ContainsFunc(cl.Audience, func(a string) bool { return a != "" && slices.Contains(audiences, a) }) {
		return Verification{Result: Invalid, Reason: ReasonAudience}
	}
	return Verification{Result: Verified, Claims: cl}
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
