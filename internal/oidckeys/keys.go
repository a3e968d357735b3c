// Package oidckeys holds the signing keys of the accounts whose id_tokens
// the facade verifies, as go-oidc's RemoteKeySet does for one issuer: each
// account's keys fetched once for the calls that wait, kept for a while,
// fetched again for a key not seen yet (a rotation) at most so often, and
// bounded in number and in size. It knows nothing of how keys are fetched.
package oidckeys

import (
	"context"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"strings"

	"github.com/go-json-experiment/json"
)

// Key is one RSA signing key of an account.
type Key struct {
	// ID is the key's kid, by which a token names it.
	ID string
	// Public is the key.
	Public *rsa.PublicKey
}

// The errors of Parse.
var (
	// ErrNotKeys means the answer is neither a JSON array of keys nor a
	// JWK set.
	ErrNotKeys = errors.New("the keys answer is not a JSON array of keys")
	// ErrNoKey means the answer holds no key that Parse accepts.
	ErrNoKey = errors.New("the keys answer holds no RS256 signing key")
)

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
// one in use, and a large one is as slow), and at most MaxKeys keys per
// account.
const (
	minKeyBits = 2048
	maxKeyBits = 8192
	keyE       = 65537
	// MaxKeys bounds the keys kept of one account.
	MaxKeys = 16
)

// Parse reads a keys endpoint's answer: Dintero's JSON array of keys (a
// {"keys": […]} set is read too). Keys that are not RS256 signing keys of
// a sound size (2,048 to 8,192 bits, exponent 65537), or have no kid, are
// skipped, and so is every key after the first MaxKeys; none left is
// ErrNoKey.
func Parse(body []byte) ([]Key, error) {
	var list []jwk
	if err := json.Unmarshal(body, &list, json.RejectUnknownMembers(false)); err != nil {
		var set struct {
			Keys []jwk `json:"keys"`
		}
		if json.Unmarshal(body, &set, json.RejectUnknownMembers(false)) != nil || set.Keys == nil {
			return nil, ErrNotKeys
		}
		list = set.Keys
	}
	var out []Key
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
		if len(out) == MaxKeys {
			break
		}
		out = append(out, Key{ID: k.Kid, Public: pub})
	}
	if len(out) == 0 {
		return nil, ErrNoKey
	}
	return out, nil
}

// decodeBase64URL decodes base64url with or without padding.
func decodeBase64URL(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}

// ErrUnknownKey means no key of the account has the kid asked for, even
// after the keys were fetched again (or could not be).
var ErrUnknownKey = errors.New("no signing key of the account has this kid")

// errWaiting wraps the caller's end while it waited for a fetch.
func errWaiting(ctx context.Context) error {
	return fmt.Errorf("waiting for them: %w", context.Cause(ctx))
}
