package upstream

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// testKey is an RSA key for the tests of this file, made once.
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
	}{
		{"Dintero's array", "[" + good + "]", []string{"k1"}},
		{"a JWK set", `{"keys":[` + good + `]}`, []string{"k1"}},
		{"padded base64url", "[" + padded + "]", []string{"k1"}},
		{"no alg or use", `[{"kty":"RSA","kid":"k2","n":"` + b64(pub.N.Bytes()) + `","e":"AQAB"}]`, []string{"k2"}},
		{"an encryption key skipped", "[" + strings.Replace(good, `"use":"sig"`, `"use":"enc"`, 1) + "," + jwkOf("k3", pub) + "]", []string{"k3"}},
		{"another alg skipped", "[" + strings.Replace(good, `"RS256"`, `"RS512"`, 1) + "]", nil},
		{"another kty skipped", "[" + strings.Replace(good, `"RSA"`, `"EC"`, 1) + "]", nil},
		{"no kid skipped", "[" + strings.Replace(good, `"kid":"k1"`, `"kid":""`, 1) + "]", nil},
		{"a 1024-bit key skipped", "[" + jwkOf("k4", &small.PublicKey) + "]", nil},
		{"an even exponent skipped", "[" + strings.Replace(good, `"e":"AQAB"`, `"e":"AQAA"`, 1) + "]", nil},
		{"an exponent of 1 skipped", "[" + strings.Replace(good, `"e":"AQAB"`, `"e":"AQ"`, 1) + "]", nil},
		{"a huge exponent skipped", "[" + strings.Replace(good, `"e":"AQAB"`, `"e":"AQAAAAAB"`, 1) + "]", nil},
		{"a modulus that is no base64", "[" + strings.Replace(good, `"n":"`, `"n":"*`, 1) + "]", nil},
		{"not JSON", "<html>", nil},
		{"an object without keys", `{"data":[]}`, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			keys, err := parseKeys([]byte(tc.body))
			var kids []string
			for _, k := range keys {
				kids = append(kids, k.kid)
			}
			if !slices.Equal(kids, tc.want) || (err == nil) != (tc.want != nil) {
				t.Errorf("got %v, %v; want %v", kids, err, tc.want)
			}
			if err == nil && keys[0].key.N.Cmp(pub.N) != 0 {
				t.Error("the modulus was not read")
			}
		})
	}
}

// fuzzClient verifies against testKey under kid "k1", at a fixed time.
func fuzzClient(tb testing.TB) *Client {
	c, err := New(Options{BaseURL: DefaultBaseURL, Now: func() time.Time { return time.Unix(1_800_000_000, 0) }})
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// FuzzVerifyIDToken: whatever the token, verification gives a result and,
// when invalid, a reason of the fixed set; it says verified only for a
// token that is an RS256 JWT whose signature testKey's public key
// verifies (checked here without the JWT library), under kid k1, with the
// redirect_uri or client_id among its audiences.
func FuzzVerifyIDToken(f *testing.F) {
	key := testKey()
	now := time.Unix(1_800_000_000, 0)
	sign := func(m jwt.SigningMethod, k any, kid string, c jwt.MapClaims) string {
		tok := jwt.NewWithClaims(m, c)
		tok.Header["kid"] = kid
		s, err := tok.SignedString(k)
		if err != nil {
			f.Fatal(err)
		}
		return s
	}
	good := jwt.MapClaims{"sub": "u", "aud": "https://app.example.com/cb", "exp": now.Add(time.Hour).Unix(), "iat": now.Unix(), "ext_x": []any{1.5, "y"}}
	f.Add(sign(jwt.SigningMethodRS256, key, "k1", good))
	f.Add(sign(jwt.SigningMethodRS256, key, "k2", good))
	f.Add(sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "k1", good))
	f.Add(sign(jwt.SigningMethodHS256, []byte("secret"), "k1", good))
	f.Add(sign(jwt.SigningMethodRS256, key, "k1", jwt.MapClaims{"sub": "u", "aud": []string{"x", "client-1"}, "exp": now.Unix() - 3600}))
	f.Add("eyJhbGciOiJSUzI1NiJ9.e30.")
	f.Add("..")
	f.Add("")
	allowed := []string{ReasonMalformed, ReasonAlgorithm, ReasonUnknownKey, ReasonSignature, ReasonExpired, ReasonNotYetValid, ReasonIssuedInFuture, ReasonAudience, ReasonIssuer, ReasonClaims, ReasonCritical}
	c := fuzzClient(f)
	lookup := func(kid string) *rsa.PublicKey {
		if kid == "k1" {
			return &key.PublicKey
		}
		return nil
	}
	f.Fuzz(func(t *testing.T, raw string) {
		id := c.checkIDToken(raw, lookup, []string{"https://app.example.com/cb", "client-1"})
		switch id.Result {
		case Invalid:
			if !slices.Contains(allowed, id.Reason) || id.Claims != nil {
				t.Fatalf("invalid with reason %q, claims %v", id.Reason, id.Claims)
			}
			return
		case Verified:
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
		if cl == nil || cl.Subject == "" || !slices.ContainsFunc(cl.Audience, func(a string) bool { return a == "https://app.example.com/cb" || a == "client-1" }) {
			t.Fatalf("verified with claims %+v", cl)
		}
	})
}

// TestParseKeysBounds: a modulus above 8,192 bits, or an exponent other
// than 65537, is refused, so that a key cannot make each verification
// slow at will; 8,192 bits pass.
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
		if keys, err := parseKeys([]byte(tc.body)); (err == nil) != tc.ok || (tc.ok && len(keys) != 1) {
			t.Errorf("%s: got %d keys, %v; want accepted %v", tc.name, len(keys), err, tc.ok)
		}
	}
	var many []string
	for i := range 40 {
		many = append(many, jwkOf(fmt.Sprint("k", i), &testKey().PublicKey))
	}
	if keys, err := parseKeys([]byte("[" + strings.Join(many, ",") + "]")); err != nil || len(keys) != maxKeys {
		t.Errorf("40 keys: got %d, %v; want the first %d", len(keys), err, maxKeys)
	}
}

// refusing is a transport to which Dintero refuses every call, 401.
type refusing struct{ calls atomic.Int64 }

func (r *refusing) RoundTrip(req *http.Request) (*http.Response, error) {
	r.calls.Add(1)
	body := `{"error":{"code":"UNAUTHORIZED","message":"no"}}`
	return &http.Response{StatusCode: http.StatusUnauthorized, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body)), Request: req}, nil
}

// TestKeysMemoryBounded: callers naming accounts at will with tokens
// Dintero refuses leave nothing behind: after 20,000 accounts (scaled
// down from the 10⁶ a caller could name) the key set is empty and the
// heap has not grown with them.
func TestKeysMemoryBounded(t *testing.T) {
	tr := &refusing{}
	c, err := New(Options{BaseURL: DefaultBaseURL, Transport: tr})
	if err != nil {
		t.Fatal(err)
	}
	call := Call{Authorization: "Bearer junk-token-000000"}
	run := func(from, n int) {
		for i := from; i < from+n; i++ {
			p := AuthorizeParams{OID: fmt.Sprintf("T%08d", i), ResponseType: "authenticate", ClientID: "c", VerificationCode: "123456"}
			if _, meta, err := c.Authorize(context.Background(), call, p); !errors.Is(err, ErrSigningKeys) || meta.Sent {
				t.Fatalf("got %v, sent %v; want ErrSigningKeys, not sent", err, meta.Sent)
			}
		}
	}
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapInuse
	}
	run(0, 1000) // the steady state of what every call allocates
	before := heap()
	run(1000, 20000)
	after := heap()
	if n := c.keys.len(); n != 0 {
		t.Errorf("%d accounts kept after refused fetches; want none", n)
	}
	// The code before kept about 500 bytes per account: 10 MB here.
	if grown := int64(after) - int64(before); grown > 2<<20 {
		t.Errorf("the heap grew by %d bytes over 20,000 refused accounts; want it flat", grown)
	}
	if n := tr.calls.Load(); n != 21000 {
		t.Errorf("%d requests; want one keys fetch per call", n)
	}
}

// TestKeysCacheBounded: the accounts whose keys were had are kept up to
// MaxAccounts, the least recently used dropped first.
func TestKeysCacheBounded(t *testing.T) {
	body := "[" + jwkOf("k1", &testKey().PublicKey) + "]"
	tr := roundTrip(func(req *http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: 200, Header: http.Header{}, Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body)), Request: req}, nil
	})
	c, err := New(Options{BaseURL: DefaultBaseURL, Transport: tr, IDToken: IDTokenOptions{MaxAccounts: 50}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		if _, err := c.ensureKeys(context.Background(), Call{Authorization: "Bearer t0000001"}, fmt.Sprintf("T%08d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if n := c.keys.len(); n != 50 {
		t.Errorf("%d accounts kept; want MaxAccounts, 50", n)
	}
	if c.keys.ring("T00000199") == nil || c.keys.ring("T00000000") != nil {
		t.Error("the least recently used account was not the one dropped")
	}
}

type roundTrip func(*http.Request) (*http.Response, error)

func (f roundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
