// Package dinterotest is the one fake Dintero of the project's tests. It
// serves the three auth endpoints the facade uses on a loopback httptest
// server, checks every request it receives against Dintero's spec in
// ../shared/dintero with kin-openapi, and checks its own answers against the
// same spec wherever the spec declares their status.
package dinterotest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/dintero-facade/dintero-facade/internal/dinteromock"
)

// The operations of the fake, named as in Dintero's spec.
const (
	OpDelete    = "aid_auths_client_grants_id_delete"
	OpAuthorize = "aid_auths_oauth_authorize_post"
	OpToken     = "aid_auths_oauth_token_post"
)

// Default values the fake answers with.
const (
	ClientID     = "fake-client-id"
	ClientSecret = "fake-client-secret-value"
	IDToken      = "eyJhbGciOiJSUzI1NiJ9.fake-id-token.sig"
	RequestID    = "dintero-req-1"
)

// SpecPath returns the path of the reconstructed management-auth spec, found
// from the module root as ../shared/dintero/.
func SpecPath(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("dinterotest: go.mod not found above the test's directory")
		}
		dir = parent
	}
	p := filepath.Join(dir, "..", "shared", "dintero", "management-auth.excerpt.reconstructed.oas3.yaml")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("dinterotest: Dintero's spec is needed beside the repository: %v", err)
	}
	return p
}

// Request is a request the fake received.
type Request struct {
	Op         string
	Method     string
	EscapedURL string // path and query as sent
	Path       string // unescaped path
	Query      url.Values
	PathParams map[string]string
	Header     http.Header
	Body       []byte
}

// Options configure a Server.
type Options struct {
	// Lenient answers a request that breaks the spec with Dintero's 400
	// instead of failing the test, for tests that send such requests on
	// purpose.
	Lenient bool
	// CountOnly keeps only the count of requests per operation, not the
	// requests, so that a long load test's memory stays flat.
	CountOnly bool
	// Clients, when set, are the client credentials the token endpoint
	// accepts for each account ({client id, client secret} pairs, several
	// allowed, for rotations), instead of ClientID and ClientSecret for
	// any account; its tokens are then AccountToken(account, n).
	Clients map[string][][2]string
	// Backend, when set, answers every request that the spec admits,
	// instead of the fake's own handlers (Handle and HandleRaw then have no
	// effect). Its answers are checked against the spec too: this is how
	// the mock Dintero is held to the spec.
	Backend http.Handler
}

// Server is the fake Dintero. Its default handlers behave like Dintero on
// a good day; Handle replaces one.
type Server struct {
	// URL is the base URL, ending in /v1, to give the facade.
	URL string

	t      testing.TB
	opts   Options
	srv    *httptest.Server
	router routers.Router

	mu       sync.Mutex
	requests []Request
	counts   map[string]int
	handlers map[string]http.HandlerFunc
	raw      map[string]bool
	tokenN   int
	tokensOf map[string]int
}

// New starts a fake Dintero on loopback; it is closed when the test ends.
func New(t testing.TB, opts ...Options) *Server {
	t.Helper()
	s := &Server{t: t, handlers: map[string]http.HandlerFunc{}, raw: map[string]bool{}, counts: map[string]int{}}
	if len(opts) > 0 {
		s.opts = opts[0]
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL + "/v1"
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile(SpecPath(t))
	if err != nil {
		t.Fatalf("dinterotest: loading the spec: %v", err)
	}
	doc.Servers = openapi3.Servers{{URL: s.URL}}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("dinterotest: the spec is invalid: %v", err)
	}
	if s.router, err = gorillamux.NewRouter(doc); err != nil {
		t.Fatalf("dinterotest: routing the spec: %v", err)
	}
	for _, op := range []string{OpDelete, OpAuthorize, OpToken} {
		s.Default(op)
	}
	t.Cleanup(s.srv.Close)
	return s
}

// Default restores the fake's own handler of op.
func (s *Server) Default(op string) {
	h := map[string]http.HandlerFunc{OpDelete: s.deleteGrant, OpAuthorize: s.authorize, OpToken: s.token}[op]
	s.Handle(op, h)
}

// Handle replaces the handler of op. The answer is still checked against
// the spec where the spec declares its status.
func (s *Server) Handle(op string, h http.HandlerFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handlers[op] = h
	s.raw[op] = false
}

// HandleRaw replaces the handler of op with one that writes to the
// connection itself (it may hijack it, stall or send broken bodies); its
// answer is not checked against the spec.
func (s *Server) HandleRaw(op string, h http.HandlerFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handlers[op] = h
	s.raw[op] = true
}

// Requests returns the requests received so far, oldest first.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Count returns how many requests for op were received.
func (s *Server) Count(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[op]
}

// Close stops the server at once, so that later calls are refused.
func (s *Server) Close() { s.srv.Close() }

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	rec := Request{Method: r.Method, EscapedURL: r.URL.RequestURI(), Path: r.URL.Path, Query: r.URL.Query(), Header: r.Header.Clone(), Body: body}

	route, params, err := s.router.FindRoute(r)
	if err != nil {
		s.record(rec)
		s.refuse(w, fmt.Sprintf("no route in Dintero's spec for %s %s: %v", r.Method, r.URL.RequestURI(), err))
		return
	}
	// The router matches the escaped path and hands back escaped values;
	// the handlers and the tests want each segment as the client meant it.
	rec.Op, rec.PathParams = route.Operation.OperationID, make(map[string]string, len(params))
	for k, v := range params {
		if u, err := url.PathUnescape(v); err == nil {
			v = u
		}
		rec.PathParams[k] = v
		r.SetPathValue(k, v)
	}
	s.record(rec)

	in := &openapi3filter.RequestValidationInput{
		Request:    r,
		PathParams: params,
		Route:      route,
		Options:    &openapi3filter.Options{AuthenticationFunc: authenticate},
	}
	if err := openapi3filter.ValidateRequest(r.Context(), in); err != nil {
		s.refuse(w, fmt.Sprintf("%s breaks Dintero's spec: %v", rec.Op, err))
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))

	s.mu.Lock()
	h, raw := s.handlers[rec.Op], s.raw[rec.Op]
	s.mu.Unlock()
	if s.opts.Backend != nil {
		h, raw = s.opts.Backend.ServeHTTP, false
	}
	if raw {
		h(w, r)
		return
	}
	rw := httptest.NewRecorder()
	h(rw, r)
	res := rw.Result()
	if _, declared := route.Operation.Responses.Map()[fmt.Sprint(res.StatusCode)]; declared {
		out := &openapi3filter.ResponseValidationInput{
			RequestValidationInput: in,
			Status:                 res.StatusCode,
			Header:                 res.Header,
			Body:                   io.NopCloser(bytes.NewReader(rw.Body.Bytes())),
			Options:                &openapi3filter.Options{IncludeResponseStatus: true},
		}
		if err := openapi3filter.ValidateResponse(r.Context(), out); err != nil {
			s.t.Errorf("dinterotest: the fake's own %d answer to %s breaks Dintero's spec: %v", res.StatusCode, rec.Op, err)
		}
	}
	for k, v := range res.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(res.StatusCode)
	_, _ = w.Write(rw.Body.Bytes())
}

func (s *Server) record(r Request) {
	s.mu.Lock()
	s.counts[r.Op]++
	if !s.opts.CountOnly {
		s.requests = append(s.requests, r)
	}
	s.mu.Unlock()
}

// refuse answers a request that breaks the spec. Unless the server is
// lenient, that fails the test: the client sent something Dintero would not
// take.
func (s *Server) refuse(w http.ResponseWriter, msg string) {
	if !s.opts.Lenient {
		s.t.Errorf("dinterotest: %s", msg)
	}
	WriteError(w, http.StatusBadRequest, "BAD_REQUEST", msg)
}

// authenticate checks the security schemes of the spec: a Bearer token for
// JWT, HTTP Basic for clientAuth.
func authenticate(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	h := in.RequestValidationInput.Request.Header.Get("Authorization")
	switch in.SecuritySchemeName {
	case "JWT":
		if !strings.HasPrefix(h, "Bearer ") || len(h) == len("Bearer ") {
			return fmt.Errorf("no Bearer token")
		}
	case "clientAuth":
		if !strings.HasPrefix(h, "Basic ") {
			return fmt.Errorf("no Basic credentials")
		}
	default:
		return fmt.Errorf("unknown security scheme %q", in.SecuritySchemeName)
	}
	return nil
}

// WriteError writes Dintero's error body with status and the fake's
// request id.
func WriteError(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Request-Id", RequestID)
	dinteromock.WriteError(w, status, code, message)
}

// GrantJSON returns the grant the fake's DELETE answers with, for id: every
// field of Dintero's grant set, timestamps with offsets and fractions.
func GrantJSON(id string) []byte {
	b, _ := json.Marshal(map[string]any{
		"id":         id,
		"client_id":  "2a6b5f2e-client",
		"audience":   "https://api.dintero.com/v1/accounts/T12345678",
		"scope":      []string{"admin:accounts", "write:checkout"},
		"type":       "authorization_code",
		"oidc":       map[string]string{"client_id": "oidc-client", "client_secret": "oidc-secret-in-grant", "authority": "https://identityserver.example.com/access"},
		"created_at": "2024-01-02T03:04:05.123456+02:00",
		"updated_at": "2024-01-02T03:04:05Z",
		"deleted_at": "2026-11-26T06:00:00.5Z",
		"created_by": "user-creator",
		"deleted_by": "client-deleter",
	})
	return b
}

func (s *Server) deleteGrant(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Request-Id", RequestID)
	_, _ = w.Write(GrantJSON(id))
}

func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	target := q.Get("redirect_uri")
	if target == "" {
		target = "https://app.example.com/callback"
	}
	u, err := url.Parse(target)
	if err != nil {
		WriteError(w, http.StatusBadRequest, "INVALID_REDIRECT_URI", "redirect_uri is not a URL")
		return
	}
	w.Header().Set("Request-Id", RequestID)
	dinteromock.Redirect(w, u, IDToken, q.Get("state"))
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	user, pass, ok := r.BasicAuth()
	account := r.PathValue("oid")
	s.mu.Lock()
	clients := s.opts.Clients
	s.mu.Unlock()
	valid := ok && user == ClientID && pass == ClientSecret
	if clients != nil {
		valid = false
		for _, c := range clients[account] {
			valid = valid || (ok && c[0] == user && c[1] == pass)
		}
	}
	if !valid {
		WriteError(w, http.StatusUnauthorized, "INVALID_CLIENT", "client authentication failed")
		return
	}
	s.mu.Lock()
	s.tokenN++
	if s.tokensOf == nil {
		s.tokensOf = map[string]int{}
	}
	s.tokensOf[account]++
	n, na := s.tokenN, s.tokensOf[account]
	s.mu.Unlock()
	tok := AccessToken(n)
	if clients != nil {
		tok = AccountToken(account, na)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Request-Id", RequestID)
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": 3600})
}

// SetClients replaces Options.Clients, as a credentials rotation at Dintero.
func (s *Server) SetClients(c map[string][][2]string) {
	s.mu.Lock()
	s.opts.Clients = c
	s.mu.Unlock()
}

// TokensIssued returns how many tokens the fake issued for account.
func (s *Server) TokensIssued(account string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokensOf[account]
}

// AccountToken returns the n-th token the fake issues for account, from 1,
// when Options.Clients is set.
func AccountToken(account string, n int) string {
	return fmt.Sprintf("fake-access-token-%s-%d", account, n)
}

// AccessToken returns the n-th access token the fake issues, from 1.
func AccessToken(n int) string { return fmt.Sprintf("fake-access-token-%d", n) }

// BasicAuth returns the Authorization value for id and secret.
func BasicAuth(id, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(id+":"+secret))
}
