package oidckeys_test

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/dintero-facade/dintero-facade/internal/oidckeys"
)

// testKey is an RSA key for the tests of this package, made once.
var testKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func jwkOf(kid string, k *rsa.PublicKey) string {
	return fmt.Sprintf(`{"alg":"RS256","kty":"RSA","use":"sig","kid":%q,"n":%q,"e":%q}`, kid, b64(k.N.Bytes()), b64(big.NewInt(int64(k.E)).Bytes()))
}

// TestParseKeys: Dintero's array of keys is read, a JWK set too; keys that
// are not sound RS256 signing keys are skipped.
func TestParseKeys(t *testing.T) {
	pub := &testKey().PublicKey
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	good := jwkOf("k1", pub)
	padded := strings.Replace(good, b64(big.NewInt(int64(pub.E)).Bytes()), base64.URLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()), 1)
	tests := []struct {
		name, body string
		want       []string // kids
		err        error
	}{
		{"Dintero's array", "[" + good + "]", []string{"k1"}, nil},
		{"a JWK set", `{"keys":[` + good + `]}`, []string{"k1"}, nil},
		{"padded base64url", "[" + padded + "]", []string{"k1"}, nil},
		{"no alg or use", `[{"kty":"RSA","kid":"k2","n":"` + b64(pub.N.Bytes()) + `","e":"AQAB"}]`, []string{"k2"}, nil},
		{"an encryption key skipped", "[" + strings.Replace(good, `"use":"sig"`, `"use":"enc"`, 1) + "," + jwkOf("k3", pub) + "]", []string{"k3"}, nil},
		{"another alg skipped", "[" + strings.Replace(good, `"RS256"`, `"RS512"`, 1) + "]", nil, oidckeys.ErrNoKey},
		{"another kty skipped", "[" + strings.Replace(good, `"RSA"`, `"EC"`, 1) + "]", nil, oidckeys.ErrNoKey},
		{"no kid skipped", "[" + strings.Replace(good, `"kid":"k1"`, `"kid":""`, 1) + "]", nil, oidckeys.ErrNoKey},
		{"a 1024-bit key skipped", "[" + jwkOf("k4", &small.PublicKey) + "]", nil, oidckeys.ErrNoKey},
		{"an even exponent skipped", "[" + strings.Replace(good, `"e":"AQAB"`, `"e":"AQAA"`, 1) + "]", nil, oidckeys.ErrNoKey},
		{"an exponent of 1 skipped", "[" + strings.Replace(good, `"e":"AQAB"`, `"e":"AQ"`, 1) + "]", nil, oidckeys.ErrNoKey},
		{"a huge exponent skipped", "[" + strings.Replace(good, `"e":"AQAB"`, `"e":"AQAAAAAB"`, 1) + "]", nil, oidckeys.ErrNoKey},
		{"a modulus that is no base64", "[" + strings.Replace(good, `"n":"`, `"n":"*`, 1) + "]", nil, oidckeys.ErrNoKey},
		{"not JSON", "<html>", nil, oidckeys.ErrNotKeys},
		{"an object without keys", `{"data":[]}`, nil, oidckeys.ErrNotKeys},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			keys, err := oidckeys.Parse([]byte(tc.body))
			var kids []string
			for _, k := range keys {
				kids = append(kids, k.ID)
			}
			if !slices.Equal(kids, tc.want) || !errors.Is(err, tc.err) || (err == nil) != (tc.want != nil) {
				t.Errorf("got %v, %v; want %v, %v", kids, err, tc.want, tc.err)
			}
			if err == nil && keys[0].Public.N.Cmp(pub.N) != 0 {
				t.Error("the modulus was not read")
			}
		})
	}
}

// TestParseKeysBounds: a modulus above 8,192 bits, or an exponent other
// than 65537, is refused, so that a key cannot make each verification
// slow at will; 8,192 bits pass; keys past MaxKeys are left out.
func TestParseKeysBounds(t *testing.T) {
	modulus := func(bits int) string {
		n := new(big.Int).Lsh(big.NewInt(1), uint(bits-1))
		n.Or(n, big.NewInt(1))
		return b64(n.Bytes())
	}
	key := func(n, e string) string {
		return fmt.Sprintf(`[{"alg":"RS256","kty":"RSA","use":"sig","kid":"k","n":%q,"e":%q}]`, n, e)
	}
	e65537 := b64(big.NewInt(65537).Bytes())
	for _, tc := range []struct {
		name, body string
		ok         bool
	}{
		{"8,192 bits", key(modulus(8192), e65537), true},
		{"8,193 bits", key(modulus(8193), e65537), false},
		{"262,144 bits", key(modulus(262144), e65537), false},
		{"e = 3", key(modulus(2048), b64(big.NewInt(3).Bytes())), false},
		{"e = 2^31-1", key(modulus(2048), b64(big.NewInt(1<<31-1).Bytes())), false},
	} {
		if keys, err := oidckeys.Parse([]byte(tc.body)); (err == nil) != tc.ok || (tc.ok && len(keys) != 1) {
			t.Errorf("%s: got %d keys, %v; want accepted %v", tc.name, len(keys), err, tc.ok)
		}
	}
	var many []string
	for i := range 40 {
		many = append(many, jwkOf(fmt.Sprint("k", i), &testKey().PublicKey))
	}
	if keys, err := oidckeys.Parse([]byte("[" + strings.Join(many, ",") + "]")); err != nil || len(keys) != oidckeys.MaxKeys || keys[0].ID != "k0" {
		t.Errorf("40 keys: got %d, %v; want the first %d", len(keys), err, oidckeys.MaxKeys)
	}
}
