package idtoken_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/dintero-facade/dintero-facade/internal/idtoken"
)

// testKeys are two RSA keys for the tests of this package, made once.
var testKeys = sync.OnceValue(func() [2]*rsa.PrivateKey {
	var out [2]*rsa.PrivateKey
	for i := range out {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		out[i] = k
	}
	return out
})

// keySet holds keys by kid.
type keySet map[string]*rsa.PublicKey

func (k keySet) Keys(_ context.Context, kid string) ([]*rsa.PublicKey, error) {
	if p, ok := k[kid]; ok {
		return []*rsa.PublicKey{p}, nil
	}
	return nil, errors.New("no such key")
}

// listedTwice lists each kid's keys in order, some kids more than once.
type listedTwice map[string][]*rsa.PublicKey

func (k listedTwice) Keys(_ context.Context, kid string) ([]*rsa.PublicKey, error) {
	return k[kid], nil
}

// TestKidListedTwice: when the issuer lists a kid more than once (a
// rotation that reused it, two lists merged; RFC 7517 §4.5 allows it for
// equivalent alternatives), a token signed by any of its keys verifies,
// and one signed by none does not. Before issue 22's review the first key
// listed under the kid was the only one tried: a token of the second was
// "signature".
func TestKidListedTwice(t *testing.T) {
	a, b := testKeys()[0], testKeys()[1]
	v := idtoken.New(idtoken.Options{Now: func() time.Time { return now }})
	for _, tc := range []struct {
		name   string
		listed []*rsa.PublicKey
		key    *rsa.PrivateKey
		want   string
	}{
		{"the first key", []*rsa.PublicKey{&a.PublicKey, &b.PublicKey}, a, ""},
		{"the second key", []*rsa.PublicKey{&a.PublicKey, &b.PublicKey}, b, ""},
		{"a key not listed", []*rsa.PublicKey{&a.PublicKey, &a.PublicKey}, b, idtoken.ReasonSignature},
	} {
		keys := listedTwice{"k1": tc.listed}
		got := v.Verify(context.Background(), sign(t, jwt.SigningMethodRS256, tc.key, "k1", goodClaims()), keys, callback)
		if (got.Result == idtoken.Verified) != (tc.want == "") || got.Reason != tc.want {
			t.Errorf("%s: got %v %q; want reason %q", tc.name, got.Result, got.Reason, tc.want)
		}
	}
}

const (
	issuer   = "https://issuer.example/"
	callback = "https://app.example.com/cb"
	clientID = "client-1"
)

// now is the verifiers' clock.
var now = time.Unix(1_800_000_000, 0)

// goodClaims are the claims of a good id_token, issued now.
func goodClaims() jwt.MapClaims {
	return jwt.MapClaims{
		"iss": issuer, "sub": "user-42", "email": "u@example.com", "name": "A User",
		"aud": callback, "iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(),
		"ext_role": "admin", "ext_level": 9007199254740993,
	}
}

// sign signs claims with key under kid with method m, and header's
// members in its header.
func sign(t testing.TB, m jwt.SigningMethod, key any, kid string, c jwt.MapClaims, header ...map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	tok.Header["kid"] = kid
	for _, h := range header {
		for k, v := range h {
			tok.Header[k] = v
		}
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestVerify: each way an id_token can be good or bad gives the
// verification a caller should see.
func TestVerify(t *testing.T) {
	key, other := testKeys()[0], testKeys()[1]
	pubDER, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	with := func(mod func(jwt.MapClaims)) jwt.MapClaims {
		c := goodClaims()
		mod(c)
		return c
	}
	rs := func(c jwt.MapClaims) string { return sign(t, jwt.SigningMethodRS256, key, "k1", c) }
	deep := func(c jwt.MapClaims) {
		var v any = "x"
		for range 40 {
			v = []any{v}
		}
		c["ext_deep"] = v
	}
	tests := []struct {
		name, token, issuer string
		want                idtoken.Result
		reason              string
	}{
		{"valid", rs(goodClaims()), "", idtoken.Verified, ""},
		{"valid, the issuer checked", rs(goodClaims()), issuer, idtoken.Verified, ""},
		{"the audience is the client_id, in a list", rs(with(func(c jwt.MapClaims) { c["aud"] = []string{"someone-else", clientID} })), "", idtoken.Verified, ""},
		{"expired within the leeway", rs(with(func(c jwt.MapClaims) { c["exp"] = now.Add(-10 * time.Second).Unix() })), "", idtoken.Verified, ""},
		{"expired", rs(with(func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Minute).Unix() })), "", idtoken.Invalid, idtoken.ReasonExpired},
		{"not yet valid", rs(with(func(c jwt.MapClaims) { c["nbf"] = now.Add(5 * time.Minute).Unix() })), "", idtoken.Invalid, idtoken.ReasonNotYetValid},
		{"issued in the future", rs(with(func(c jwt.MapClaims) { c["iat"] = now.Add(5 * time.Minute).Unix() })), "", idtoken.Invalid, idtoken.ReasonIssuedInFuture},
		{"no exp", rs(with(func(c jwt.MapClaims) { delete(c, "exp") })), "", idtoken.Invalid, idtoken.ReasonClaims},
		{"no sub", rs(with(func(c jwt.MapClaims) { delete(c, "sub") })), "", idtoken.Invalid, idtoken.ReasonClaims},
		{"a sub that is no string", rs(with(func(c jwt.MapClaims) { c["sub"] = 42 })), "", idtoken.Invalid, idtoken.ReasonClaims},
		{"another audience", rs(with(func(c jwt.MapClaims) { c["aud"] = "https://evil.example/cb" })), "", idtoken.Invalid, idtoken.ReasonAudience},
		{"an empty audience", rs(with(func(c jwt.MapClaims) { c["aud"] = []string{""} })), "", idtoken.Invalid, idtoken.ReasonAudience},
		{"another issuer", rs(goodClaims()), "https://other.example", idtoken.Invalid, idtoken.ReasonIssuer},
		{"a wrong signature: another key under the kid", sign(t, jwt.SigningMethodRS256, other, "k1", goodClaims()), "", idtoken.Invalid, idtoken.ReasonSignature},
		{"a signature cut off", func() string { s := rs(goodClaims()); return s[:len(s)-8] }(), "", idtoken.Invalid, idtoken.ReasonSignature},
		{"alg none", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "k1", goodClaims()), "", idtoken.Invalid, idtoken.ReasonAlgorithm},
		{"HS256 signed with the public key", sign(t, jwt.SigningMethodHS256, pubPEM, "k1", goodClaims()), "", idtoken.Invalid, idtoken.ReasonAlgorithm},
		{"RS512 by the right key", sign(t, jwt.SigningMethodRS512, key, "k1", goodClaims()), "", idtoken.Invalid, idtoken.ReasonAlgorithm},
		{"no kid", sign(t, jwt.SigningMethodRS256, key, "", goodClaims()), "", idtoken.Invalid, idtoken.ReasonUnknownKey},
		{"a kid the key set has not", sign(t, jwt.SigningMethodRS256, key, "k9", goodClaims()), "", idtoken.Invalid, idtoken.ReasonUnknownKey},
		{"a critical extension", sign(t, jwt.SigningMethodRS256, key, "k1", goodClaims(), map[string]any{"crit": []string{"ext"}, "ext": "x"}), "", idtoken.Invalid, idtoken.ReasonCritical},
		{"an exp past the year 9999", rs(with(func(c jwt.MapClaims) { c["exp"] = 9e18 })), "", idtoken.Invalid, idtoken.ReasonClaims},
		{"an nbf that overflows", rs(with(func(c jwt.MapClaims) { c["nbf"] = 1e19 })), "", idtoken.Invalid, idtoken.ReasonClaims},
		{"an iat before 1970", rs(with(func(c jwt.MapClaims) { c["iat"] = -1 })), "", idtoken.Invalid, idtoken.ReasonClaims},
		{"a claim nested too deep", rs(with(deep)), "", idtoken.Invalid, idtoken.ReasonClaims},
		{"not a JWT", "not.a.jwt", "", idtoken.Invalid, idtoken.ReasonMalformed},
	}
	keys := keySet{"k1": &key.PublicKey}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := idtoken.New(idtoken.Options{Issuer: tc.issuer, Leeway: 30 * time.Second, Now: func() time.Time { return now }})
			// The first audience is a redirect_uri left out: empty, it
			// matches no token's audience, not even "".
			got := v.Verify(context.Background(), tc.token, keys, "", callback, clientID)
			if got.Result != tc.want || got.Reason != tc.reason {
				t.Fatalf("got result %v reason %q; want %v %q", got.Result, got.Reason, tc.want, tc.reason)
			}
			if tc.want != idtoken.Verified {
				if got.Claims != nil {
					t.Errorf("an invalid token's claims are given: %+v", got.Claims)
				}
				return
			}
			cl := got.Claims
			if cl.Subject != "user-42" || cl.Email != "u@example.com" || cl.Name != "A User" || cl.Issuer != issuer ||
				cl.Expires.IsZero() || cl.IssuedAt.IsZero() || cl.Extra["ext_role"] != "admin" {
				t.Errorf("got claims %+v; want the token's", cl)
			}
			// 2^53+1 has no float64: its digits are kept as text.
			if got := cl.Extra["ext_level"]; got != "9007199254740993" {
				t.Errorf("got ext_level %v (%T); want its digits kept", got, got)
			}
			if _, ok := cl.Extra["sub"]; ok {
				t.Errorf("a typed claim is repeated in Extra: %v", cl.Extra)
			}
		})
	}
}

// FuzzVerify: whatever the token, verification gives a result and, when
// invalid, a reason of the fixed set; it says verified only for a token
// that is an RS256 JWT whose signature the key verifies (checked here
// without the JWT library), under kid k1, with one of the audiences.
func FuzzVerify(f *testing.F) {
	key := testKeys()[0]
	good := jwt.MapClaims{"sub": "u", "aud": callback, "exp": now.Add(time.Hour).Unix(), "iat": now.Unix(), "ext_x": []any{1.5, "y"}}
	f.Add(sign(f, jwt.SigningMethodRS256, key, "k1", good))
	f.Add(sign(f, jwt.SigningMethodRS256, key, "k2", good))
	f.Add(sign(f, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "k1", good))
	f.Add(sign(f, jwt.SigningMethodHS256, []byte("secret"), "k1", good))
	f.Add(sign(f, jwt.SigningMethodRS256, key, "k1", jwt.MapClaims{"sub": "u", "aud": []string{"x", clientID}, "exp": now.Unix() - 3600}))
	f.Add("eyJhbGciOiJSUzI1NiJ9.e30.")
	f.Add("..")
	f.Add("")
	allowed := []string{idtoken.ReasonMalformed, idtoken.ReasonAlgorithm, idtoken.ReasonUnknownKey, idtoken.ReasonSignature, idtoken.ReasonExpired, idtoken.ReasonNotYetValid,
		idtoken.ReasonIssuedInFuture, idtoken.ReasonAudience, idtoken.ReasonIssuer, idtoken.ReasonClaims, idtoken.ReasonCritical}
	v := idtoken.New(idtoken.Options{Leeway: 30 * time.Second, Now: func() time.Time { return now }})
	keys := keySet{"k1": &key.PublicKey}
	f.Fuzz(func(t *testing.T, raw string) {
		id := v.Verify(context.Background(), raw, keys, callback, clientID)
		switch id.Result {
		case idtoken.Invalid:
			if !slices.Contains(allowed, id.Reason) || id.Claims != nil {
				t.Fatalf("invalid with reason %q, claims %v", id.Reason, id.Claims)
			}
			return
		case idtoken.Verified:
		default:
			t.Fatalf("result %v for %q", id.Result, raw)
		}
		parts := strings.Split(raw, ".")
		if len(parts) != 3 {
			t.Fatalf("verified %q, which has %d parts", raw, len(parts))
		}
		head, err1 := base64.RawURLEncoding.DecodeString(parts[0])
		sig, err2 := base64.RawURLEncoding.DecodeString(parts[2])
		sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
		if err1 != nil || err2 != nil || rsa.VerifyPKCS1v15(&key.PublicKey, crypto.SHA256, sum[:], sig) != nil {
			t.Fatalf("verified %q, whose signature does not verify", raw)
		}
		if !strings.Contains(string(head), `"RS256"`) || !strings.Contains(string(head), `"k1"`) {
			t.Fatalf("verified %q, whose header is %s", raw, head)
		}
		cl := id.Claims
		if cl == nil || cl.Subject == "" || !slices.ContainsFunc(cl.Audience, func(a string) bool { return a == callback || a == clientID }) {
			t.Fatalf("verified with claims %+v", cl)
		}
	})
}
