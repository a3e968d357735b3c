package upstream_test

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/dintero-facade/dintero-facade/internal/dinteromock"
	"github.com/dintero-facade/dintero-facade/internal/dinterotest"
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

// TestIDTokenVerification: each way an id_token can be good or bad gives
// the verification a caller should see. The answer is kept either way:
// the code is spent.
func TestIDTokenVerification(t *testing.T) {
	key, other := dinterotest.TestKeys(t)
	pubDER, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	with := func(mod func(jwt.MapClaims)) jwt.MapClaims {
		c := idClaims()
		mod(c)
		return c
	}
	now := time.Now()
	tests := []struct {
		name   string
		token  func(kid string) string
		issuer string
		want   upstream.IdentityResult
		reason string
	}{
		{"valid", func(kid string) string { return signed(t, key, kid, idClaims()) }, "", upstream.Verified, ""},
		{"valid, the issuer checked", func(kid string) string { return signed(t, key, kid, idClaims()) }, dinteromock.Defaults().Issuer, upstream.Verified, ""},
		{"the audience is the client_id, in a list", func(kid string) string {
			return signed(t, key, kid, with(func(c jwt.MapClaims) { c["aud"] = []string{"someone-else", allParams.ClientID} }))
		}, "", upstream.Verified, ""},
		{"expired within the leeway", func(kid string) string {
			return signed(t, key, kid, with(func(c jwt.MapClaims) { c["exp"] = now.Add(-10 * time.Second).Unix() }))
		}, "", upstream.Verified, ""},
		{"expired", func(kid string) string {
			return signed(t, key, kid, with(func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Minute).Unix() }))
		}, "", upstream.Invalid, upstream.ReasonExpired},
		{"not yet valid", func(kid string) string {
			return signed(t, key, kid, with(func(c jwt.MapClaims) { c["nbf"] = now.Add(5 * time.Minute).Unix() }))
		}, "", upstream.Invalid, upstream.ReasonNotYetValid},
		{"issued in the future", func(kid string) string {
			return signed(t, key, kid, with(func(c jwt.MapClaims) { c["iat"] = now.Add(5 * time.Minute).Unix() }))
		}, "", upstream.Invalid, upstream.ReasonIssuedInFuture},
		{"no exp", func(kid string) string { return signed(t, key, kid, with(func(c jwt.MapClaims) { delete(c, "exp") })) }, "", upstream.Invalid, upstream.ReasonClaims},
		{"no sub", func(kid string) string { return signed(t, key, kid, with(func(c jwt.MapClaims) { delete(c, "sub") })) }, "", upstream.Invalid, upstream.ReasonClaims},
		{"a sub that is no string", func(kid string) string { return signed(t, key, kid, with(func(c jwt.MapClaims) { c["sub"] = 42 })) }, "", upstream.Invalid, upstream.ReasonClaims},
		{"another audience", func(kid string) string {
			return signed(t, key, kid, with(func(c jwt.MapClaims) { c["aud"] = "https://evil.example/cb" }))
		}, "", upstream.Invalid, upstream.ReasonAudience},
		{"another issuer", func(kid string) string { return signed(t, key, kid, idClaims()) }, "https://issuer.example", upstream.Invalid, upstream.ReasonIssuer},
		{"a wrong signature: another key under the account's kid", func(kid string) string { return signed(t, other, kid, idClaims()) }, "", upstream.Invalid, upstream.ReasonSignature},
		{"a signature cut off", func(kid string) string { s := signed(t, key, kid, idClaims()); return s[:len(s)-8] }, "", upstream.Invalid, upstream.ReasonSignature},
		{"alg none", func(kid string) string {
			tok := jwt.NewWithClaims(jwt.SigningMethodNone, idClaims())
			tok.Header["kid"] = kid
			s, err := tok.SignedString(jwt.UnsafeAllowNoneSignatureType)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}, "", upstream.Invalid, upstream.ReasonAlgorithm},
		{"HS256 signed with the public key", func(kid string) string {
			tok := jwt.NewWithClaims(jwt.SigningMethodHS256, idClaims())
			tok.Header["kid"] = kid
			s, err := tok.SignedString(pubPEM)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}, "", upstream.Invalid, upstream.ReasonAlgorithm},
		{"RS512 by the right key", func(kid string) string {
			tok := jwt.NewWithClaims(jwt.SigningMethodRS512, idClaims())
			tok.Header["kid"] = kid
			s, err := tok.SignedString(key)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}, "", upstream.Invalid, upstream.ReasonAlgorithm},
		{"no kid", func(string) string { return signed(t, key, "", idClaims()) }, "", upstream.Invalid, upstream.ReasonUnknownKey},
		{"a critical extension", func(kid string) string {
			tok := jwt.NewWithClaims(jwt.SigningMethodRS256, idClaims())
			tok.Header["kid"], tok.Header["crit"], tok.Header["ext"] = kid, []string{"ext"}, "x"
			s, err := tok.SignedString(key)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}, "", upstream.Invalid, upstream.ReasonCritical},
		{"an exp past the year 9999", func(kid string) string {
			return signed(t, key, kid, with(func(c jwt.MapClaims) { c["exp"] = 9e18 }))
		}, "", upstream.Invalid, upstream.ReasonClaims},
		{"an nbf that overflows", func(kid string) string {
			return signed(t, key, kid, with(func(c jwt.MapClaims) { c["nbf"] = 1e19 }))
		}, "", upstream.Invalid, upstream.ReasonClaims},
		{"an iat before 1970", func(kid string) string {
			return signed(t, key, kid, with(func(c jwt.MapClaims) { c["iat"] = -1 }))
		}, "", upstream.Invalid, upstream.ReasonClaims},
		{"a claim nested too deep", func(kid string) string {
			return signed(t, key, kid, with(func(c jwt.MapClaims) {
				var v any = "x"
				for range 40 {
					v = []any{v}
				}
				c["ext_deep"] = v
			}))
		}, "", upstream.Invalid, upstream.ReasonClaims},
		{"not a JWT", func(string) string { return "not.a.jwt" }, "", upstream.Invalid, upstream.ReasonMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake := dinterotest.New(t)
			tok := tc.token(fake.Mock.KeyID())
			answering(fake, func() string { return tok })
			c := newClient(t, fake.URL, func(o *upstream.Options) { o.IDToken.Issuer = tc.issuer })
			rd, meta, err := c.Authorize(context.Background(), callerAt(fake, allParams.OID), allParams)
			if err != nil || !meta.Sent {
				t.Fatalf("got %v, sent %v; want the answer, whatever its token", err, meta.Sent)
			}
			if rd.IDToken != tok || rd.Query["state"] != "s" {
				t.Errorf("got id_token %q, query %v; want the answer whole", rd.IDToken, rd.Query)
			}
			id := rd.Identity
			if id.Result != tc.want || id.Reason != tc.reason {
				t.Fatalf("got result %v reason %q; want %v %q", id.Result, id.Reason, tc.want, tc.reason)
			}
			if tc.want != upstream.Verified {
				if id.Claims != nil {
					t.Errorf("an invalid token's claims are given: %+v", id.Claims)
				}
				return
			}
			cl := id.Claims
			if cl.Subject != "user-42" || cl.Email != "u@example.com" || cl.Name != "A User" || cl.Issuer != dinteromock.Defaults().Issuer ||
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

// TestIDTokenNotChecked: an answer without an id_token is not checked.
func TestIDTokenNotChecked(t *testing.T) {
	fake := dinterotest.New(t)
	fake.Handle(dinterotest.OpAuthorize, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", "https://app.example.com/cb#access_token=A1")
		w.WriteHeader(http.StatusFound)
	})
	c := newClient(t, fake.URL)
	rd, _, err := c.Authorize(context.Background(), callerAt(fake, allParams.OID), allParams)
	if err != nil || rd.Identity.Result != upstream.NotChecked || rd.Identity.Claims != nil {
		t.Errorf("got %+v, %v; want not checked", rd, err)
	}
}

// TestSigningKeysFirst: without the account's keys, the code is not sent.
func TestSigningKeysFirst(t *testing.T) {
	tests := []struct {
		name       string
		keys       http.HandlerFunc
		wantStatus int // of the *upstream.Error, 0 for none
		wantErr    error
	}{
		{"503 each time", dinterotest.Status(http.StatusServiceUnavailable), 503, nil},
		{"unreachable", dinterotest.Reset, 0, upstream.ErrTransport},
		{"the caller's token refused", dinterotest.Status(http.StatusUnauthorized), 401, nil},
		{"no RS256 signing key", dinterotest.Body(200, "application/json", []byte(`[{"alg":"RS256","kty":"RSA","use":"enc","kid":"k","n":"AQAB","e":"AQAB"}]`)), 200, upstream.ErrUnexpectedResponse},
		{"an empty key set", dinterotest.Body(200, "application/json", []byte(`{"keys":[]}`)), 200, upstream.ErrUnexpectedResponse},
		{"not JSON", dinterotest.Body(200, "text/html", []byte(`<html>`)), 200, upstream.ErrDecode},
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
			if n := fake.Count(dinterotest.OpAuthorize); n != 0 || fake.Mock.CodeUsed(allParams.VerificationCode) {
				t.Errorf("authorize was called %d times; want none, the code kept", n)
			}
			// Once the keys are back, the same code works.
			fake.Default(dinterotest.OpKeys)
			rd, _, err := c.Authorize(context.Background(), callerAt(fake, allParams.OID), allParams)
			if err != nil || rd.Identity.Result != upstream.Verified {
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
	if rd != nil && rd.Identity.Reason == upstream.ReasonUnknownKey {
		t.Errorf("the old keys were dropped: %+v", rd.Identity)
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

// TestKeyRotation: a token signed by a key the facade has not seen makes
// it fetch the keys again, once, and a rotation at Dintero is followed; a
// flood of unknown kids does not become a flood of fetches.
func TestKeyRotation(t *testing.T) {
	fake := dinterotest.New(t)
	_, next := dinterotest.TestKeys(t)
	for i := range 2 {
		fake.AddCode(allParams.OID, "VC-"+string(rune('a'+i)))
	}
	c := newClient(t, fake.URL)
	call := callerAt(fake, allParams.OID)
	p := allParams
	p.VerificationCode = "VC-a"
	rd, _, err := c.Authorize(context.Background(), call, p)
	if err != nil || rd.Identity.Result != upstream.Verified {
		t.Fatalf("before the rotation: %v, %+v", err, rd)
	}
	if err := fake.Mock.RotateKey(next, false); err != nil {
		t.Fatal(err)
	}
	p.VerificationCode = "VC-b"
	rd, _, err = c.Authorize(context.Background(), call, p)
	if err != nil || rd.Identity.Result != upstream.Verified {
		t.Fatalf("after the rotation: %v, %+v; want verified with the new key", err, rd)
	}
	if n := fake.Count(dinterotest.OpKeys); n != 2 {
		t.Errorf("got %d key fetches; want 2: one at first, one for the new kid", n)
	}
	// Tokens under kids no key has: one refetch at most per interval.
	_, stranger := dinterotest.TestKeys(t)
	answering(fake, func() string { return signed(t, stranger, "kid-nobody-has", idClaims()) })
	for range 5 {
		rd, _, err = c.Authorize(context.Background(), call, allParams)
		if err != nil || rd.Identity.Reason != upstream.ReasonUnknownKey {
			t.Fatalf("got %v, %+v; want unknown_key", err, rd)
		}
	}
	if n := fake.Count(dinterotest.OpKeys); n != 2 {
		t.Errorf("got %d key fetches after 5 unknown kids; want none more within the interval", n)
	}
}

// TestUnknownKidRefetchesOnce: the first unknown kid fetches the keys
// again at once, and that fetch is not repeated for the next token.
func TestUnknownKidRefetchesOnce(t *testing.T) {
	fake := dinterotest.New(t)
	_, stranger := dinterotest.TestKeys(t)
	answering(fake, func() string { return signed(t, stranger, "kid-nobody-has", idClaims()) })
	c := newClient(t, fake.URL)
	for range 3 {
		rd, _, err := c.Authorize(context.Background(), callerAt(fake, allParams.OID), allParams)
		if err != nil || rd.Identity.Reason != upstream.ReasonUnknownKey {
			t.Fatalf("got %v, %+v; want unknown_key", err, rd)
		}
	}
	if n := fake.Count(dinterotest.OpKeys); n != 2 {
		t.Errorf("got %d key fetches; want 2: the first, and one refetch for the unknown kid", n)
	}
}

// TestSigningKeysFetchedOnce: 100 first calls at once while the keys
// endpoint is slow make one fetch, and all succeed.
func TestSigningKeysFetchedOnce(t *testing.T) {
	fake := dinterotest.New(t)
	slowKeys(fake, 300*time.Millisecond)
	key := mustKey(t)
	answering(fake, func() string { return signed(t, key, fake.Mock.KeyID(), idClaims()) })
	c := newClient(t, fake.URL)
	call := callerAt(fake, allParams.OID)
	var wg sync.WaitGroup
	results := make([]upstream.IdentityResult, 100)
	errs := make([]error, 100)
	for i := range results {
		wg.Go(func() {
			var rd *upstream.Redirect
			rd, _, errs[i] = c.Authorize(context.Background(), call, allParams)
			if rd != nil {
				results[i] = rd.Identity.Result
			}
		})
	}
	wg.Wait()
	if n := fake.Count(dinterotest.OpKeys); n != 1 {
		t.Errorf("got %d key fetches for 100 first calls; want 1", n)
	}
	if i := slices.IndexFunc(errs, func(err error) bool { return err != nil }); i >= 0 {
		t.Errorf("call %d: %v", i, errs[i])
	}
	if slices.ContainsFunc(results, func(r upstream.IdentityResult) bool { return r != upstream.Verified }) {
		t.Errorf("got results %v; want all verified", results)
	}
}

// TestSigningKeysWaitIsTheCallers: a caller that gives up while the keys
// are fetched gets its deadline, sends nothing, and does not fail the
// fetch for the others.
func TestSigningKeysWaitIsTheCallers(t *testing.T) {
	fake := dinterotest.New(t)
	slowKeys(fake, 300*time.Millisecond)
	key := mustKey(t)
	answering(fake, func() string { return signed(t, key, fake.Mock.KeyID(), idClaims()) })
	c := newClient(t, fake.URL)
	call := callerAt(fake, allParams.OID)
	// The impatient caller starts the fetch; the patient one joins it.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	impatient := make(chan error, 1)
	var meta upstream.Meta
	go func() {
		var err error
		_, meta, err = c.Authorize(ctx, call, allParams)
		impatient <- err
	}()
	time.Sleep(10 * time.Millisecond)
	done := make(chan error, 1)
	go func() {
		_, _, err := c.Authorize(context.Background(), call, allParams)
		done <- err
	}()
	if err := <-impatient; !errors.Is(err, context.DeadlineExceeded) || meta.Sent {
		t.Errorf("the impatient caller got %v, sent %v; want its deadline, nothing sent", err, meta.Sent)
	}
	if err := <-done; err != nil {
		t.Errorf("the patient caller got %v; want success", err)
	}
	if n := fake.Count(dinterotest.OpKeys); n != 1 {
		t.Errorf("got %d key fetches; want 1", n)
	}
}

// TestEmptyAudienceNeverMatches: without a redirect_uri, a token whose
// audience is "" does not pass for one.
func TestEmptyAudienceNeverMatches(t *testing.T) {
	key, _ := dinterotest.TestKeys(t)
	fake := dinterotest.New(t)
	p := allParams
	p.RedirectURI = ""
	tok := signed(t, key, fake.Mock.KeyID(), func() jwt.MapClaims { c := idClaims(); c["aud"] = []string{""}; return c }())
	fake.Handle(dinterotest.OpAuthorize, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", dinterotest.Callback+"?id_token="+url.QueryEscape(tok))
		w.WriteHeader(http.StatusFound)
	})
	c := newClient(t, fake.URL)
	rd, _, err := c.Authorize(context.Background(), callerAt(fake, allParams.OID), p)
	if err != nil || rd.Identity.Reason != upstream.ReasonAudience {
		t.Errorf("got %v, %+v; want invalid, audience", err, rd)
	}
}

// TestRotationUnderLoad: calls that meet the new kid while its refetch is
// in flight wait for it, and all verify; the keys are fetched once more.
func TestRotationUnderLoad(t *testing.T) {
	fake := dinterotest.New(t)
	_, next := dinterotest.TestKeys(t)
	c := newClient(t, fake.URL)
	call := callerAt(fake, allParams.OID)
	if err := c.Warm(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The first keys before the rotation.
	answering(fake, func() string { return signed(t, mustKey(t), fake.Mock.KeyID(), idClaims()) })
	if _, _, err := c.Authorize(context.Background(), call, allParams); err != nil {
		t.Fatal(err)
	}
	if err := fake.Mock.RotateKey(next, false); err != nil {
		t.Fatal(err)
	}
	kid := fake.Mock.KeyID()
	answering(fake, func() string { return signed(t, next, kid, idClaims()) })
	slowKeys(fake, 300*time.Millisecond)
	var wg sync.WaitGroup
	results := make([]upstream.Identity, 20)
	for i := range results {
		wg.Go(func() {
			if rd, _, err := c.Authorize(context.Background(), call, allParams); err == nil {
				results[i] = rd.Identity
			}
		})
	}
	wg.Wait()
	for i, id := range results {
		if id.Result != upstream.Verified {
			t.Errorf("call %d: got %+v; want verified after the one refetch", i, id)
		}
	}
	if n := fake.Count(dinterotest.OpKeys); n != 2 {
		t.Errorf("got %d key fetches; want 2", n)
	}
}

// TestFailedRefetchBlocksNoOne: a refetch that fails (the first caller's
// token may not read the keys) does not stop the next caller from
// fetching them.
func TestFailedRefetchBlocksNoOne(t *testing.T) {
	fake := dinterotest.New(t)
	_, next := dinterotest.TestKeys(t)
	c := newClient(t, fake.URL)
	call := callerAt(fake, allParams.OID)
	answering(fake, func() string { return signed(t, mustKey(t), fake.Mock.KeyID(), idClaims()) })
	if _, _, err := c.Authorize(context.Background(), call, allParams); err != nil {
		t.Fatal(err)
	}
	if err := fake.Mock.RotateKey(next, false); err != nil {
		t.Fatal(err)
	}
	kid := fake.Mock.KeyID()
	answering(fake, func() string { return signed(t, next, kid, idClaims()) })
	fake.HandleRaw(dinterotest.OpKeys, dinterotest.Times(1, dinterotest.Status(http.StatusUnauthorized), fake.Mock))
	rd, _, err := c.Authorize(context.Background(), call, allParams)
	if err != nil || rd.Identity.Reason != upstream.ReasonUnknownKey {
		t.Fatalf("the refused refetch: got %v, %+v; want unknown_key", err, rd)
	}
	rd, _, err = c.Authorize(context.Background(), call, allParams)
	if err != nil || rd.Identity.Result != upstream.Verified {
		t.Errorf("the next call: got %v, %+v; want verified with the keys fetched again", err, rd)
	}
}

// TestBadTokenFailsOnlyItsOwnCall: while the keys are first fetched, a
// caller whose token Dintero refuses fails alone.
func TestBadTokenFailsOnlyItsOwnCall(t *testing.T) {
	fake := dinterotest.New(t)
	slowKeys(fake, 200*time.Millisecond)
	key := mustKey(t)
	answering(fake, func() string { return signed(t, key, fake.Mock.KeyID(), idClaims()) })
	c := newClient(t, fake.URL)
	good, bad := callerAt(fake, allParams.OID), callerAt(fake, "T111") // T111's token is not the account's
	var wg sync.WaitGroup
	var goodErr, badErr error
	wg.Go(func() { _, _, badErr = c.Authorize(context.Background(), bad, allParams) })
	time.Sleep(20 * time.Millisecond)
	wg.Go(func() { _, _, goodErr = c.Authorize(context.Background(), good, allParams) })
	wg.Wait()
	if !errors.Is(badErr, upstream.ErrSigningKeys) {
		t.Errorf("the bad token: got %v; want ErrSigningKeys", badErr)
	}
	if goodErr != nil {
		t.Errorf("the good token: got %v; want success", goodErr)
	}
}

// TestKeysOutage: while the keys endpoint fails, a refetch for an unknown
// kid is made once per interval, the failure starting it as a success
// does (5 calls make one refetch of 3 attempts, not 5); and the keys'
// failures, first fetches of many accounts included, do not open the
// breaker the other calls depend on: a DELETE still goes through.
func TestKeysOutage(t *testing.T) {
	fake := dinterotest.New(t)
	fake.AddGrants("T123", "g")
	_, stranger := dinterotest.TestKeys(t)
	answering(fake, func() string { return signed(t, stranger, "kid-nobody-has", idClaims()) })
	var mu sync.Mutex
	now := time.Now()
	c := newClient(t, fake.URL, func(o *upstream.Options) {
		o.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
		o.IDToken.Leeway = 24 * time.Hour
	})
	call := callerAt(fake, allParams.OID)
	if _, _, err := c.Authorize(context.Background(), call, allParams); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	now = now.Add(time.Minute) // past the interval of the first refetch
	mu.Unlock()
	fake.HandleRaw(dinterotest.OpKeys, dinterotest.Status(http.StatusServiceUnavailable))
	before := fake.Count(dinterotest.OpKeys)
	for range 5 {
		rd, _, err := c.Authorize(context.Background(), call, allParams)
		if err != nil || rd.Identity.Reason != upstream.ReasonUnknownKey {
			t.Fatalf("got %v, %+v; want unknown_key", err, rd)
		}
	}
	if n := fake.Count(dinterotest.OpKeys) - before; n != 3 {
		t.Errorf("5 calls with an unknown kid while the keys fail made %d keys requests; want 3, one refetch", n)
	}
	// First fetches of every account, all failing: 3 attempts each.
	for range 2 {
		for _, account := range dinterotest.Accounts() {
			if account == allParams.OID {
				continue
			}
			p := allParams
			p.OID = account
			if _, meta, err := c.Authorize(context.Background(), callerAt(fake, account), p); err == nil || meta.Sent {
				t.Fatalf("%s: got %v, sent %v; want the keys' failure, nothing sent", account, err, meta.Sent)
			}
		}
	}
	if _, _, err := c.DeleteClientGrant(context.Background(), caller(fake), "T123", "g"); err != nil {
		t.Errorf("a DELETE during the keys' outage: %v; want it through", err)
	}
}
