package upstream_test

import (
	"context"
	"crypto/rsa"
	"errors"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/dintero-facade/dintero-facade/internal/dinteromock"
	"github.com/dintero-facade/dintero-facade/internal/dinterotest"
	"github.com/dintero-facade/dintero-facade/internal/idtoken"
	"github.com/dintero-facade/dintero-facade/upstream"
)

// idClaims are the claims of a good id_token for allParams, issued now.
func idClaims() jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{
		"iss": dinteromock.Defaults().Issuer, "sub": "user-42", "email": "u@example.com", "name": "A User",
		"aud": allParams.RedirectURI, "iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(),
		"ext_role": "admin", "ext_level": 9007199254740993,
	}
}

// signed signs claims with key under kid, RS256.
func signed(t *testing.T, key *rsa.PrivateKey, kid string, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, c)
	tok.Header["kid"] = kid
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// answering makes authorize answer with a 302 carrying idToken, and
// counts its calls.
func answering(fake *dinterotest.Server, idToken func() string) {
	fake.Handle(dinterotest.OpAuthorize, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", allParams.RedirectURI+"&id_token="+url.QueryEscape(idToken())+"&state=s")
		w.WriteHeader(http.StatusFound)
	})
}

// TestAuthorizeVerifiesIDToken: authorize's id_token is verified with the
// client's options (the issuer, the leeway) against the account's keys,
// for the redirect_uri or the client_id as audience; the answer is kept
// either way: the code is spent. (internal/idtoken's TestVerify has every
// check.)
func TestAuthorizeVerifiesIDToken(t *testing.T) {
	key, _ := dinterotest.TestKeys(t)
	with := func(mod func(jwt.MapClaims)) jwt.MapClaims {
		c := idClaims()
		mod(c)
		return c
	}
	tests := []struct {
		name   string
		claims jwt.MapClaims
		issuer string
		want   idtoken.Result
		reason string
	}{
		{"valid, the issuer checked", idClaims(), dinteromock.Defaults().Issuer, idtoken.Verified, ""},
		{"the audience is the client_id", with(func(c jwt.MapClaims) { c["aud"] = []string{"someone-else", allParams.ClientID} }), "", idtoken.Verified, ""},
		{"expired within the default leeway", with(func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-10 * time.Second).Unix() }), "", idtoken.Verified, ""},
		{"expired", with(func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Minute).Unix() }), "", idtoken.Invalid, idtoken.ReasonExpired},
		{"another issuer", idClaims(), "https://issuer.example", idtoken.Invalid, idtoken.ReasonIssuer},
		{"another audience", with(func(c jwt.MapClaims) { c["aud"] = "https://evil.example/cb" }), "", idtoken.Invalid, idtoken.ReasonAudience},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake := dinterotest.New(t)
			tok := signed(t, key, fake.Mock.KeyID(), tc.claims)
			answering(fake, func() string { return tok })
			c := newClient(t, fake.URL, func(o *upstream.Options) { o.IDToken.Issuer = tc.issuer })
			rd, meta, err := c.Authorize(context.Background(), callerAt(fake, allParams.OID), allParams)
			if err != nil || !meta.Sent {
				t.Fatalf("got %v, sent %v; want the answer, whatever its token", err, meta.Sent)
			}
			if rd.IDToken != tok || rd.Query["state"] != "s" {
				t.Errorf("got id_token %q, query %v; want the answer whole", rd.IDToken, rd.Query)
			}
			v := rd.Verification
			if v.Result != tc.want || v.Reason != tc.reason || (v.Claims != nil) != (tc.want == idtoken.Verified) {
				t.Fatalf("got %v %q, claims %v; want %v %q", v.Result, v.Reason, v.Claims != nil, tc.want, tc.reason)
			}
			if v.Claims != nil && (v.Claims.Subject != "user-42" || v.Claims.Extra["ext_level"] != "9007199254740993") {
				t.Errorf("got claims %+v; want the token's", v.Claims)
			}
		})
	}
}

// TestIDTokenNotChecked: an answer without an id_token is not checked.
func TestIDTokenNotChecked(t *testing.T) {
	fake := dinterotest.New(t)
	fake.Handle(dinterotest.OpAuthorize, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", "https://app.example.com/cb#access_token=A1")
		w.WriteHeader(http.StatusFound)
	})
	c := newClient(t, fake.URL)
	rd, _, err := c.Authorize(context.Background(), callerAt(fake, allParams.OID), allParams)
	if err != nil || rd.Verification.Result != idtoken.NotChecked || rd.Verification.Claims != nil {
		t.Errorf("got %+v, %v; want not checked", rd, err)
	}
}

// TestSigningKeysFirst: without the account's keys, the code is not sent;
// the call's Meta is the keys fetch's.
func TestSigningKeysFirst(t *testing.T) {
	tests := []struct {
		name       string
		keys       http.HandlerFunc
		wantStatus int // of the *upstream.Error and Meta, 0 for none
		wantErr    error
		attempts   int // of the keys fetch, in Meta
	}{
		{"503 each time", dinterotest.Status(http.StatusServiceUnavailable), 503, nil, 3},
		{"unreachable", dinterotest.Reset, 0, upstream.ErrTransport, 3},
		{"the caller's token refused", dinterotest.Status(http.StatusUnauthorized), 401, nil, 1},
		{"no RS256 signing key", dinterotest.Body(200, "application/json", []byte(`[{"alg":"RS256","kty":"RSA","use":"enc","kid":"k","n":"AQAB","e":"AQAB"}]`)), 200, upstream.ErrUnexpectedResponse, 1},
		{"an empty key set", dinterotest.Body(200, "application/json", []byte(`{"keys":[]}`)), 200, upstream.ErrUnexpectedResponse, 1},
		{"not JSON", dinterotest.Body(200, "text/html", []byte(`<html>`)), 200, upstream.ErrDecode, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake := dinterotest.New(t)
			fake.AddCode(allParams.OID, allParams.VerificationCode)
			fake.HandleRaw(dinterotest.OpKeys, tc.keys)
			c := newClient(t, fake.URL)
			_, meta, err := c.Authorize(context.Background(), callerAt(fake, allParams.OID), allParams)
			if !errors.Is(err, upstream.ErrSigningKeys) || meta.Sent {
				t.Fatalf("got %v, sent %v; want ErrSigningKeys, not sent", err, meta.Sent)
			}
			var e *upstream.Error
			if tc.wantStatus != 0 && (!errors.As(err, &e) || e.StatusCode != tc.wantStatus) {
				t.Errorf("got %v; want Dintero's %d", err, tc.wantStatus)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("got %v; want %v", err, tc.wantErr)
			}
			// Meta tells of the keys fetch, the only request made.
			if meta.Status != tc.wantStatus || meta.Attempts != tc.attempts {
				t.Errorf("got Meta %+v; want status %d after %d attempts", meta, tc.wantStatus, tc.attempts)
			}
			if n := fake.Count(dinterotest.OpAuthorize); n != 0 || fake.Mock.CodeUsed(allParams.VerificationCode) {
				t.Errorf("authorize was called %d times; want none, the code kept", n)
			}
			// Once the keys are back, the same code works.
			fake.Default(dinterotest.OpKeys)
			rd, _, err := c.Authorize(context.Background(), callerAt(fake, allParams.OID), allParams)
			if err != nil || rd.Verification.Result != idtoken.Verified {
				t.Errorf("after the keys came back: got %v, %v; want the code redeemed, verified", rd, err)
			}
		})
	}
}

// TestSigningKeysStaleServe: keys older than KeysFor are fetched again
// before a call; when that fails, the old keys still serve.
func TestSigningKeysStaleServe(t *testing.T) {
	fake := dinterotest.New(t)
	answering(fake, func() string { return signed(t, mustKey(t), fake.Mock.KeyID(), idClaims()) })
	var mu sync.Mutex
	now := time.Now()
	c := newClient(t, fake.URL, func(o *upstream.Options) {
		o.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	})
	call := callerAt(fake, allParams.OID)
	if _, _, err := c.Authorize(context.Background(), call, allParams); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Authorize(context.Background(), call, allParams); err != nil || fake.Count(dinterotest.OpKeys) != 1 {
		t.Fatalf("got %v, %d key fetches; want the keys cached", err, fake.Count(dinterotest.OpKeys))
	}
	mu.Lock()
	now = now.Add(2 * time.Hour)
	mu.Unlock()
	fake.HandleRaw(dinterotest.OpKeys, dinterotest.Status(http.StatusServiceUnavailable))
	// The token is made at the real time; the client's clock is ahead, so
	// its exp is past: what counts here is that the call was made.
	rd, _, err := c.Authorize(context.Background(), call, allParams)
	if err != nil || fake.Count(dinterotest.OpAuthorize) != 3 || fake.Count(dinterotest.OpKeys) < 2 {
		t.Errorf("got %v, %d authorize calls, %d key fetches; want a refetch tried, the call made with the old keys", err, fake.Count(dinterotest.OpAuthorize), fake.Count(dinterotest.OpKeys))
	}
	if rd != nil && rd.Verification.Reason == idtoken.ReasonUnknownKey {
		t.Errorf("the old keys were dropped: %+v", rd.Verification)
	}
}

// slowKeys makes the keys endpoint answer after d.
func slowKeys(fake *dinterotest.Server, d time.Duration) {
	fake.Handle(dinterotest.OpKeys, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(d)
		fake.Mock.ServeHTTP(w, r)
	})
}

func mustKey(t *testing.T) *rsa.PrivateKey {
	k, _ := dinterotest.TestKeys(t)
	return k
}
