package dinteromock

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// defaultTimeLayout is how the mock writes timestamps unless told
// otherwise: RFC 3339 in UTC with milliseconds.
const defaultTimeLayout = "2006-01-02T15:04:05.000Z07:00"

// grantDoc is Dintero's Grant JSON, written by the mock on its own.
type grantDoc struct {
	ID        string   `json:"id"`
	ClientID  string   `json:"client_id"`
	Audience  string   `json:"audience"`
	Scope     []string `json:"scope"`
	Type      string   `json:"type,omitempty"`
	OIDC      *OIDC    `json:"oidc,omitempty"`
	CreatedAt string   `json:"created_at,omitempty"`
	UpdatedAt string   `json:"updated_at,omitempty"`
	DeletedAt string   `json:"deleted_at,omitempty"`
	CreatedBy string   `json:"created_by,omitempty"`
	DeletedBy string   `json:"deleted_by,omitempty"`
}

func grantJSON(g Grant, layout string) grantDoc {
	if layout == "" {
		layout = defaultTimeLayout
	}
	ts := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(layout)
	}
	scope := g.Scope
	if scope == nil {
		scope = []string{}
	}
	return grantDoc{ID: g.ID, ClientID: g.ClientID, Audience: g.Audience, Scope: scope, Type: g.Type, OIDC: g.OIDC,
		CreatedAt: ts(g.CreatedAt), UpdatedAt: ts(g.UpdatedAt), DeletedAt: ts(g.DeletedAt), CreatedBy: g.CreatedBy, DeletedBy: g.DeletedBy}
}

// benchCreated is when the stateless mode's grants were made.
var benchCreated = time.Date(2024, 1, 2, 3, 4, 5, 123456000, time.UTC)

// deleteGrant answers aid_auths_client_grants_id_delete: with a token of
// the account holding admin:accounts or write:accounts, it deletes the
// grant and answers it with deleted_at and deleted_by set; a grant it does
// not hold (any more) is 404.
func (m *Mock) deleteGrant(w http.ResponseWriter, r *http.Request) {
	oid, id := r.PathValue("oid"), r.PathValue("id")
	ti, err := m.bearer(r, oid)
	if err != nil {
		writeError(w, http.StatusUnauthorized, "UNAUTHORIZED", err.Error())
		return
	}
	if !slices.Contains(ti.scopes, "admin:accounts") && !slices.Contains(ti.scopes, "write:accounts") {
		writeError(w, http.StatusForbidden, "FORBIDDEN", "the token needs the scope admin:accounts or write:accounts")
		return
	}
	var g Grant
	if m.opts.Stateless {
		g = Grant{ID: id, ClientID: "bench-client", Audience: Audience(oid), Scope: []string{"admin:accounts", "write:checkout"},
			Type: "client_credentials", CreatedAt: benchCreated, CreatedBy: "bench-admin"}
	} else {
		m.mu.Lock()
		held, ok := m.grants[oid][id]
		if ok {
			delete(m.grants[oid], id)
			g = *held
		}
		m.mu.Unlock()
		if !ok {
			writeError(w, http.StatusNotFound, "NOT_FOUND", "client grant not found")
			return
		}
	}
	now := m.opts.Now().UTC()
	g.DeletedAt, g.UpdatedAt, g.DeletedBy = now, now, ti.sub
	b := behaviourOf(r.Context())
	if b.DeleteNoContent {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	writeJSON(w, http.StatusOK, grantJSON(g, b.TimeLayout))
}

// authorizeParams are the query parameters of authorize.
var authorizeParams = []string{"audience", "scope", "response_type", "client_id", "state", "redirect_uri", "verification_code", "connection"}

// authorize answers aid_auths_oauth_authorize_post. A malformed request, an
// unknown application or a redirect_uri not registered for it is a 400 with
// Dintero's error body: there is nowhere safe to redirect. Otherwise it
// redirects to the redirect_uri (the application's first callback when the
// call names none): with an id_token when the verification code is one sent
// for this application and account and not yet used, else with OAuth's
// error.
func (m *Mock) authorize(w http.ResponseWriter, r *http.Request) {
	oid := r.PathValue("oid")
	if _, err := m.bearer(r, oid); err != nil {
		writeError(w, http.StatusUnauthorized, "UNAUTHORIZED", err.Error())
		return
	}
	q := r.URL.Query()
	var errs []fieldError
	for k, v := range q {
		switch {
		case !slices.Contains(authorizeParams, k):
			errs = append(errs, fieldError{Field: k, Message: "unknown query parameter"})
		case len(v) > 1:
			errs = append(errs, fieldError{Field: k, Message: "given more than once"})
		}
	}
	for _, p := range []string{"audience", "response_type", "client_id", "verification_code"} {
		if q.Get(p) == "" {
			errs = append(errs, fieldError{Field: p, Message: "required"})
		}
	}
	if rt := q.Get("response_type"); rt != "" && rt != "authenticate" {
		errs = append(errs, fieldError{Field: "response_type", Message: "must be authenticate"})
	}
	if s := q.Get("scope"); s != "" && s != "openid" {
		errs = append(errs, fieldError{Field: "scope", Message: "must be openid"})
	}
	if len(errs) > 0 {
		slices.SortFunc(errs, func(a, b fieldError) int { return strings.Compare(a.Field, b.Field) })
		writeError(w, http.StatusBadRequest, "INVALID_REQUEST", "the authorize request is not valid", errs...)
		return
	}
	m.mu.Lock()
	app, known := m.clients[q.Get("client_id")]
	m.mu.Unlock()
	if !known {
		writeError(w, http.StatusBadRequest, "INVALID_CLIENT", "unknown client", fieldError{Field: "client_id", Message: "no such client"})
		return
	}
	redirect := q.Get("redirect_uri")
	switch {
	case redirect != "" && !slices.Contains(app.Callbacks, redirect):
		writeError(w, http.StatusBadRequest, "INVALID_REDIRECT_URI", "redirect_uri is not a callback registered for the client",
			fieldError{Field: "redirect_uri", Message: "not registered for the client"})
		return
	case redirect == "" && len(app.Callbacks) == 0:
		writeError(w, http.StatusBadRequest, "INVALID_REDIRECT_URI", "the client has no registered callback: name a redirect_uri",
			fieldError{Field: "redirect_uri", Message: "required for this client"})
		return
	}
	target := redirect
	if target == "" {
		target = app.Callbacks[0]
	}
	b := behaviourOf(r.Context())
	state := q.Get("state")
	if !slices.Contains(app.Accounts, oid) || q.Get("audience") != Audience(oid) {
		answerRedirect(w, r, b, target, "error", "unauthorized_client", "error_description", "the client has no grant for the audience", "state", state)
		return
	}
	code, ok := m.spend(q.Get("verification_code"), app.ID, oid)
	if !ok {
		answerRedirect(w, r, b, target, "error", "access_denied", "error_description", "the verification code is invalid or was already used", "state", state)
		return
	}
	aud := redirect
	if aud == "" {
		aud = app.ID
	}
	idt, err := m.idToken(code, aud)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "SERVER_ERROR", "signing failed")
		return
	}
	answerRedirect(w, r, b, target, "id_token", idt, "state", state)
}

// spend uses verification code v for application app of account, once.
func (m *Mock) spend(v, app, account string) (Code, bool) {
	if m.opts.Stateless {
		return Code{Value: v, ClientID: app, Account: account, Subject: "bench-user", Email: "bench@example.com", Name: "Bench User"}, true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.codes[v]
	if c == nil || c.used || c.ClientID != app || c.Account != account {
		return Code{}, false
	}
	c.used = true
	return c.Code, true
}

// cachedIDToken is an id_token the stateless mode reuses while young.
type cachedIDToken struct {
	token string
	made  time.Time
}

// idTokenTTL is the lifetime of the id_tokens the mock signs.
const idTokenTTL = 10 * time.Minute

// idToken signs the id_token for a redeemed code: RS256 with the current
// key, claims sub, email, name, aud, iss, iat, exp and ext_*.
func (m *Mock) idToken(c Code, aud string) (string, error) {
	now := m.opts.Now()
	if m.opts.Stateless {
		m.mu.Lock()
		ct, ok := m.idTokens[aud]
		m.mu.Unlock()
		if ok && now.Sub(ct.made) < idTokenTTL/2 {
			return ct.token, nil
		}
	}
	claims := jwt.MapClaims{
		"iss": m.opts.Issuer, "sub": c.Subject, "aud": aud,
		"iat": now.Unix(), "exp": now.Add(idTokenTTL).Unix(),
	}
	if c.Email != "" {
		claims["email"] = c.Email
	}
	if c.Name != "" {
		claims["name"] = c.Name
	}
	for k, v := range c.Extra {
		claims["ext_"+k] = v
	}
	tok, err := m.sign(claims)
	if err == nil && m.opts.Stateless {
		m.mu.Lock()
		m.idTokens[aud] = cachedIDToken{token: tok, made: now}
		m.mu.Unlock()
	}
	return tok, err
}

// answerRedirect sends the browser to target with params (key, value
// pairs; empty values left out) in the shape b asks for.
func answerRedirect(w http.ResponseWriter, r *http.Request, b Behaviour, target string, params ...string) {
	vals := url.Values{}
	for i := 0; i+1 < len(params); i += 2 {
		if params[i+1] != "" {
			vals.Set(params[i], params[i+1])
		}
	}
	loc := target
	switch b.Authorize {
	case AnswerFragment:
		loc += "#" + vals.Encode()
	default:
		sep := "?"
		if strings.Contains(target, "?") {
			sep = "&"
		}
		loc += sep + vals.Encode()
	}
	if b.Authorize == AnswerJSON && strings.Contains(r.Header.Get("Accept"), "application/json") {
		writeJSON(w, http.StatusOK, map[string]string{"redirect_uri": loc})
		return
	}
	w.Header().Set("Location", loc)
	w.WriteHeader(http.StatusFound)
}
