package dinteromock_test

import (
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/dintero-facade/dintero-facade/internal/dinteromock"
	"github.com/dintero-facade/dintero-facade/internal/dinterotest"
)

// The mock is tested over plain HTTP, behind the spec check of
// dinterotest, with nothing of the facade in between: it must answer as
// Dintero documents, not as the facade's client expects.

type answer struct {
	status int
	header http.Header
	body   []byte
}

func call(t *testing.T, method, u string, header map[string]string, body string) answer {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, u, r)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{res.StatusCode, res.Header, b}
}

// dinteroError decodes Dintero's error body, failing the test on another
// shape.
func dinteroError(t *testing.T, a answer) (code string, fields []string) {
	t.Helper()
	var e struct {
		Error *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
			Errors  []struct {
				Field string `json:"field"`
			} `json:"errors"`
		} `json:"error"`
	}
	if err := json.Unmarshal(a.body, &e); err != nil || e.Error == nil || e.Error.Message == "" {
		t.Fatalf("got %d %s; want Dintero's error body", a.status, a.body)
	}
	for _, f := range e.Error.Errors {
		fields = append(fields, f.Field)
	}
	return e.Error.Code, fields
}

func token(t *testing.T, fake *dinterotest.Server, account, id, secret, audience string) answer {
	t.Helper()
	return call(t, http.MethodPost, fake.URL+"/accounts/"+account+"/auth/token",
		map[string]string{"Authorization": dinterotest.BasicAuth(id, secret), "Content-Type": "application/json"},
		`{"grant_type":"client_credentials","audience":"`+audience+`"}`)
}

func TestToken(t *testing.T) {
	fake := dinterotest.New(t)
	aud := dinteromock.Audience("T123")
	ok := token(t, fake, "T123", dinterotest.ClientID, dinterotest.ClientSecret, aud)
	var at struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int    `json:"expires_in"`
	}
	if ok.status != 200 || json.Unmarshal(ok.body, &at) != nil || at.TokenType != "Bearer" || at.ExpiresIn != 3600 || strings.Count(at.AccessToken, ".") != 2 {
		t.Fatalf("got %d %s; want a Bearer JWT for an hour", ok.status, ok.body)
	}
	if got := fake.Mock.IssuedTokens("T123"); !slices.Equal(got, []string{at.AccessToken}) {
		t.Errorf("IssuedTokens = %v; want the one token", got)
	}
	claims := jwt.MapClaims{}
	key, _ := dinterotest.TestKeys(t)
	if _, err := jwt.ParseWithClaims(at.AccessToken, claims, func(*jwt.Token) (any, error) { return &key.PublicKey, nil }, jwt.WithValidMethods([]string{"RS256"})); err != nil {
		t.Fatalf("the token does not verify: %v", err)
	}
	if claims["aud"] != aud || claims["sub"] != dinterotest.ClientID || claims["scope"] != "admin:accounts" {
		t.Errorf("got claims %v; want aud %s, sub %s, scope admin:accounts", claims, aud, dinterotest.ClientID)
	}

	for _, tc := range []struct {
		name, account, id, secret, audience string
		want                                int
		wantCode                            string
	}{
		{"wrong secret", "T123", dinterotest.ClientID, "nope", aud, 401, "INVALID_CLIENT"},
		{"unknown client", "T123", "who", "nope", aud, 401, "INVALID_CLIENT"},
		{"an account of another client", "T99999999", dinterotest.ClientID, dinterotest.ClientSecret, dinteromock.Audience("T99999999"), 403, "ACCESS_DENIED"},
		{"the audience of another account", "T123", dinterotest.ClientID, dinterotest.ClientSecret, dinteromock.Audience("P00000000"), 403, "ACCESS_DENIED"},
		{"an audience at the mock's own URL", "T123", dinterotest.ClientID, dinterotest.ClientSecret, fake.URL + "/accounts/T123", 403, "ACCESS_DENIED"},
		{"a bad account id", "T12", dinterotest.ClientID, dinterotest.ClientSecret, dinteromock.Audience("T12"), 400, "INVALID_REQUEST"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := token(t, fake, tc.account, tc.id, tc.secret, tc.audience)
			if code, _ := dinteroError(t, a); a.status != tc.want || code != tc.wantCode {
				t.Errorf("got %d %s; want %d %s", a.status, a.body, tc.want, tc.wantCode)
			}
		})
	}
	t.Run("not client_credentials", func(t *testing.T) {
		fake := dinterotest.New(t, dinterotest.Options{Lenient: true})
		a := call(t, http.MethodPost, fake.URL+"/accounts/T123/auth/token",
			map[string]string{"Authorization": dinterotest.BasicAuth(dinterotest.ClientID, dinterotest.ClientSecret), "Content-Type": "application/json"},
			`{"grant_type":"password","audience":"`+aud+`"}`)
		if a.status != 400 {
			t.Errorf("got %d %s; want 400", a.status, a.body)
		}
	})
}

func bearer(t *testing.T, fake *dinterotest.Server, account string, scopes ...string) map[string]string {
	t.Helper()
	tok, err := fake.Mock.IssueToken("tester", dinteromock.Audience(account), scopes)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{"Authorization": "Bearer " + tok, "Accept": "application/json"}
}

func TestDeleteIsStateful(t *testing.T) {
	fake := dinterotest.New(t)
	fake.AddGrants("T123", "g-1")
	u := fake.URL + "/accounts/T123/auth/client-grants/g-1"
	a := call(t, http.MethodDelete, u, bearer(t, fake, "T123", "write:accounts"), "")
	var g map[string]any
	if a.status != 200 || json.Unmarshal(a.body, &g) != nil {
		t.Fatalf("got %d %s; want the grant", a.status, a.body)
	}
	if g["id"] != "g-1" || g["deleted_by"] != "tester" || g["deleted_at"] == nil || g["updated_at"] != g["deleted_at"] || g["oidc"] == nil {
		t.Errorf("got %v; want the grant deleted by the token's subject", g)
	}
	if _, err := time.Parse(time.RFC3339, g["deleted_at"].(string)); err != nil {
		t.Errorf("deleted_at %v is not RFC 3339", g["deleted_at"])
	}
	if fake.Mock.HasGrant("T123", "g-1") {
		t.Error("the grant is still held")
	}
	again := call(t, http.MethodDelete, u, bearer(t, fake, "T123", "admin:accounts"), "")
	if code, _ := dinteroError(t, again); again.status != 404 || code != "NOT_FOUND" {
		t.Errorf("deleting again: got %d %s; want 404", again.status, again.body)
	}
}

func TestDeleteRefuses(t *testing.T) {
	fake := dinterotest.New(t, dinterotest.Options{Lenient: true})
	fake.AddGrants("T123", "g-1")
	expired := dinterotest.New(t, dinterotest.Options{Mock: dinteromock.Options{Now: func() time.Time { return time.Now().Add(-2 * time.Hour) }}})
	old, err := expired.Mock.IssueToken("tester", dinteromock.Audience("T123"), []string{"admin:accounts"})
	if err != nil {
		t.Fatal(err)
	}
	other, _ := dinterotest.TestKeys(t)
	_ = other
	for _, tc := range []struct {
		name     string
		path     string
		header   map[string]string
		want     int
		wantCode string
	}{
		{"no token", "T123/auth/client-grants/g-1", map[string]string{"Authorization": "Bearer "}, 400, ""},
		{"not a JWT", "T123/auth/client-grants/g-1", map[string]string{"Authorization": "Bearer abc"}, 401, "UNAUTHORIZED"},
		{"expired", "T123/auth/client-grants/g-1", map[string]string{"Authorization": "Bearer " + old}, 401, "UNAUTHORIZED"},
		{"another account's token", "T123/auth/client-grants/g-1", bearer(t, fake, "P00000000", "admin:accounts"), 401, "UNAUTHORIZED"},
		{"no scope for it", "T123/auth/client-grants/g-1", bearer(t, fake, "T123", "read:accounts"), 403, "FORBIDDEN"},
		{"a bad account id", "T1234/auth/client-grants/g-1", bearer(t, fake, "T1234", "admin:accounts"), 400, "INVALID_REQUEST"},
		{"a grant it does not hold", "T123/auth/client-grants/g-2", bearer(t, fake, "T123", "admin:accounts"), 404, "NOT_FOUND"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := call(t, http.MethodDelete, fake.URL+"/accounts/"+tc.path, tc.header, "")
			code, fields := dinteroError(t, a)
			if a.status != tc.want || (tc.wantCode != "" && code != tc.wantCode) {
				t.Errorf("got %d %s; want %d %s", a.status, a.body, tc.want, tc.wantCode)
			}
			if tc.name == "a bad account id" && !slices.Equal(fields, []string{"oid"}) {
				t.Errorf("got errors naming %v; want oid", fields)
			}
		})
	}
	if !fake.Mock.HasGrant("T123", "g-1") {
		t.Error("a refused call deleted the grant")
	}
}

func TestDeleteAnswerShapes(t *testing.T) {
	fake := dinterotest.New(t)
	fake.AddGrants("T123", "g-1", "g-2")
	fake.Mock.SetBehaviour(dinteromock.Behaviour{DeleteNoContent: true})
	if a := call(t, http.MethodDelete, fake.URL+"/accounts/T123/auth/client-grants/g-1", bearer(t, fake, "T123", "admin:accounts"), ""); a.status != 204 || len(a.body) != 0 {
		t.Errorf("got %d %q; want 204 without a body", a.status, a.body)
	}
	// Timestamps off RFC 3339 break the spec: the check is skipped.
	fake.HandleRaw(dinterotest.OpDelete, fake.Mock.ServeHTTP)
	fake.Mock.SetBehaviour(dinteromock.Behaviour{TimeLayout: "2006-01-02T15:04:05.000-0700"})
	a := call(t, http.MethodDelete, fake.URL+"/accounts/T123/auth/client-grants/g-2", bearer(t, fake, "T123", "admin:accounts"), "")
	if a.status != 200 || !strings.Contains(string(a.body), `+0000"`) {
		t.Errorf("got %d %s; want timestamps written as +0000", a.status, a.body)
	}
}

// authorizeURL is an authorize call of the test data set's application.
func authorizeURL(base, account string, set map[string]string) string {
	q := url.Values{
		"audience": {dinteromock.Audience(account)}, "response_type": {"authenticate"}, "client_id": {dinterotest.App},
		"redirect_uri": {dinterotest.Callback}, "state": {"s-1"}, "scope": {"openid"},
	}
	for k, v := range set {
		if v == "" {
			delete(q, k)
			continue
		}
		q.Set(k, v)
	}
	return base + "/accounts/" + account + "/auth/authorize?" + q.Encode()
}

// redirectParams returns where an authorize answer sends the browser, and
// the parameters it carries in its query and its fragment.
func redirectParams(t *testing.T, a answer) (target string, params url.Values) {
	t.Helper()
	loc := a.header.Get("Location")
	if a.status == 200 {
		var v struct {
			RedirectURI string `json:"redirect_uri"`
		}
		if err := json.Unmarshal(a.body, &v); err != nil {
			t.Fatalf("got 200 %s; want {\"redirect_uri\"}", a.body)
		}
		loc = v.RedirectURI
	}
	u, err := url.Parse(loc)
	if err != nil || loc == "" {
		t.Fatalf("got %d, location %q; want a redirect", a.status, loc)
	}
	params = u.Query()
	if f, err := url.ParseQuery(u.Fragment); err == nil {
		for k, v := range f {
			params[k] = v
		}
	}
	u.RawQuery, u.Fragment = "", ""
	return u.String(), params
}

func TestAuthorize(t *testing.T) {
	for _, shape := range []dinteromock.AuthorizeAnswer{dinteromock.AnswerQuery, dinteromock.AnswerFragment, dinteromock.AnswerJSON} {
		t.Run(string(shape), func(t *testing.T) {
			fake := dinterotest.New(t, dinterotest.Options{Mock: dinteromock.Options{Behaviour: dinteromock.Behaviour{Authorize: shape}}})
			fake.AddCode("T123", "code-1")
			a := call(t, http.MethodPost, authorizeURL(fake.URL, "T123", map[string]string{"verification_code": "code-1"}), bearer(t, fake, "T123"), "")
			wantStatus := map[dinteromock.AuthorizeAnswer]int{dinteromock.AnswerQuery: 302, dinteromock.AnswerFragment: 302, dinteromock.AnswerJSON: 200}[shape]
			if a.status != wantStatus {
				t.Fatalf("got %d %s; want %d", a.status, a.body, wantStatus)
			}
			loc := a.header.Get("Location")
			switch shape {
			case dinteromock.AnswerQuery:
				if !strings.Contains(loc, "?") || strings.Contains(loc, "#") {
					t.Errorf("got location %q; want the tokens in its query", loc)
				}
			case dinteromock.AnswerFragment:
				if !strings.Contains(loc, "#id_token=") {
					t.Errorf("got location %q; want the tokens in its fragment", loc)
				}
			}
			target, p := redirectParams(t, a)
			if target != dinterotest.Callback || p.Get("state") != "s-1" || p.Get("error") != "" {
				t.Errorf("got %s %v; want the callback with state s-1", target, p)
			}
			claims := verify(t, fake, p.Get("id_token"))
			if claims["aud"] != dinterotest.Callback || claims["sub"] != "user-code-1" || claims["email"] != "user@example.com" || claims["iss"] == "" {
				t.Errorf("got id_token claims %v; want aud the redirect_uri and the code's user", claims)
			}
			if !fake.Mock.CodeUsed("code-1") {
				t.Error("the code is not spent")
			}
			again := call(t, http.MethodPost, authorizeURL(fake.URL, "T123", map[string]string{"verification_code": "code-1"}), bearer(t, fake, "T123"), "")
			if _, p := redirectParams(t, again); p.Get("error") != "access_denied" || p.Get("state") != "s-1" || p.Get("id_token") != "" {
				t.Errorf("reusing the code: got %v; want access_denied with the state", p)
			}
		})
	}
}

// verify checks an id_token against the keys the keys endpoint serves and
// returns its claims.
func verify(t *testing.T, fake *dinterotest.Server, idToken string) jwt.MapClaims {
	t.Helper()
	keys := publishedKeys(t, fake, "T123")
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(idToken, claims, func(tok *jwt.Token) (any, error) {
		return keys[tok.Header["kid"].(string)], nil
	}, jwt.WithValidMethods([]string{"RS256"}), jwt.WithExpirationRequired())
	if err != nil {
		t.Fatalf("the id_token does not verify with the published keys: %v", err)
	}
	return claims
}

func publishedKeys(t *testing.T, fake *dinterotest.Server, account string) map[string]*rsa.PublicKey {
	t.Helper()
	a := call(t, http.MethodGet, fake.URL+"/accounts/"+account+"/auth/keys", bearer(t, fake, account), "")
	var list []struct{ Alg, Kty, Use, N, E, Kid string }
	if a.status != 200 || json.Unmarshal(a.body, &list) != nil {
		t.Fatalf("keys: got %d %s; want a JSON array", a.status, a.body)
	}
	out := map[string]*rsa.PublicKey{}
	for _, k := range list {
		if k.Alg != "RS256" || k.Kty != "RSA" || k.Use != "sig" || k.Kid == "" {
			t.Errorf("got key %+v; want an RS256 signing key with a kid", k)
		}
		n, err1 := base64.RawURLEncoding.DecodeString(k.N)
		e, err2 := base64.RawURLEncoding.DecodeString(k.E)
		if err1 != nil || err2 != nil {
			t.Fatalf("key %s is not base64url", k.Kid)
		}
		out[k.Kid] = &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
	}
	return out
}

func TestAuthorizeRefuses(t *testing.T) {
	fake := dinterotest.New(t, dinterotest.Options{Lenient: true})
	// The spec check refuses requests without required parameters, or
	// with values off the spec's enums, before the mock sees them; the mock
	// must refuse them on its own too, so those go to it directly.
	direct := httptest.NewServer(fake.Mock)
	defer direct.Close()
	fake.AddCode("T123", "code-1")
	fake.AddCode("P00000000", "code-p")
	fake.Mock.AddCode(dinteromock.Code{Value: "code-other-app", ClientID: dinterotest.ClientID, Account: "T123", Subject: "u"})
	for _, tc := range []struct {
		name       string
		direct     bool
		set        map[string]string
		want       int
		wantFields []string // of a 400
		wantError  string   // OAuth's error in the redirect
	}{
		{"missing parameters", true, map[string]string{"audience": "", "client_id": "", "verification_code": ""}, 400, []string{"audience", "client_id", "verification_code"}, ""},
		{"a response_type and a scope Dintero does not name", true, map[string]string{"verification_code": "code-1", "response_type": "token", "scope": "email"}, 400, []string{"response_type", "scope"}, ""},
		{"an unknown parameter", false, map[string]string{"verification_code": "code-1", "nonce": "n"}, 400, []string{"nonce"}, ""},
		{"an unknown client", false, map[string]string{"verification_code": "code-1", "client_id": "nobody"}, 400, []string{"client_id"}, ""},
		{"an unregistered redirect_uri", false, map[string]string{"verification_code": "code-1", "redirect_uri": "https://evil.example/cb"}, 400, []string{"redirect_uri"}, ""},
		{"a wrong code", false, map[string]string{"verification_code": "nope"}, 302, nil, "access_denied"},
		{"another application's code", false, map[string]string{"verification_code": "code-other-app"}, 302, nil, "access_denied"},
		{"another account's code", false, map[string]string{"verification_code": "code-p"}, 302, nil, "access_denied"},
		{"another account's audience", false, map[string]string{"verification_code": "code-1", "audience": dinteromock.Audience("P00000000")}, 302, nil, "unauthorized_client"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := fake.URL
			if tc.direct {
				base = direct.URL + "/v1"
			}
			a := call(t, http.MethodPost, authorizeURL(base, "T123", tc.set), bearer(t, fake, "T123"), "")
			if a.status != tc.want {
				t.Fatalf("got %d %s; want %d", a.status, a.body, tc.want)
			}
			if tc.want == 400 {
				if _, fields := dinteroError(t, a); !slices.Equal(fields, tc.wantFields) {
					t.Errorf("got errors naming %v; want %v", fields, tc.wantFields)
				}
				return
			}
			if _, p := redirectParams(t, a); p.Get("error") != tc.wantError || p.Get("error_description") == "" || p.Get("state") != "s-1" {
				t.Errorf("got %v; want error %s with a description and the state", p, tc.wantError)
			}
		})
	}
	if fake.Mock.CodeUsed("code-1") || fake.Mock.CodeUsed("code-p") {
		t.Error("a refused call spent a code")
	}
	t.Run("no redirect_uri: the first callback, aud the client", func(t *testing.T) {
		a := call(t, http.MethodPost, authorizeURL(fake.URL, "T123", map[string]string{"verification_code": "code-1", "redirect_uri": ""}), bearer(t, fake, "T123"), "")
		target, p := redirectParams(t, a)
		if target != dinterotest.Callback || verify(t, fake, p.Get("id_token"))["aud"] != dinterotest.App {
			t.Errorf("got %s %v; want the first callback and aud %s", target, p, dinterotest.App)
		}
	})
}

func TestKeyRotation(t *testing.T) {
	fake := dinterotest.New(t)
	first := fake.Mock.KeyID()
	if keys := publishedKeys(t, fake, "T123"); len(keys) != 1 || keys[first] == nil {
		t.Fatalf("got keys %v; want the one key %s", keys, first)
	}
	caller := bearer(t, fake, "T123", "admin:accounts")
	_, second := dinterotest.TestKeys(t)
	if err := fake.Mock.RotateKey(second, true); err != nil {
		t.Fatal(err)
	}
	if keys := publishedKeys(t, fake, "T123"); len(keys) != 2 || keys[first] == nil || keys[fake.Mock.KeyID()] == nil {
		t.Errorf("after a rotation keeping the old key: got %d keys; want both", len(keys))
	}
	// A token signed before the rotation is still good.
	fake.AddGrants("T123", "g")
	if a := call(t, http.MethodDelete, fake.URL+"/accounts/T123/auth/client-grants/g", caller, ""); a.status != 200 {
		t.Errorf("an older token after the rotation: got %d %s", a.status, a.body)
	}
	if err := fake.Mock.RotateKey(nil, false); err != nil {
		t.Fatal(err)
	}
	if keys := publishedKeys(t, fake, "T123"); len(keys) != 1 || keys[first] != nil {
		t.Errorf("after a rotation dropping the old keys: got %d keys", len(keys))
	}
}

func TestFaults(t *testing.T) {
	fake := dinterotest.New(t, dinterotest.Options{Lenient: true})
	u := fake.URL + "/accounts/T123/auth/keys"
	h := bearer(t, fake, "T123")
	h["Dintero-Mock-Fault"] = "rate-limit=1; retry-after=7"
	if a := call(t, http.MethodGet, u, h, ""); a.status != 429 || a.header.Get("Retry-After") != "7" {
		t.Errorf("got %d Retry-After %q; want 429 with 7", a.status, a.header.Get("Retry-After"))
	}
	h["Dintero-Mock-Fault"] = "fail=1"
	if a := call(t, http.MethodGet, u, h, ""); a.status != 503 {
		t.Errorf("got %d; want 503", a.status)
	}
	h["Dintero-Mock-Fault"] = "latency=150ms"
	start := time.Now()
	if a := call(t, http.MethodGet, u, h, ""); a.status != 200 || time.Since(start) < 150*time.Millisecond {
		t.Errorf("got %d after %v; want 200 after 150ms", a.status, time.Since(start))
	}
	h["Dintero-Mock-Fault"] = "authorize=carrier-pigeon"
	if a := call(t, http.MethodGet, u, h, ""); a.status != 400 {
		t.Errorf("a bad fault: got %d; want 400", a.status)
	}
}

func TestStateless(t *testing.T) {
	fake := dinterotest.New(t, dinterotest.Options{Mock: dinteromock.Options{Stateless: true}})
	h := bearer(t, fake, "T123", "admin:accounts")
	for range 2 {
		if a := call(t, http.MethodDelete, fake.URL+"/accounts/T123/auth/client-grants/any-id", h, ""); a.status != 200 || !strings.Contains(string(a.body), `"id":"any-id"`) {
			t.Errorf("got %d %s; want the grant, every time", a.status, a.body)
		}
	}
	first := call(t, http.MethodPost, authorizeURL(fake.URL, "T123", map[string]string{"verification_code": "whatever"}), h, "")
	second := call(t, http.MethodPost, authorizeURL(fake.URL, "T123", map[string]string{"verification_code": "whatever"}), h, "")
	if _, p := redirectParams(t, first); p.Get("id_token") == "" || first.header.Get("Location") != second.header.Get("Location") {
		t.Errorf("got %q then %q; want the same young id_token twice", first.header.Get("Location"), second.header.Get("Location"))
	}
	// Tokens are checked all the same.
	if a := call(t, http.MethodDelete, fake.URL+"/accounts/T123/auth/client-grants/x", map[string]string{"Authorization": "Bearer forged"}, ""); a.status != 401 {
		t.Errorf("a forged token: got %d; want 401", a.status)
	}
}

func TestLoadClients(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	if err := os.WriteFile(good, []byte(`[{"client_id":"a","client_secret":"s","accounts":["T123"],"scopes":["admin:accounts"],"callbacks":["https://x.example/cb"]}]`), 0o600); err != nil {
		t.Fatal(err)
	}
	cs, err := dinteromock.LoadClients(good)
	if err != nil || len(cs) != 1 || cs[0].ID != "a" || cs[0].Callbacks[0] != "https://x.example/cb" {
		t.Errorf("got %+v, %v", cs, err)
	}
	for name, body := range map[string]string{
		"no secret":   `[{"client_id":"a"}]`,
		"bad account": `[{"client_id":"a","client_secret":"s","accounts":["X1"]}]`,
		"not json":    `[`,
	} {
		p := filepath.Join(dir, "bad.json")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := dinteromock.LoadClients(p); err == nil {
			t.Errorf("%s: got no error", name)
		}
	}
}

func TestLoadGrants(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "g.json")
	if err := os.WriteFile(p, []byte(`{"T123":[{"id":"g","client_id":"c","audience":"a","scope":["s"],"created_at":"2024-01-02T03:04:05Z"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	g, err := dinteromock.LoadGrants(p)
	if err != nil || g["T123"][0].ID != "g" || g["T123"][0].CreatedAt.Year() != 2024 {
		t.Errorf("got %+v, %v", g, err)
	}
	for name, body := range map[string]string{
		"no id":       `{"T123":[{"client_id":"c"}]}`,
		"bad account": `{"X":[{"id":"g"}]}`,
	} {
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := dinteromock.LoadGrants(p); err == nil {
			t.Errorf("%s: got no error", name)
		}
	}
}

// TestTokensAreCheckedEveryTime: a token the mock has verified once (and
// cached) is refused once it expires; a token of another issuer, or signed
// with a key the mock does not hold, is refused.
func TestTokensAreCheckedEveryTime(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	fake := dinterotest.New(t, dinterotest.Options{Lenient: true, Mock: dinteromock.Options{Now: clock}})
	fake.AddGrants("T123", "g1", "g2")
	h := bearer(t, fake, "T123", "admin:accounts")
	u := fake.URL + "/accounts/T123/auth/client-grants/"
	if a := call(t, http.MethodDelete, u+"g1", h, ""); a.status != 200 {
		t.Fatalf("a fresh token: got %d %s", a.status, a.body)
	}
	mu.Lock()
	now = now.Add(2 * time.Hour)
	mu.Unlock()
	if a := call(t, http.MethodDelete, u+"g2", h, ""); a.status != 401 {
		t.Errorf("the same token, expired: got %d %s; want 401", a.status, a.body)
	}
	key, other := dinterotest.TestKeys(t)
	for name, signed := range map[string]func() (string, error){
		"another issuer": func() (string, error) {
			tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"iss": "https://evil.example", "aud": dinteromock.Audience("T123"), "scope": "admin:accounts", "exp": clock().Add(time.Hour).Unix()})
			tok.Header["kid"] = fake.Mock.KeyID()
			return tok.SignedString(key)
		},
		"a key the mock does not hold": func() (string, error) {
			tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"iss": "https://dintero-mock.local", "aud": dinteromock.Audience("T123"), "scope": "admin:accounts", "exp": clock().Add(time.Hour).Unix()})
			tok.Header["kid"] = fake.Mock.KeyID()
			return tok.SignedString(other)
		},
	} {
		tok, err := signed()
		if err != nil {
			t.Fatal(err)
		}
		if a := call(t, http.MethodDelete, u+"g2", map[string]string{"Authorization": "Bearer " + tok}, ""); a.status != 401 {
			t.Errorf("%s: got %d %s; want 401", name, a.status, a.body)
		}
	}
}

// TestAuthorizeRefusesRepeatedParameters: a parameter given twice is
// refused, naming it.
func TestAuthorizeRefusesRepeatedParameters(t *testing.T) {
	fake := dinterotest.New(t, dinterotest.Options{Lenient: true})
	fake.AddCode("T123", "code-1")
	a := call(t, http.MethodPost, authorizeURL(fake.URL, "T123", map[string]string{"verification_code": "code-1"})+"&state=again", bearer(t, fake, "T123"), "")
	if _, fields := dinteroError(t, a); a.status != 400 || !slices.Equal(fields, []string{"state"}) {
		t.Errorf("got %d %s; want 400 naming state", a.status, a.body)
	}
	if fake.Mock.CodeUsed("code-1") {
		t.Error("a refused call spent the code")
	}
}

// TestKeysNeedAToken: the keys endpoint, like every endpoint but the
// token's, wants a valid token of the account.
func TestKeysNeedAToken(t *testing.T) {
	fake := dinterotest.New(t, dinterotest.Options{Lenient: true})
	u := fake.URL + "/accounts/T123/auth/keys"
	for _, tc := range []struct {
		name string
		auth map[string]string
		want int
	}{
		{"another account's token", bearer(t, fake, "T111"), 401},
		{"a token of the account", bearer(t, fake, "T123"), 200},
	} {
		if a := call(t, http.MethodGet, u, tc.auth, ""); a.status != tc.want {
			t.Errorf("%s: got %d %s; want %d", tc.name, a.status, a.body, tc.want)
		}
	}
}

// TestRotateKeysEndpoint: POST /_mock/rotate-keys from loopback rotates
// the signing key and answers the new kid; another method is 405 with
// Allow; a caller beyond loopback is refused and the key stays.
func TestRotateKeysEndpoint(t *testing.T) {
	m, err := dinteromock.New(dinteromock.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(m.WithAdmin())
	defer srv.Close()
	before := m.KeyID()
	a := call(t, http.MethodPost, srv.URL+dinteromock.RotateKeysPath, nil, "")
	var got struct {
		KID string `json:"kid"`
	}
	if err := json.Unmarshal(a.body, &got); err != nil || a.status != 200 || got.KID == before || got.KID != m.KeyID() {
		t.Errorf("got %d %s; want 200 and the new kid (was %s)", a.status, a.body, before)
	}
	if a := call(t, http.MethodGet, srv.URL+dinteromock.RotateKeysPath, nil, ""); a.status != 405 || a.header.Get("Allow") != "POST" {
		t.Errorf("GET: got %d, Allow %q; want 405, POST", a.status, a.header.Get("Allow"))
	}
	kid := m.KeyID()
	r := httptest.NewRequest(http.MethodPost, dinteromock.RotateKeysPath, nil)
	r.RemoteAddr = "192.0.2.7:40000"
	w := httptest.NewRecorder()
	m.WithAdmin().ServeHTTP(w, r)
	if w.Code != 403 || m.KeyID() != kid {
		t.Errorf("from 192.0.2.7: got %d, key changed %v; want 403 and the key kept", w.Code, m.KeyID() != kid)
	}
	// Dintero's API is served beside it.
	if a := call(t, http.MethodGet, srv.URL+"/v1/accounts/T12345678/auth/keys", nil, ""); a.status != 401 {
		t.Errorf("the keys endpoint without a token: got %d; want 401", a.status)
	}
}
