// Package dinteromock is the one fake Dintero: a local, stateful Dintero
// auth API serving the endpoints the facade uses (token, client-grant
// deletion, authorize, signing keys) as strictly as Dintero documents them.
// It checks each token's signature, expiry, audience and scopes, the account
// id pattern, the verification code's application and account, and the
// redirect_uri against the application's registered callbacks; it refuses
// with Dintero's error body, {"error": {"code", "message", "errors"}}.
//
// cmd/dintero-mock serves it, the facade's --mock flag starts it in
// process, the tests put it behind a spec-checking wrapper
// (internal/dinterotest), and the benchmark runs it in its fast, stateless
// mode. It writes Dintero's JSON shapes on its own and imports nothing of
// the facade, so it cannot agree with the facade's client by construction.
package dinteromock

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

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

// AuthorizeAnswer is how the mock answers a successful (or refused)
// authorize: each is a shape Dintero's documentation allows.
type AuthorizeAnswer string

const (
	// AnswerQuery is a 302 whose Location carries id_token (or OAuth's
	// error) in its query: the authorize page's documented answer.
	AnswerQuery AuthorizeAnswer = "query"
	// AnswerFragment is a 302 whose Location carries them in its fragment,
	// as for response_type=token ("location.hash").
	AnswerFragment AuthorizeAnswer = "fragment"
	// AnswerJSON is a 200 {"redirect_uri": "…"} to a request that accepts
	// application/json, as Dintero's sibling /auth/redirect answers (a 302
	// otherwise).
	AnswerJSON AuthorizeAnswer = "json"
)

// Behaviour are the switches a test or a demo may flip while the mock runs.
type Behaviour struct {
	Faults Faults
	// Authorize is the shape of authorize's answers; empty is AnswerQuery.
	Authorize AuthorizeAnswer
	// DeleteNoContent answers a deletion with 204 and no body instead of
	// the deleted grant.
	DeleteNoContent bool
	// TimeLayout formats the grant's timestamps (time.Format); empty is
	// RFC 3339 in UTC with milliseconds, such as 2023-11-07T05:31:56.123Z.
	TimeLayout string
}

// Options configure a Mock. Zero fields take the defaults of Defaults.
type Options struct {
	// Issuer is the iss of the tokens it signs.
	Issuer string
	// Clients are the API clients and applications it knows.
	Clients []Client
	// Grants are the grants of each account, by account id.
	Grants map[string][]Grant
	// Codes are the one-time verification codes authorize accepts, once
	// each.
	Codes []Code
	// TokenTTL is the lifetime of access tokens.
	TokenTTL time.Duration
	// Key signs the tokens; nil makes a new 2048-bit key.
	Key *rsa.PrivateKey
	// Now is the clock; nil is time.Now.
	Now func() time.Time
	// Stateless is the benchmark's fast mode: a deletion of any grant id
	// answers a freshly deleted grant and deletes nothing, any
	// verification code of the application is accepted and never spent,
	// and id_tokens are reused while young. Tokens are checked as always.
	Stateless bool
	// Behaviour are the initial switches.
	Behaviour Behaviour
}

// Mock is the mock's state and handler. It is safe for concurrent use.
type Mock struct {
	opts Options

	mu        sync.Mutex
	behaviour Behaviour
	clients   map[string]Client
	grants    map[string]map[string]*Grant // account → id → grant; deleted ones are gone
	codes     map[string]*codeState
	keys      []signingKey // every key it signed with, the current one last
	published []signingKey // what the keys endpoint lists
	verified  map[string]tokenInfo
	issued    map[string][]string // access tokens issued by the token endpoint, by account
	idTokens  map[string]cachedIDToken
}

type codeState struct {
	Code
	used bool
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
	if o.Codes == nil {
		o.Codes = d.Codes
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
	m := &Mock{
		opts:      o,
		behaviour: o.Behaviour,
		grants:    map[string]map[string]*Grant{},
		codes:     map[string]*codeState{},
		verified:  map[string]tokenInfo{},
		issued:    map[string][]string{},
		idTokens:  map[string]cachedIDToken{},
	}
	if err := m.SetClients(o.Clients); err != nil {
		return nil, err
	}
	for oid, gs := range o.Grants {
		for _, g := range gs {
			if err := m.AddGrant(oid, g); err != nil {
				return nil, err
			}
		}
	}
	for _, c := range o.Codes {
		m.AddCode(c)
	}
	k := newSigningKey(o.Key)
	m.keys, m.published = []signingKey{k}, []signingKey{k}

	return m, nil
}

// route finds the handler of a request by its escaped path, segment by
// segment, so that an id holding an escaped slash (%2F) is one segment, as
// Dintero's router takes it; the path values are set unescaped.
func (m *Mock) route(r *http.Request) (http.HandlerFunc, bool) {
	segs := strings.Split(r.URL.EscapedPath(), "/")
	if len(segs) < 6 || segs[0] != "" || segs[1] != "v1" || segs[2] != "accounts" || segs[4] != "auth" {
		return nil, false
	}
	vals := make([]string, len(segs))
	for i, s := range segs {
		v, err := url.PathUnescape(s)
		if err != nil {
			return nil, false
		}
		vals[i] = v
	}
	r.SetPathValue("oid", vals[3])
	switch {
	case len(segs) == 6 && vals[5] == "token" && r.Method == http.MethodPost:
		return m.token, true
	case len(segs) == 6 && vals[5] == "authorize" && r.Method == http.MethodPost:
		return m.authorize, true
	case len(segs) == 6 && vals[5] == "keys" && r.Method == http.MethodGet:
		return m.keysList, true
	case len(segs) == 7 && vals[5] == "client-grants" && vals[6] != "" && r.Method == http.MethodDelete:
		r.SetPathValue("id", vals[6])
		return m.deleteGrant, true
	}
	return nil, false
}

// SetClients replaces the clients, as a credentials rotation at Dintero.
func (m *Mock) SetClients(cs []Client) error {
	next := make(map[string]Client, len(cs))
	for i, c := range cs {
		if err := c.check(); err != nil {
			return fmt.Errorf("dinteromock: client %d: %w", i+1, err)
		}
		next[c.ID] = c
	}
	m.mu.Lock()
	m.clients = next
	m.mu.Unlock()
	return nil
}

// AddGrant adds (or replaces) a grant of account.
func (m *Mock) AddGrant(account string, g Grant) error {
	if !accountPattern.MatchString(account) || g.ID == "" {
		return fmt.Errorf("dinteromock: grant %q of account %q: needs an id and a Dintero account id", g.ID, account)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.grants[account] == nil {
		m.grants[account] = map[string]*Grant{}
	}
	m.grants[account][g.ID] = &g
	return nil
}

// HasGrant reports whether account still has grant id.
func (m *Mock) HasGrant(account, id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.grants[account][id]
	return ok
}

// AddCode adds a one-time verification code.
func (m *Mock) AddCode(c Code) {
	m.mu.Lock()
	m.codes[c.Value] = &codeState{Code: c}
	m.mu.Unlock()
}

// CodeUsed reports whether verification code v was spent.
func (m *Mock) CodeUsed(v string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.codes[v]
	return ok && c.used
}

// SetBehaviour flips the switches.
func (m *Mock) SetBehaviour(b Behaviour) {
	m.mu.Lock()
	m.behaviour = b
	m.mu.Unlock()
}

// Behaviour returns the switches in effect.
func (m *Mock) Behaviour() Behaviour {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.behaviour
}

// ServeHTTP applies the faults, then answers like Dintero.
func (m *Mock) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Request-Id", requestID())
	b := m.Behaviour()
	if h := r.Header.Get("Dintero-Mock-Fault"); h != "" {
		var err error
		if b, err = parseFaults(h, b); err != nil {
			writeError(w, http.StatusBadRequest, "BAD_MOCK_FAULT", err.Error())
			return
		}
	}
	f := b.Faults
	if f.Latency > 0 {
		t := time.NewTimer(f.Latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	if f.RateLimitRate > 0 && mrand.Float64() < f.RateLimitRate {
		if f.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(f.RetryAfter))
		}
		writeError(w, http.StatusTooManyRequests, "TOO_MANY_REQUESTS", "rate limit exceeded (mock fault)")
		return
	}
	if f.FailureRate > 0 && mrand.Float64() < f.FailureRate {
		writeError(w, http.StatusServiceUnavailable, "SERVICE_UNAVAILABLE", "unavailable (mock fault)")
		return
	}
	if oid, ok := accountOf(r.URL.Path); ok && !accountPattern.MatchString(oid) {
		writeError(w, http.StatusBadRequest, "INVALID_REQUEST", "the account id is not valid",
			fieldError{Field: "oid", Message: "must be P or T followed by exactly 3 or 8 digits"})
		return
	}
	h, ok := m.route(r)
	if !ok {
		writeError(w, http.StatusNotFound, "NOT_FOUND", "the mock serves only the auth endpoints the facade uses")
		return
	}
	h(w, r.WithContext(withBehaviour(r.Context(), b)))
}

// accountOf returns the {oid} of a path under /v1/accounts/.
func accountOf(path string) (string, bool) {
	rest, ok := strings.CutPrefix(path, "/v1/accounts/")
	if !ok {
		return "", false
	}
	oid, _, _ := strings.Cut(rest, "/")
	return oid, true
}

// parseFaults reads "latency=200ms; fail=0.5; rate-limit=1; retry-after=3;
// authorize=json" over base.
func parseFaults(s string, base Behaviour) (Behaviour, error) {
	b := base
	for _, part := range strings.Split(s, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			if strings.TrimSpace(part) == "" {
				continue
			}
			return b, fmt.Errorf("fault %q is not key=value", part)
		}
		var err error
		switch strings.TrimSpace(k) {
		case "latency":
			b.Faults.Latency, err = time.ParseDuration(v)
		case "fail":
			b.Faults.FailureRate, err = strconv.ParseFloat(v, 64)
		case "rate-limit":
			b.Faults.RateLimitRate, err = strconv.ParseFloat(v, 64)
		case "retry-after":
			b.Faults.RetryAfter, err = strconv.Atoi(v)
		case "authorize":
			switch a := AuthorizeAnswer(v); a {
			case AnswerQuery, AnswerFragment, AnswerJSON:
				b.Authorize = a
			default:
				err = fmt.Errorf("authorize=%s: want query, fragment or json", v)
			}
		default:
			err = fmt.Errorf("unknown fault %q (latency, fail, rate-limit, retry-after, authorize)", k)
		}
		if err != nil {
			return b, err
		}
	}
	return b, nil
}

func requestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "mock-" + base64.RawURLEncoding.EncodeToString(b[:])
}

// fieldError is one item of Dintero's error.errors.
type fieldError struct {
	Field   string `json:"field,omitempty"`
	Code    string `json:"code,omitempty"`
	Message string `json:"message"`
}

// writeError writes Dintero's error body,
// {"error": {"code", "message", "errors"}}, with status.
func writeError(w http.ResponseWriter, status int, code, message string, errs ...fieldError) {
	body := struct {
		Error struct {
			Code    string       `json:"code,omitempty"`
			Message string       `json:"message"`
			Errors  []fieldError `json:"errors,omitempty"`
		} `json:"error"`
	}{}
	body.Error.Code, body.Error.Message, body.Error.Errors = code, message, errs
	writeJSON(w, status, body)
}

// WriteError writes Dintero's error body with status, for tests that stand
// in for Dintero's refusals.
func WriteError(w http.ResponseWriter, status int, code, message string) {
	writeError(w, status, code, message)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "encoding the answer", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
