package dinteromock

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// signingKey is an RSA key the mock signs with, and its key id.
type signingKey struct {
	kid string
	key *rsa.PrivateKey
}

func newSigningKey(k *rsa.PrivateKey) signingKey {
	sum := sha256.Sum256(k.N.Bytes())
	return signingKey{kid: hex.EncodeToString(sum[:20]), key: k}
}

// RotateKey makes k (a new 2048-bit key when nil) the signing key. The keys
// endpoint then lists k alone, or k after the older keys when keepOld is
// set. Access tokens signed before stay valid until they expire.
func (m *Mock) RotateKey(k *rsa.PrivateKey, keepOld bool) error {
	if k == nil {
		var err error
		if k, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			return err
		}
	}
	sk := newSigningKey(k)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.keys = append(m.keys, sk)
	if keepOld {
		m.published = append(m.published, sk)
	} else {
		m.published = []signingKey{sk}
	}
	clear(m.idTokens)
	return nil
}

// KeyID returns the id of the current signing key.
func (m *Mock) KeyID() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.keys[len(m.keys)-1].kid
}

// sign signs claims with the current key.
func (m *Mock) sign(c jwt.MapClaims) (string, error) {
	m.mu.Lock()
	k := m.keys[len(m.keys)-1]
	m.mu.Unlock()
	t := jwt.NewWithClaims(jwt.SigningMethodRS256, c)
	t.Header["kid"] = k.kid
	return t.SignedString(k.key)
}

// IssueToken signs an access token for audience with scopes, as the token
// endpoint would for a client: for tests and demos that call as a caller
// with its own token.
func (m *Mock) IssueToken(subject, audience string, scopes []string) (string, error) {
	now := m.opts.Now()
	// jti makes each token unique, as Dintero's are, even when two are
	// signed in the same second for the same client.
	var jti [12]byte
	_, _ = rand.Read(jti[:])
	return m.sign(jwt.MapClaims{
		"iss": m.opts.Issuer, "sub": subject, "aud": audience,
		"scope": strings.Join(scopes, " "), "jti": hex.EncodeToString(jti[:]),
		"iat": now.Unix(), "exp": now.Add(m.opts.TokenTTL).Unix(),
	})
}

// IssuedTokens returns the access tokens the token endpoint issued for
// account, oldest first.
func (m *Mock) IssuedTokens(account string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.issued[account])
}

// tokenInfo is what a verified access token says.
type tokenInfo struct {
	sub, aud string
	scopes   []string
	exp      time.Time
}

// maxVerified bounds the cache of verified tokens.
const maxVerified = 4096

// bearer checks the request's access token: signed by one of the mock's
// keys with RS256, its issuer, not expired, and for account's audience.
// Verified tokens are cached, so the benchmark does not measure RSA.
func (m *Mock) bearer(r *http.Request, account string) (tokenInfo, error) {
	raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || raw == "" {
		return tokenInfo{}, errors.New("no Bearer token")
	}
	now := m.opts.Now()
	m.mu.Lock()
	ti, cached := m.verified[raw]
	m.mu.Unlock()
	if !cached {
		claims := jwt.MapClaims{}
		_, err := jwt.ParseWithClaims(raw, claims, m.keyFor,
			jwt.WithValidMethods([]string{"RS256"}), jwt.WithIssuer(m.opts.Issuer), jwt.WithExpirationRequired(), jwt.WithTimeFunc(m.opts.Now))
		if err != nil {
			return tokenInfo{}, errors.New("the token is not valid")
		}
		sub, _ := claims["sub"].(string)
		aud, _ := claims["aud"].(string)
		scope, _ := claims["scope"].(string)
		exp, _ := claims.GetExpirationTime()
		ti = tokenInfo{sub: sub, aud: aud, scopes: strings.Fields(scope), exp: exp.Time}
		m.mu.Lock()
		if len(m.verified) >= maxVerified {
			clear(m.verified)
		}
		m.verified[raw] = ti
		m.mu.Unlock()
	}
	if !now.Before(ti.exp) {
		return tokenInfo{}, errors.New("the token has expired")
	}
	if ti.aud != Audience(account) {
		return tokenInfo{}, errors.New("the token's audience is not this account")
	}
	return ti, nil
}

// keyFor finds the public key of a token by its kid.
func (m *Mock) keyFor(t *jwt.Token) (any, error) {
	kid, _ := t.Header["kid"].(string)
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, k := range m.keys {
		if k.kid == kid {
			return &k.key.PublicKey, nil
		}
	}
	return nil, errors.New("unknown key")
}

// token issues an access token for client credentials (HTTP Basic): to a
// client of the path's account, for that account's audience.
func (m *Mock) token(w http.ResponseWriter, r *http.Request) {
	oid := r.PathValue("oid")
	id, secret, ok := r.BasicAuth()
	m.mu.Lock()
	c, known := m.clients[id]
	m.mu.Unlock()
	if !ok || !known || c.Secret != secret {
		writeError(w, http.StatusUnauthorized, "INVALID_CLIENT", "client authentication failed")
		return
	}
	var body struct {
		GrantType string `json:"grant_type"`
		Audience  string `json:"audience"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&body); err != nil {
		writeError(w, http.StatusBadRequest, "INVALID_REQUEST", "the body is not a JSON object")
		return
	}
	var errs []fieldError
	if body.GrantType != "client_credentials" {
		errs = append(errs, fieldError{Field: "grant_type", Message: "must be client_credentials"})
	}
	if body.Audience == "" {
		errs = append(errs, fieldError{Field: "audience", Message: "required"})
	}
	if len(errs) > 0 {
		writeError(w, http.StatusBadRequest, "INVALID_REQUEST", "the token request is not valid", errs...)
		return
	}
	if !slices.Contains(c.Accounts, oid) || body.Audience != Audience(oid) {
		writeError(w, http.StatusForbidden, "ACCESS_DENIED", "the client has no grant for the audience at this account")
		return
	}
	tok, err := m.IssueToken(c.ID, body.Audience, c.Scopes)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "SERVER_ERROR", "signing failed")
		return
	}
	m.mu.Lock()
	if !m.opts.Stateless {
		m.issued[oid] = append(m.issued[oid], tok)
	}
	m.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": int64(m.opts.TokenTTL / time.Second)})
}

// keysList answers Dintero's aid_auths_keys_get to a valid token of the
// account.
func (m *Mock) keysList(w http.ResponseWriter, r *http.Request) {
	if _, err := m.bearer(r, r.PathValue("oid")); err != nil {
		writeError(w, http.StatusUnauthorized, "UNAUTHORIZED", err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(m.PublicKeys())
}

// PublicKeys returns the keys endpoint's answer: a JSON array of the RSA
// signing keys, not a {"keys": […]} set.
func (m *Mock) PublicKeys() []byte {
	m.mu.Lock()
	keys := slices.Clone(m.published)
	m.mu.Unlock()
	out := make([]map[string]string, 0, len(keys))
	for _, k := range keys {
		pub := k.key.PublicKey
		out = append(out, map[string]string{
			"alg": "RS256", "kty": "RSA", "use": "sig", "kid": k.kid,
			"n": base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
			"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
		})
	}
	b, _ := json.Marshal(out)
	return b
}

type behaviourKey struct{}

func withBehaviour(ctx context.Context, b Behaviour) context.Context {
	return context.WithValue(ctx, behaviourKey{}, b)
}

func behaviourOf(ctx context.Context) Behaviour {
	b, _ := ctx.Value(behaviourKey{}).(Behaviour)
	return b
}
