// Package dinterotest puts the one fake Dintero, internal/dinteromock, on
// a loopback server for tests, behind a wrapper that checks every request
// it receives against Dintero's spec (testdata, embedded) with kin-openapi,
// and the mock's answers against the same spec wherever the spec declares
// their status. Tests flip the mock's switches, or put a fault in front of
// it for one operation (Handle, HandleRaw).
package dinterotest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/dintero-facade/dintero-facade/internal/dinteromock"
	"github.com/dintero-facade/dintero-facade/upstream"
)

// spec is Dintero's auth API as the tests check it; testdata/SOURCE.md
// says where it comes from.
//
//go:embed testdata/management-auth.excerpt.reconstructed.oas3.yaml
var spec []byte

// The operations of the fake, named as in Dintero's spec: the
// operationIds upstream declares for the operations it calls, which New
// checks against the spec.
var (
	OpDelete    = upstream.OpDeleteClientGrant.OperationID()
	OpAuthorize = upstream.OpAuthorize.OperationID()
	OpToken     = upstream.OpToken.OperationID()
	OpKeys      = upstream.OpKeys.OperationID()
)

// The test data set: an API client of the test accounts that may
// administer them, and an application with a registered callback.
const (
	ClientID     = "fake-client-id"
	ClientSecret = "fake-client-secret-value"
	App          = "client-1"
	Callback     = "https://app.example.com/cb"
	// Callback2 is the application's second callback, with a query of its
	// own.
	Callback2 = "https://app.example.com/cb2?keep=1"
)

// Accounts are the accounts of the test data set.
func Accounts() []string {
	return []string{"T123", "T111", "T12345678", "P00000000", "P00000001", "P22222222", "T00000001", "T00000002"}
}

// Clients are the clients of the test data set: ClientID, an API client
// of Accounts that may administer them, and App, an application of
// Accounts with the callbacks Callback and Callback2.
func Clients() []dinteromock.Client {
	return []dinteromock.Client{
		{ID: ClientID, Secret: ClientSecret, Accounts: Accounts(), Scopes: []string{"admin:accounts"}},
		{ID: App, Secret: "app-secret", Accounts: Accounts(), Scopes: []string{"openid"}, Callbacks: []string{Callback, Callback2}},
	}
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
	// Mock configures the mock; its nil Clients, Grants and Codes take the
	// test data set (Clients, no grants, no codes), and its nil Key the
	// shared test key.
	Mock dinteromock.Options
}

// Server is the fake Dintero: the mock behind the spec check.
type Server struct {
	// URL is the base URL, ending in /v1, to give the facade.
	URL string
	// Mock is the mock that answers; tests flip its switches and read its
	// state.
	Mock *dinteromock.Mock

	t      testing.TB
	opts   Options
	srv    *httptest.Server
	router routers.Router

	mu       sync.Mutex
	requests []Request
	counts   map[string]int
	handlers map[string]http.HandlerFunc
	raw      map[string]bool
	bearers  map[string]string
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

var (
	keysOnce sync.Once
	keys     [2]*rsa.PrivateKey
	keysErr  error
)

// TestKeys returns two RSA keys shared by the tests of a binary, so that
// each fake does not spend a key generation: the first signs by default,
// the second is for rotations.
func TestKeys(t testing.TB) (*rsa.PrivateKey, *rsa.PrivateKey) {
	t.Helper()
	keysOnce.Do(func() {
		for i := range keys {
			if keys[i], keysErr = rsa.GenerateKey(rand.Reader, 2048); keysErr != nil {
				return
			}
		}
	})
	if keysErr != nil {
		t.Fatal(keysErr)
	}
	return keys[0], keys[1]
}

// testData completes o with the test data set.
func testData(t testing.TB, o dinteromock.Options) dinteromock.Options {
	t.Helper()
	if o.Clients == nil {
		o.Clients = Clients()
	}
	if o.Grants == nil {
		o.Grants = map[string][]dinteromock.Grant{}
	}
	if o.Codes == nil {
		o.Codes = []dinteromock.Code{}
	}
	if o.Key == nil {
		o.Key, _ = TestKeys(t)
	}
	return o
}

// New starts a fake Dintero on loopback; it is closed when the test ends.
func New(t testing.TB, opts ...Options) *Server {
	t.Helper()
	s := &Server{t: t, handlers: map[string]http.HandlerFunc{}, raw: map[string]bool{}, counts: map[string]int{}, bearers: map[string]string{}}
	if len(opts) > 0 {
		s.opts = opts[0]
	}
	m, err := dinteromock.New(testData(t, s.opts.Mock))
	if err != nil {
		t.Fatal(err)
	}
	s.Mock = m
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL + "/v1"
	doc, err := openapi3.NewLoader().LoadFromData(spec)
	if err != nil {
		t.Fatalf("dinterotest: loading the spec: %v", err)
	}
	doc.Servers = openapi3.Servers{{URL: s.URL}}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("dinterotest: the spec is invalid: %v", err)
	}
	for _, op := range []*upstream.Operation{upstream.OpDeleteClientGrant, upstream.OpAuthorize, upstream.OpToken, upstream.OpKeys} {
		if err := checkOperation(doc, op); err != nil {
			t.Fatalf("dinterotest: %v", err)
		}
	}
	if s.router, err = gorillamux.NewRouter(doc); err != nil {
		t.Fatalf("dinterotest: routing the spec: %v", err)
	}
	t.Cleanup(s.srv.Close)
	return s
}

// CheckOperation says how op, as upstream declares it, differs from
// Dintero's spec: its method and path template must be those of the
// spec's operation with its operationId.
func CheckOperation(op *upstream.Operation) error {
	doc, err := openapi3.NewLoader().LoadFromData(spec)
	if err != nil {
		return fmt.Errorf("loading the spec: %w", err)
	}
	return checkOperation(doc, op)
}

func checkOperation(doc *openapi3.T, op *upstream.Operation) error {
	if err := checkSpec(doc, op.OperationID(), op.Method(), op.Path()); err != nil {
		return fmt.Errorf("upstream's %s: %w", op, err)
	}
	return nil
}

// checkSpec says how the operation id at method and path differs from
// Dintero's spec.
func checkSpec(doc *openapi3.T, id, method, path string) error {
	for p, item := range doc.Paths.Map() {
		for m, o := range item.Operations() {
			if o.OperationID != id {
				continue
			}
			if p != path || m != method {
				return fmt.Errorf("%s is %s %s; Dintero's spec has it at %s %s", id, method, path, m, p)
			}
			return nil
		}
	}
	return fmt.Errorf("no operationId %q in Dintero's spec (internal/dinterotest/testdata)", id)
}

// Default lets the mock answer op again.
func (s *Server) Default(op string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.handlers, op)
	delete(s.raw, op)
}

// Handle answers op with h instead of the mock (h may pass the request on
// to s.Mock). The answer is still checked against the spec where the spec
// declares its status.
func (s *Server) Handle(op string, h http.HandlerFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handlers[op] = h
	s.raw[op] = false
}

// HandleRaw answers op with h, which writes to the connection itself (it
// may hijack it, stall or send broken bodies); its answer is not checked
// against the spec.
func (s *Server) HandleRaw(op string, h http.HandlerFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handlers[op] = h
	s.raw[op] = true
}

// OpenKeys answers the keys endpoint without checking the caller's token,
// for tests whose caller brings a token the mock refuses, to see what
// Dintero's other answers do with it. The answer is the mock's keys.
func (s *Server) OpenKeys() {
	s.Handle(OpKeys, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(s.Mock.PublicKeys())
	})
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

// Bearer returns an Authorization value a caller brings for account: a
// token of the mock for the account's audience with admin:accounts.
func (s *Server) Bearer(account string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b, ok := s.bearers[account]; ok {
		return b
	}
	tok, err := s.Mock.IssueToken("caller-"+account, dinteromock.Audience(account), []string{"admin:accounts"})
	if err != nil {
		s.t.Fatal(err)
	}
	s.bearers[account] = "Bearer " + tok
	return s.bearers[account]
}

// AddGrants gives account grants with ids, each with every field of
// Dintero's grant set.
func (s *Server) AddGrants(account string, ids ...string) {
	for _, id := range ids {
		if err := s.Mock.AddGrant(account, FullGrant(account, id)); err != nil {
			s.t.Fatal(err)
		}
	}
}

// AddCode adds verification code v, sent for App on account.
func (s *Server) AddCode(account, v string) {
	s.Mock.AddCode(dinteromock.Code{Value: v, ClientID: App, Account: account, Subject: "user-" + v, Email: "user@example.com", Name: "Test User"})
}

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
	// the tests want each segment as the client meant it.
	rec.Op, rec.PathParams = route.Operation.OperationID, make(map[string]string, len(params))
	for k, v := range params {
		if u, err := url.PathUnescape(v); err == nil {
			v = u
		}
		rec.PathParams[k] = v
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
	h, overridden := s.handlers[rec.Op]
	raw := s.raw[rec.Op]
	s.mu.Unlock()
	if !overridden {
		h = s.Mock.ServeHTTP
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
			s.t.Errorf("dinterotest: the %d answer to %s breaks Dintero's spec: %v", res.StatusCode, rec.Op, err)
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
// JWT, HTTP Basic for clientAuth. The mock checks the credentials.
func authenticate(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	h := in.RequestValidationInput.Request.Header.Get("Authorization")
	switch in.SecuritySchemeName {
	case "JWT":
		if len(h) <= len("Bearer ") || h[:len("Bearer ")] != "Bearer " {
			return fmt.Errorf("no Bearer token")
		}
	case "clientAuth":
		if len(h) < len("Basic ") || h[:len("Basic ")] != "Basic " {
			return fmt.Errorf("no Basic credentials")
		}
	default:
		return fmt.Errorf("unknown security scheme %q", in.SecuritySchemeName)
	}
	return nil
}

// RequestID is the request id of the fake's own fault answers.
const RequestID = "dintero-req-1"

// WriteError writes Dintero's error body with status and RequestID.
func WriteError(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Request-Id", RequestID)
	dinteromock.WriteError(w, status, code, message)
}

// FullGrant is a grant of account with every field of Dintero's grant set.
func FullGrant(account, id string) dinteromock.Grant {
	return dinteromock.Grant{
		ID: id, ClientID: "2a6b5f2e-client", Audience: dinteromock.Audience(account),
		Scope: []string{"admin:accounts", "write:checkout"}, Type: "authorization_code",
		OIDC:      &dinteromock.OIDC{ClientID: "oidc-client", ClientSecret: "oidc-secret-in-grant", Authority: "https://identityserver.example.com/access"},
		CreatedAt: mustTime("2024-01-02T01:04:05.123Z"), UpdatedAt: mustTime("2024-01-02T03:04:05Z"),
		CreatedBy: "user-creator",
	}
}

func mustTime(s string) (t time.Time) {
	t, _ = time.Parse(time.RFC3339, s)
	return t
}

// GrantJSON is a canned 200 body of a deleted grant with id, for fault
// answers that stand in for the mock.
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

// BasicAuth returns the Authorization value for id and secret.
func BasicAuth(id, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(id+":"+secret))
}
