package dinteromock_test

import (
	"context"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/dintero-facade/dintero-facade/internal/dinteromock"
	"github.com/dintero-facade/dintero-facade/internal/dinterotest"
	"github.com/dintero-facade/dintero-facade/upstream"
)

// setup serves the mock behind the spec-checking fake, and returns a real
// upstream client on the mock's own credentials.
func setup(t *testing.T, o dinteromock.Options, mod ...func(*upstream.Options)) (*dinteromock.Mock, *dinterotest.Server, *upstream.Client) {
	t.Helper()
	m, err := dinteromock.New(o)
	if err != nil {
		t.Fatal(err)
	}
	fake := dinterotest.New(t, dinterotest.Options{Backend: m})
	tr := upstream.NewTransport(5 * time.Second)
	t.Cleanup(tr.CloseIdleConnections)
	uo := upstream.Options{
		BaseURL:     fake.URL,
		Transport:   tr,
		Credentials: []upstream.Credentials{{AccountID: dinteromock.DefaultAccount, ClientID: dinteromock.DefaultClientID, ClientSecret: dinteromock.DefaultClientSecret}},
		BackoffBase: time.Millisecond, BackoffMax: 2 * time.Millisecond,
	}
	for _, f := range mod {
		f(&uo)
	}
	c, err := upstream.New(uo)
	if err != nil {
		t.Fatal(err)
	}
	return m, fake, c
}

func status(err error) int {
	var e *upstream.Error
	if errors.As(err, &e) {
		return e.StatusCode
	}
	return 0
}

func TestDeleteIsStateful(t *testing.T) {
	_, fake, c := setup(t, dinteromock.Options{})
	ctx := context.Background()
	const id = "7e0e7d2c-1f4a-4b8e-9d55-1f2f9a3c0c11"
	g, _, err := c.DeleteClientGrant(ctx, upstream.Call{}, dinteromock.DefaultAccount, id)
	if err != nil {
		t.Fatal(err)
	}
	if g.ID != id || g.DeletedAt == nil || g.DeletedBy != dinteromock.DefaultClientID || g.OIDC == nil || g.CreatedAt == nil {
		t.Errorf("got %+v; want the grant with deleted_at and deleted_by set", g)
	}
	if _, _, err := c.DeleteClientGrant(ctx, upstream.Call{}, dinteromock.DefaultAccount, id); status(err) != 404 {
		t.Errorf("second delete: got %v; want 404", err)
	}
	if _, _, err := c.DeleteClientGrant(ctx, upstream.Call{}, dinteromock.DefaultAccount, "no-such-grant"); status(err) != 404 {
		t.Errorf("unknown grant: got %v; want 404", err)
	}
	if n := fake.Count(dinterotest.OpToken); n != 1 {
		t.Errorf("got %d token requests; want 1", n)
	}
}

func TestAuthentication(t *testing.T) {
	_, _, c := setup(t, dinteromock.Options{})
	ctx := context.Background()
	for name, auth := range map[string]string{"garbage": "Bearer not-a-jwt", "foreign key": "Bearer " + foreignToken(t)} {
		if _, _, err := c.DeleteClientGrant(ctx, upstream.Call{Authorization: auth}, dinteromock.DefaultAccount, "x"); status(err) != 401 {
			t.Errorf("%s: got %v; want 401", name, err)
		}
	}
	_, _, bad := setup(t, dinteromock.Options{}, func(o *upstream.Options) {
		o.Credentials = []upstream.Credentials{{AccountID: dinteromock.DefaultAccount, ClientID: dinteromock.DefaultClientID, ClientSecret: "wrong"}}
	})
	if _, _, err := bad.DeleteClientGrant(ctx, upstream.Call{}, dinteromock.DefaultAccount, "x"); !errors.Is(err, upstream.ErrTokenFetch) || status(err) != 401 {
		t.Errorf("wrong secret: got %v; want the token endpoint's 401", err)
	}
	_, _, reader := setup(t, dinteromock.Options{Clients: []dinteromock.Client{{ID: "reader", Secret: "reader-secret", Scopes: []string{"read:accounts"}}}}, func(o *upstream.Options) {
		o.Credentials = []upstream.Credentials{{AccountID: dinteromock.DefaultAccount, ClientID: "reader", ClientSecret: "reader-secret"}}
	})
	if _, _, err := reader.DeleteClientGrant(ctx, upstream.Call{}, dinteromock.DefaultAccount, "x"); status(err) != 403 {
		t.Errorf("without admin:accounts: got %v; want 403", err)
	}
}

// foreignToken is a well-formed RS256 token signed by some other key.
func foreignToken(t *testing.T) string {
	m, err := dinteromock.New(dinteromock.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(m)
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/accounts/T12345678/auth/token", strings.NewReader(`{"grant_type":"client_credentials","audience":"a"}`))
	req.SetBasicAuth(dinteromock.DefaultClientID, dinteromock.DefaultClientSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&tok)
	return tok.AccessToken
}

func TestAuthorize(t *testing.T) {
	m, _, c := setup(t, dinteromock.Options{})
	ctx := context.Background()
	p := upstream.AuthorizeParams{OID: dinteromock.DefaultAccount, Audience: "https://api.dintero.com/v1/accounts/T12345678", Scope: "openid",
		ResponseType: "authenticate", ClientID: "portal-client", VerificationCode: "123456", State: "st-1", RedirectURI: "https://app.example.com/cb"}
	rd, _, err := c.Authorize(ctx, upstream.Call{}, p)
	if err != nil {
		t.Fatal(err)
	}
	if rd.Query["state"] != "st-1" || !strings.HasPrefix(rd.Location, "https://app.example.com/cb?") {
		t.Errorf("got %+v; want a redirect to the redirect_uri with the state", rd)
	}
	// The id_token verifies with the key the mock publishes.
	claims := jwt.MapClaims{}
	if _, err := jwt.ParseWithClaims(rd.IDToken, claims, func(*jwt.Token) (any, error) { return jwksKey(t, m), nil },
		jwt.WithValidMethods([]string{"RS256"}), jwt.WithAudience("https://app.example.com/cb"), jwt.WithIssuer("https://dintero-mock.local"), jwt.WithExpirationRequired()); err != nil {
		t.Errorf("the id_token does not verify against the JWKS: %v", err)
	}
	if claims["sub"] == "" {
		t.Errorf("claims %v lack sub", claims)
	}
	// The code works once.
	if _, _, err := c.Authorize(ctx, upstream.Call{}, p); status(err) != 400 {
		t.Errorf("second use: got %v; want 400", err)
	}
	p.VerificationCode = "000000"
	if _, _, err := c.Authorize(ctx, upstream.Call{}, p); status(err) != 400 {
		t.Errorf("unknown code: got %v; want 400", err)
	}
}

// jwksKey reads the mock's published key.
func jwksKey(t *testing.T, m *dinteromock.Mock) *rsa.PublicKey {
	t.Helper()
	rec := httptest.NewRecorder()
	m.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/.well-known/jwks.json", nil))
	var set struct {
		Keys []struct{ Kty, Alg, N, E string }
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &set); err != nil || len(set.Keys) != 1 || set.Keys[0].Kty != "RSA" || set.Keys[0].Alg != "RS256" {
		t.Fatalf("JWKS %s: %v", rec.Body, err)
	}
	n, _ := base64.RawURLEncoding.DecodeString(set.Keys[0].N)
	e, _ := base64.RawURLEncoding.DecodeString(set.Keys[0].E)
	return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
}

func TestFaults(t *testing.T) {
	m, err := dinteromock.New(dinteromock.Options{})
	if err != nil {
		t.Fatal(err)
	}
	do := func(fault string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodDelete, "/v1/accounts/T12345678/auth/client-grants/x", nil)
		req.Header.Set("Dintero-Mock-Fault", fault)
		m.ServeHTTP(rec, req)
		return rec
	}
	if rec := do("fail=1"); rec.Code != 503 {
		t.Errorf("fail=1: got %d; want 503", rec.Code)
	}
	if rec := do("rate-limit=1; retry-after=3"); rec.Code != 429 || rec.Header().Get("Retry-After") != "3" {
		t.Errorf("rate-limit: got %d with Retry-After %q; want 429 with 3", rec.Code, rec.Header().Get("Retry-After"))
	}
	start := time.Now()
	if rec := do("latency=60ms"); rec.Code != 401 || time.Since(start) < 60*time.Millisecond {
		t.Errorf("latency: got %d after %v; want the answer (401: no token) after 60ms", rec.Code, time.Since(start))
	}
	if rec := do("nonsense"); rec.Code != 400 {
		t.Errorf("a bad fault header: got %d; want 400", rec.Code)
	}
	// Faults from the options apply to every call.
	slow, _ := dinteromock.New(dinteromock.Options{Faults: dinteromock.Faults{FailureRate: 1}})
	rec := httptest.NewRecorder()
	slow.ServeHTTP(rec, httptest.NewRequest(http.MethodDelete, "/v1/accounts/T12345678/auth/client-grants/x", nil))
	if rec.Code != 503 {
		t.Errorf("FailureRate 1: got %d; want 503", rec.Code)
	}
}

func TestLoadClients(t *testing.T) {
	path := filepath.Join(t.TempDir(), "clients.json")
	if err := os.WriteFile(path, []byte(`[{"client_id":"ops","client_secret":"ops-secret","scopes":["write:accounts"]}]`), 0o600); err != nil {
		t.Fatal(err)
	}
	clients, err := dinteromock.LoadClients(path)
	if err != nil {
		t.Fatal(err)
	}
	_, _, c := setup(t, dinteromock.Options{Clients: clients}, func(o *upstream.Options) {
		o.Credentials = []upstream.Credentials{{AccountID: dinteromock.DefaultAccount, ClientID: "ops", ClientSecret: "ops-secret"}}
	})
	// write:accounts is enough to delete.
	if _, _, err := c.DeleteClientGrant(context.Background(), upstream.Call{}, dinteromock.DefaultAccount, "2f3c9c1e-6f1a-4f0e-9a53-6f2d0b1c4a01"); err != nil {
		t.Errorf("a configured client with write:accounts: %v", err)
	}
}

func TestLoadGrants(t *testing.T) {
	path := filepath.Join(t.TempDir(), "grants.json")
	if err := os.WriteFile(path, []byte(`{"P00000001":[{"id":"g1","client_id":"c","audience":"a","scope":["s"]}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	grants, err := dinteromock.LoadGrants(path)
	if err != nil {
		t.Fatal(err)
	}
	_, _, c := setup(t, dinteromock.Options{Grants: grants}, func(o *upstream.Options) {
		o.Credentials[0].AccountID = "P00000001"
	})
	if g, _, err := c.DeleteClientGrant(context.Background(), upstream.Call{}, "P00000001", "g1"); err != nil || g.ClientID != "c" {
		t.Errorf("got %+v, %v; want grant g1 from the file", g, err)
	}
	if err := os.WriteFile(path, []byte(`{"P00000001":[{"client_id":"no id"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := dinteromock.LoadGrants(path); err == nil {
		t.Error("a grant without an id was accepted")
	}
}
