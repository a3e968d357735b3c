// Package dinteromock is a local, stateful Dintero auth API: the three
// endpoints the facade uses, with real RS256 tokens, one-time verification
// codes, grants that stay deleted, and fault switches. cmd/dintero-mock
// serves it, and the facade's --mock flag starts it in process, so that the
// facade can be run and demonstrated without a Dintero account.
package dinteromock

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/dintero-facade/dintero-facade/upstream"
)

// Client is an API client the token endpoint accepts.
type Client struct {
	ID     string   `json:"client_id"`
	Secret string   `json:"client_secret"`
	Scopes []string `json:"scopes"`
}

// Grant is a client grant, in Dintero's JSON shape.
type Grant = upstream.Grant

// OIDC is a grant's OpenID Connect configuration.
type OIDC = upstream.OIDC

// Faults make the mock misbehave, for tests and demos. A request can set
// its own with the Dintero-Mock-Fault header, such as
// "latency=200ms; fail=0.5; rate-limit=1; retry-after=3".
type Faults struct {
	// Latency is added before every answer.
	Latency time.Duration
	// FailureRate is the share of calls answered 503, from 0 to 1.
	FailureRate float64
	// RateLimitRate is the share of calls answered 429, with RetryAfter
	// seconds in Retry-After.
	RateLimitRate float64
	RetryAfter    int
}

// Options configure a Mock. Zero fields take the defaults of Defaults.
type Options struct {
	// Issuer is the iss of the tokens it signs.
	Issuer string
	// Clients are the API clients the token endpoint accepts.
	Clients []Client
	// Grants are the grants of each account, by account id.
	Grants map[string][]Grant
	// VerificationCodes are the one-time codes authorize accepts, once each.
	VerificationCodes []string
	// TokenTTL is the lifetime of access tokens.
	TokenTTL time.Duration
	// Faults apply to every call.
	Faults Faults
	// Key signs the tokens; nil makes a new 2048-bit key.
	Key *rsa.PrivateKey
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// The defaults: one client allowed to administer accounts, one test account
// with three grants, and three verification codes.
const (
	DefaultClientID     = "mock-client"
	DefaultClientSecret = "mock-client-secret"
	DefaultAccount      = "T12345678"
)

// Defaults returns the built-in data set.
func Defaults() Options {
	created := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	aud := "https://api.dintero.com/v1/accounts/" + DefaultAccount
	return Options{
		Issuer:            "https://dintero-mock.local",
		Clients:           []Client{{ID: DefaultClientID, Secret: DefaultClientSecret, Scopes: []string{"admin:accounts"}}},
		VerificationCodes: []string{"123456", "234567", "345678"},
		TokenTTL:          time.Hour,
		Grants: map[string][]Grant{DefaultAccount: {
			{ID: "2f3c9c1e-6f1a-4f0e-9a53-6f2d0b1c4a01", ClientID: "checkout-client", Audience: aud, Scope: []string{"write:checkout"}, Type: "client_credentials", CreatedAt: &created, CreatedBy: "mock-admin"},
			{ID: "7e0e7d2c-1f4a-4b8e-9d55-1f2f9a3c0c11", ClientID: "portal-client", Audience: aud, Scope: []string{"read:accounts"}, Type: "authorization_code", CreatedAt: &created, CreatedBy: "mock-admin",
				OIDC: &OIDC{ClientID: "portal-oidc", ClientSecret: "mock-oidc-secret", Authority: "https://identityserver.example.com/access"}},
			{ID: "b5d7c1a8-3e2f-4c6d-8a9b-0c1d2e3f4a5b", ClientID: "reports-client", Audience: aud, Scope: []string{"read:reports"}, Type: "any", CreatedAt: &created, CreatedBy: "mock-admin"},
		}},
	}
}

// LoadClients reads API clients from a JSON file:
// [{"client_id", "client_secret", "scopes": […]}, …].
func LoadClients(path string) ([]Client, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var cs []Client
	if err := json.Unmarshal(b, &cs); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for i, c := range cs {
		if c.ID == "" || c.Secret == "" {
			return nil, fmt.Errorf("%s: client %d needs client_id and client_secret", path, i+1)
		}
	}
	return cs, nil
}

// LoadGrants reads grants from a JSON file: {"<account id>": [<grant>, …]}.
func LoadGrants(path string) (map[string][]Grant, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var g map[string][]Grant
	if err := json.Unmarshal(b, &g); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for oid, gs := range g {
		for i, gr := range gs {
			if gr.ID == "" {
				return nil, fmt.Errorf("%s: grant %d of %s has no id", path, i, oid)
			}
		}
	}
	return g, nil
}

// Mock is the mock's state and handler. It is safe for concurrent use.
type Mock struct {
	opts Options
	kid  string
	mux  *http.ServeMux

	mu     sync.Mutex
	grants map[string]map[string]*Grant // oid → id → grant; deleted ones are gone
	codes  map[string]bool              // verification code → used
}

// New returns a Mock for o, completed with the defaults.
func New(o Options) (*Mock, error) {
	d := Defaults()
	if o.Issuer == "" {
		o.Issuer = d.Issuer
	}
	if o.Clients == nil {
		o.Clients = d.Clients
	}
	if o.Grants == nil {
		o.Grants = d.Grants
	}
	if o.VerificationCodes == nil {
		o.VerificationCodes = d.VerificationCodes
	}
	if o.TokenTTL <= 0 {
		o.TokenTTL = d.TokenTTL
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Key == nil {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, err
		}
		o.Key = k
	}
	sum := sha256.Sum256(o.Key.N.Bytes())
	m := &Mock{opts: o, kid: base64.RawURLEncoding.EncodeToString(sum[:8]), grants: map[string]map[string]*Grant{}, codes: map[string]bool{}}
	for oid, gs := range o.Grants {
		m.grants[oid] = map[string]*Grant{}
		for _, g := range gs {
			g := g
			m.grants[oid][g.ID] = &g
		}
	}
	for _, c := range o.VerificationCodes {
		m.codes[c] = false
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/accounts/{oid}/auth/token", m.token)
	mux.HandleFunc("DELETE /v1/accounts/{oid}/auth/client-grants/{id}", m.deleteGrant)
	mux.HandleFunc("POST /v1/accounts/{oid}/auth/authorize", m.authorize)
	mux.HandleFunc("GET /v1/.well-known/jwks.json", m.jwks)
	mux.HandleFunc("GET /v1/accounts/{oid}/auth/.well-known/jwks.json", m.jwks)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		WriteError(w, http.StatusNotFound, "NOT_FOUND", "the mock serves only the auth endpoints the facade uses")
	})
	m.mux = mux
	return m, nil
}

// ServeHTTP applies the faults, then answers like Dintero.
func (m *Mock) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Request-Id", requestID())
	f := m.opts.Faults
	if h := r.Header.Get("Dintero-Mock-Fault"); h != "" {
		var err error
		if f, err = parseFaults(h, f); err != nil {
			WriteError(w, http.StatusBadRequest, "BAD_MOCK_FAULT", err.Error())
			return
		}
	}
	if f.Latency > 0 {
		select {
		case <-time.After(f.Latency):
		case <-r.Context().Done():
			return
		}
	}
	if f.RateLimitRate > 0 && mrand.Float64() < f.RateLimitRate {
		if f.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(f.RetryAfter))
		}
		WriteError(w, http.StatusTooManyRequests, "TOO_MANY_REQUESTS", "rate limit exceeded (mock fault)")
		return
	}
	if f.FailureRate > 0 && mrand.Float64() < f.FailureRate {
		WriteError(w, http.StatusServiceUnavailable, "SERVICE_UNAVAILABLE", "unavailable (mock fault)")
		return
	}
	m.mux.ServeHTTP(w, r)
}

// parseFaults reads "latency=200ms; fail=0.5; rate-limit=1; retry-after=3"
// over base.
func parseFaults(s string, base Faults) (Faults, error) {
	f := base
	for _, part := range strings.Split(s, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			if strings.TrimSpace(part) == "" {
				continue
			}
			return f, fmt.Errorf("fault %q is not key=value", part)
		}
		var err error
		switch strings.TrimSpace(k) {
		case "latency":
			f.Latency, err = time.ParseDuration(v)
		case "fail":
			f.FailureRate, err = strconv.ParseFloat(v, 64)
		case "rate-limit":
			f.RateLimitRate, err = strconv.ParseFloat(v, 64)
		case "retry-after":
			f.RetryAfter, err = strconv.Atoi(v)
		default:
			err = fmt.Errorf("unknown fault %q (latency, fail, rate-limit, retry-after)", k)
		}
		if err != nil {
			return f, err
		}
	}
	return f, nil
}

func requestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "mock-" + base64.RawURLEncoding.EncodeToString(b[:])
}

// WriteError writes Dintero's error body, {"error":{"code","message"}},
// with status.
func WriteError(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": message}})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// token issues an access token for client credentials (HTTP Basic).
func (m *Mock) token(w http.ResponseWriter, r *http.Request) {
	id, secret, ok := r.BasicAuth()
	i := slices.IndexFunc(m.opts.Clients, func(c Client) bool { return c.ID == id })
	if !ok || i < 0 || m.opts.Clients[i].Secret != secret {
		WriteError(w, http.StatusUnauthorized, "INVALID_CLIENT", "client authentication failed")
		return
	}
	var body struct {
		GrantType string `json:"grant_type"`
		Audience  string `json:"audience"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&body); err != nil {
		WriteError(w, http.StatusBadRequest, "INVALID_REQUEST", "the body is not JSON")
		return
	}
	if body.GrantType != "client_credentials" {
		WriteError(w, http.StatusBadRequest, "UNSUPPORTED_GRANT_TYPE", "grant_type must be client_credentials")
		return
	}
	if body.Audience == "" {
		WriteError(w, http.StatusBadRequest, "INVALID_REQUEST", "audience is required")
		return
	}
	now := m.opts.Now()
	tok, err := m.sign(jwt.MapClaims{
		"iss": m.opts.Issuer, "sub": id, "aud": body.Audience,
		"scope": strings.Join(m.opts.Clients[i].Scopes, " "),
		"iat":   now.Unix(), "exp": now.Add(m.opts.TokenTTL).Unix(),
	})
	if err != nil {
		WriteError(w, http.StatusInternalServerError, "SERVER_ERROR", "signing failed")
		return
	}
	writeJSON(w, map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": int64(m.opts.TokenTTL / time.Second)})
}

func (m *Mock) sign(c jwt.MapClaims) (string, error) {
	t := jwt.NewWithClaims(jwt.SigningMethodRS256, c)
	t.Header["kid"] = m.kid
	return t.SignedString(m.opts.Key)
}

// bearer verifies the request's access token and returns its claims.
func (m *Mock) bearer(r *http.Request) (jwt.MapClaims, error) {
	h := r.Header.Get("Authorization")
	raw, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || raw == "" {
		return nil, errors.New("no Bearer token")
	}
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(raw, claims, func(*jwt.Token) (any, error) { return &m.opts.Key.PublicKey, nil },
		jwt.WithValidMethods([]string{"RS256"}), jwt.WithIssuer(m.opts.Issuer), jwt.WithExpirationRequired(), jwt.WithTimeFunc(m.opts.Now))
	if err != nil {
		return nil, errors.New("the token is not valid")
	}
	return claims, nil
}

func (m *Mock) deleteGrant(w http.ResponseWriter, r *http.Request) {
	claims, err := m.bearer(r)
	if err != nil {
		WriteError(w, http.StatusUnauthorized, "UNAUTHORIZED", err.Error())
		return
	}
	scopes := strings.Fields(fmt.Sprint(claims["scope"]))
	if !slices.Contains(scopes, "admin:accounts") && !slices.Contains(scopes, "write:accounts") {
		WriteError(w, http.StatusForbidden, "FORBIDDEN", "the token needs the scope admin:accounts or write:accounts")
		return
	}
	oid, id := r.PathValue("oid"), r.PathValue("id")
	m.mu.Lock()
	g, ok := m.grants[oid][id]
	if ok {
		delete(m.grants[oid], id)
	}
	m.mu.Unlock()
	if !ok {
		WriteError(w, http.StatusNotFound, "NOT_FOUND", "client grant "+id+" not found")
		return
	}
	now := m.opts.Now().UTC()
	g.DeletedAt, g.UpdatedAt = &now, &now
	g.DeletedBy = fmt.Sprint(claims["sub"])
	writeJSON(w, g)
}

func (m *Mock) authorize(w http.ResponseWriter, r *http.Request) {
	if _, err := m.bearer(r); err != nil {
		WriteError(w, http.StatusUnauthorized, "UNAUTHORIZED", err.Error())
		return
	}
	q := r.URL.Query()
	for _, p := range []string{"audience", "response_type", "client_id", "verification_code"} {
		if q.Get(p) == "" {
			WriteError(w, http.StatusBadRequest, "INVALID_REQUEST", p+" is required")
			return
		}
	}
	if q.Get("response_type") != "authenticate" {
		WriteError(w, http.StatusBadRequest, "UNSUPPORTED_RESPONSE_TYPE", "response_type must be authenticate")
		return
	}
	if s := q.Get("scope"); s != "" && s != "openid" {
		WriteError(w, http.StatusBadRequest, "INVALID_SCOPE", "scope must be openid")
		return
	}
	redirect := q.Get("redirect_uri")
	if redirect == "" {
		redirect = "http://localhost/callback"
	}
	u, err := url.Parse(redirect)
	if err != nil || !u.IsAbs() {
		WriteError(w, http.StatusBadRequest, "INVALID_REDIRECT_URI", "redirect_uri must be an absolute URL")
		return
	}
	code := q.Get("verification_code")
	m.mu.Lock()
	used, known := m.codes[code]
	if known && !used {
		m.codes[code] = true
	}
	m.mu.Unlock()
	if !known || used {
		WriteError(w, http.StatusBadRequest, "INVALID_VERIFICATION_CODE", "the verification code is invalid or was already used")
		return
	}
	now := m.opts.Now()
	idt, err := m.sign(jwt.MapClaims{
		"iss": m.opts.Issuer, "sub": "user-" + code[:min(2, len(code))] + "-mock", "aud": redirect,
		"email": "user@example.com", "name": "Mock User",
		"iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(),
	})
	if err != nil {
		WriteError(w, http.StatusInternalServerError, "SERVER_ERROR", "signing failed")
		return
	}
	Redirect(w, u, idt, q.Get("state"))
}

// Redirect answers authorize as Dintero does: 302 to target, with idToken
// and, when set, state added to its query.
func Redirect(w http.ResponseWriter, target *url.URL, idToken, state string) {
	u := *target
	q := u.Query()
	q.Set("id_token", idToken)
	if state != "" {
		q.Set("state", state)
	}
	u.RawQuery = q.Encode()
	w.Header().Set("Location", u.String())
	w.WriteHeader(http.StatusFound)
}

// jwks publishes the signing key, so that callers can verify id_tokens.
func (m *Mock) jwks(w http.ResponseWriter, _ *http.Request) {
	pub := m.opts.Key.PublicKey
	writeJSON(w, map[string]any{"keys": []map[string]string{{
		"kty": "RSA", "use": "sig", "alg": "RS256", "kid": m.kid,
		"n": base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
		"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
	}}})
}
