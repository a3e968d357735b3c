package service_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	authv1 "github.com/dintero-facade/dintero-facade/gen/dintero/auth/v1"
	"github.com/dintero-facade/dintero-facade/internal/dinterotest"
	"github.com/dintero-facade/dintero-facade/service"
	"github.com/dintero-facade/dintero-facade/upstream"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, dinterotest.LeakOptions()...)
}

type env struct {
	fake   *dinterotest.Server
	client authv1.AuthServiceClient
	log    *dinterotest.LogBuffer
	audit  *dinterotest.LogBuffer
}

// setup serves the service with its interceptor over an in-memory gRPC
// connection, calling the fake Dintero through the real upstream client.
func setup(t *testing.T, mod ...func(*upstream.Options)) *env {
	t.Helper()
	fake := dinterotest.New(t, dinterotest.Options{Lenient: true})
	tr := upstream.NewTransport(5 * time.Second)
	t.Cleanup(tr.CloseIdleConnections)
	opts := upstream.Options{BaseURL: fake.URL, BackoffBase: time.Millisecond, BackoffMax: 2 * time.Millisecond, Transport: tr}
	for _, m := range mod {
		m(&opts)
	}
	up, err := upstream.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	logs, audits := &dinterotest.LogBuffer{}, &dinterotest.LogBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	audit := slog.New(slog.NewJSONHandler(audits, nil))
	gs := grpc.NewServer(grpc.ChainUnaryInterceptor(service.Interceptor(service.InterceptorOptions{Log: log, Audit: audit})))
	authv1.RegisterAuthServiceServer(gs, service.New(up, service.Options{}))
	l := bufconn.Listen(1 << 20)
	go func() { _ = gs.Serve(l) }()
	t.Cleanup(gs.Stop)
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return l.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &env{fake: fake, client: authv1.NewAuthServiceClient(conn), log: logs, audit: audits}
}

func withToken(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer caller-token-7f3a")
}

var goodAuthorize = &authv1.AuthorizeRequest{
	Oid: "T12345678", Audience: "https://api.dintero.com/v1/accounts/T12345678", Scope: "openid",
	ResponseType: "authenticate", ClientId: "client-1", State: "s-1", RedirectUri: "https://app.example.com/cb",
	VerificationCode: "vc-4711-secret", Connection: "sms",
}

func TestValidation(t *testing.T) {
	e := setup(t)
	tests := []struct {
		name       string
		call       func(ctx context.Context) error
		wantFields []string
	}{
		{"delete ok oid T123", nil, nil},
		{"delete empty", func(ctx context.Context) error {
			_, err := e.client.DeleteClientGrant(ctx, &authv1.DeleteClientGrantRequest{})
			return err
		}, []string{"oid", "id"}},
		{"delete dot", func(ctx context.Context) error {
			_, err := e.client.DeleteClientGrant(ctx, &authv1.DeleteClientGrantRequest{Oid: "P00000000", Id: "."})
			return err
		}, []string{"id"}},
		{"delete dot dot", func(ctx context.Context) error {
			_, err := e.client.DeleteClientGrant(ctx, &authv1.DeleteClientGrantRequest{Oid: "P00000000", Id: ".."})
			return err
		}, []string{"id"}},
		{"authorize empty", func(ctx context.Context) error {
			_, err := e.client.Authorize(ctx, &authv1.AuthorizeRequest{})
			return err
		}, []string{"oid", "audience", "response_type", "client_id", "verification_code"}},
		{"authorize blank code", func(ctx context.Context) error {
			r := proto.Clone(goodAuthorize).(*authv1.AuthorizeRequest)
			r.VerificationCode = "  "
			_, err := e.client.Authorize(ctx, r)
			return err
		}, []string{"verification_code"}},
	}
	for _, oid := range []string{"P1234", "X123", "p00000000", "T12", "T1234567", "T123456789", "P00000000 ", "T12a", "PT123", "T１２３"} {
		tests = append(tests, struct {
			name       string
			call       func(ctx context.Context) error
			wantFields []string
		}{"oid " + oid, func(ctx context.Context) error {
			_, err := e.client.DeleteClientGrant(ctx, &authv1.DeleteClientGrantRequest{Oid: oid, Id: "g"})
			return err
		}, []string{"oid"}})
	}
	for _, tc := range tests {
		if tc.call == nil {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call(withToken(context.Background()))
			st := status.Convert(err)
			if st.Code() != codes.InvalidArgument {
				t.Fatalf("got %v; want InvalidArgument", err)
			}
			var got []string
			for _, d := range st.Details() {
				if br, ok := d.(*errdetails.BadRequest); ok {
					for _, f := range br.GetFieldViolations() {
						got = append(got, f.GetField())
						if !strings.Contains(st.Message(), f.GetField()+": ") {
							t.Errorf("message %q does not name %s", st.Message(), f.GetField())
						}
					}
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.wantFields) {
				t.Errorf("got bad fields %v; want %v", got, tc.wantFields)
			}
		})
	}
	if n := len(e.fake.Requests()); n != 0 {
		t.Errorf("Dintero got %d requests; want none", n)
	}
	for _, oid := range []string{"T123", "P00000000", "T99999999"} {
		if _, err := e.client.DeleteClientGrant(withToken(context.Background()), &authv1.DeleteClientGrantRequest{Oid: oid, Id: "g"}); err != nil {
			t.Errorf("oid %s: got %v; want success", oid, err)
		}
	}
}

func TestDeleteClientGrant(t *testing.T) {
	e := setup(t)
	ctx := metadata.AppendToOutgoingContext(withToken(context.Background()), "x-request-id", "caller-req-1")
	var header metadata.MD
	resp, err := e.client.DeleteClientGrant(ctx, &authv1.DeleteClientGrantRequest{Oid: "T12345678", Id: "grant-9"}, grpc.Header(&header))
	if err != nil {
		t.Fatal(err)
	}
	want := &authv1.ClientGrant{
		Id: "grant-9", ClientId: "2a6b5f2e-client", Audience: "https://api.dintero.com/v1/accounts/T12345678",
		Scope: []string{"admin:accounts", "write:checkout"}, Type: "authorization_code",
		Oidc:      &authv1.Oidc{ClientId: "oidc-client", ClientSecret: "oidc-secret-in-grant", Authority: "https://identityserver.example.com/access"},
		CreatedAt: timestamppb.New(time.Date(2024, 1, 2, 1, 4, 5, 123456000, time.UTC)),
		UpdatedAt: timestamppb.New(time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)),
		DeletedAt: timestamppb.New(time.Date(2026, 11, 26, 6, 0, 0, 500000000, time.UTC)),
		CreatedBy: "user-creator", DeletedBy: "client-deleter",
	}
	if diff := cmpProto(resp.GetGrant(), want); diff != "" {
		t.Errorf("grant differs: %s", diff)
	}
	if got := header.Get("x-request-id"); len(got) != 1 || got[0] != "caller-req-1" {
		t.Errorf("got response x-request-id %v; want caller-req-1", got)
	}
	r := e.fake.Requests()[0]
	if r.Header.Get("Authorization") != "Bearer caller-token-7f3a" || r.Header.Get("X-Request-Id") != "caller-req-1" {
		t.Errorf("Dintero got authorization %q, request id %q", r.Header.Get("Authorization"), r.Header.Get("X-Request-Id"))
	}
}

// cmpProto returns the difference between two messages, "" when equal.
func cmpProto(got, want proto.Message) string {
	return cmp.Diff(want, got, protocmp.Transform())
}

func TestMissingTimestampsStayUnset(t *testing.T) {
	e := setup(t)
	e.fake.HandleRaw(dinterotest.OpDelete, func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"id":"g","client_id":"c","audience":"a","scope":[],"unknown":true}`))
	})
	resp, err := e.client.DeleteClientGrant(withToken(context.Background()), &authv1.DeleteClientGrantRequest{Oid: "T123", Id: "g"})
	if err != nil {
		t.Fatal(err)
	}
	g := resp.GetGrant()
	if g.CreatedAt != nil || g.UpdatedAt != nil || g.DeletedAt != nil || g.Oidc != nil {
		t.Errorf("got %v; want no timestamps and no oidc", g)
	}
}

func TestAuthorize(t *testing.T) {
	e := setup(t)
	resp, err := e.client.Authorize(withToken(context.Background()), goodAuthorize)
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetIdToken() != dinterotest.IDToken || resp.GetQuery()["state"] != "s-1" || len(resp.GetQuery()) != 1 {
		t.Errorf("got %v; want id_token %q and query {state: s-1}", resp, dinterotest.IDToken)
	}
	if !strings.HasPrefix(resp.GetLocation(), "https://app.example.com/cb?") {
		t.Errorf("got location %q", resp.GetLocation())
	}
	q := e.fake.Requests()[0].Query
	for k, v := range map[string]string{"audience": goodAuthorize.Audience, "scope": "openid", "response_type": "authenticate", "client_id": "client-1", "state": "s-1", "redirect_uri": goodAuthorize.RedirectUri, "verification_code": goodAuthorize.VerificationCode, "connection": "sms"} {
		if q.Get(k) != v {
			t.Errorf("query %s: got %q; want %q", k, q.Get(k), v)
		}
	}
}

// errorCase is one row of the error mapping: what Dintero does, and what
// the caller must get.
type errorCase struct {
	name       string
	authorize  bool
	status     int
	header     map[string]string
	body       string
	raw        http.HandlerFunc // instead of status/body
	ctx        func() (context.Context, context.CancelFunc)
	mod        func(*upstream.Options)
	wantCode   codes.Code
	wantMsg    string // substring
	wantReason string // ErrorInfo reason; "" for no ErrorInfo
	wantRetry  time.Duration
}

func TestErrorMapping(t *testing.T) {
	dintero := func(code, msg string) string {
		return fmt.Sprintf(`{"error":{"code":%q,"message":%q}}`, code, msg)
	}
	stall := func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }
	cases := []errorCase{
		{name: "400", status: 400, body: dintero("invalid_request", "scope is not allowed"), wantCode: codes.InvalidArgument, wantMsg: "scope is not allowed", wantReason: "INVALID_REQUEST"},
		{name: "401", status: 401, body: dintero("unauthorized", "token expired"), wantCode: codes.Unauthenticated, wantMsg: "token expired", wantReason: "UNAUTHORIZED"},
		{name: "403", status: 403, body: dintero("forbidden", "missing scope"), wantCode: codes.PermissionDenied, wantMsg: "missing scope", wantReason: "FORBIDDEN"},
		{name: "404", status: 404, body: dintero("notFound", "grant not found"), wantCode: codes.NotFound, wantMsg: "grant not found", wantReason: "NOT_FOUND"},
		{name: "409", status: 409, body: dintero("conflict", "busy"), wantCode: codes.Aborted, wantMsg: "busy", wantReason: "CONFLICT"},
		{name: "422", status: 422, body: dintero("", "unprocessable"), wantCode: codes.InvalidArgument, wantMsg: "unprocessable", wantReason: "HTTP_422"},
		{name: "429", status: 429, header: map[string]string{"Retry-After": "30"}, body: dintero("rate-limited", "slow down"), wantCode: codes.ResourceExhausted, wantMsg: "slow down", wantReason: "RATE_LIMITED", wantRetry: 30 * time.Second},
		{name: "500", status: 500, body: dintero("server_error", "oops"), wantCode: codes.Internal, wantMsg: "oops", wantReason: "SERVER_ERROR"},
		{name: "501", status: 501, body: ``, wantCode: codes.Unimplemented, wantMsg: "HTTP 501", wantReason: "HTTP_501"},
		{name: "502", status: 502, body: `<html>bad gateway</html>`, wantCode: codes.Unavailable, wantMsg: "HTTP 502 Bad Gateway", wantReason: "HTTP_502"},
		{name: "503", status: 503, body: dintero("", "maintenance"), wantCode: codes.Unavailable, wantMsg: "maintenance", wantReason: "HTTP_503"},
		{name: "504", status: 504, body: ``, wantCode: codes.DeadlineExceeded, wantMsg: "HTTP 504", wantReason: "HTTP_504"},
		{name: "418 other 4xx", status: 418, body: ``, wantCode: codes.FailedPrecondition, wantMsg: "HTTP 418", wantReason: "HTTP_418"},
		{name: "505 other 5xx", status: 505, body: ``, wantCode: codes.Internal, wantMsg: "HTTP 505", wantReason: "HTTP_505"},
		{name: "3xx on delete", status: 302, body: ``, wantCode: codes.Internal, wantMsg: "unexpected response", wantReason: "HTTP_302"},
		{name: "undecodable success", status: 200, body: `{"id":`, wantCode: codes.Internal, wantMsg: "undecodable", wantReason: "HTTP_200"},
		{name: "body over the limit", status: 200, body: `{"id":"` + strings.Repeat("a", 4096) + `"}`, mod: func(o *upstream.Options) { o.MaxBodyBytes = 1024 }, wantCode: codes.Internal, wantMsg: "too large", wantReason: "HTTP_200"},
		{name: "authorize success without location", authorize: true, status: 302, body: ``, wantCode: codes.Internal, wantMsg: "Location", wantReason: "HTTP_302"},
		{name: "authorize 400", authorize: true, status: 400, body: dintero("invalid_scope", "scope must be openid"), wantCode: codes.InvalidArgument, wantMsg: "scope must be openid", wantReason: "INVALID_SCOPE"},
		{name: "transport failure", raw: func(w http.ResponseWriter, r *http.Request) {
			c, _, _ := w.(http.Hijacker).Hijack()
			c.Close()
		}, wantCode: codes.Unavailable, wantMsg: "transport failure"},
		{name: "our own timeout", raw: stall, mod: func(o *upstream.Options) { o.Timeout = 100 * time.Millisecond }, wantCode: codes.DeadlineExceeded},
		{name: "caller deadline", raw: stall, ctx: func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 100*time.Millisecond)
		}, wantCode: codes.DeadlineExceeded},
		{name: "caller gone", raw: stall, ctx: func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(100*time.Millisecond, cancel)
			return ctx, cancel
		}, wantCode: codes.Canceled},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var mods []func(*upstream.Options)
			if tc.mod != nil {
				mods = append(mods, tc.mod)
			}
			e := setup(t, mods...)
			h := tc.raw
			if h == nil {
				h = func(w http.ResponseWriter, r *http.Request) {
					for k, v := range tc.header {
						w.Header().Set(k, v)
					}
					w.Header().Set("Request-Id", "dintero-rid-5")
					w.WriteHeader(tc.status)
					_, _ = w.Write([]byte(tc.body))
				}
			}
			op := dinterotest.OpDelete
			if tc.authorize {
				op = dinterotest.OpAuthorize
			}
			e.fake.HandleRaw(op, h)
			ctx, cancel := context.Background(), context.CancelFunc(func() {})
			if tc.ctx != nil {
				ctx, cancel = tc.ctx()
			}
			defer cancel()
			ctx = withToken(ctx)
			var err error
			if tc.authorize {
				_, err = e.client.Authorize(ctx, goodAuthorize)
			} else {
				_, err = e.client.DeleteClientGrant(ctx, &authv1.DeleteClientGrantRequest{Oid: "T123", Id: "g"})
			}
			checkStatus(t, err, tc)
		})
	}
}

func checkStatus(t *testing.T, err error, tc errorCase) {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != tc.wantCode {
		t.Fatalf("got %v; want %v", err, tc.wantCode)
	}
	if !strings.Contains(st.Message(), tc.wantMsg) {
		t.Errorf("got message %q; want it to contain %q", st.Message(), tc.wantMsg)
	}
	var info *errdetails.ErrorInfo
	var retry *errdetails.RetryInfo
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			info = d
		case *errdetails.RetryInfo:
			retry = d
		}
	}
	switch {
	case tc.wantReason == "" && info != nil && tc.wantCode != codes.Canceled:
		t.Errorf("got ErrorInfo %v; want none", info)
	case tc.wantReason != "" && info == nil:
		t.Errorf("got no ErrorInfo; want reason %s", tc.wantReason)
	case info != nil:
		if info.GetReason() != tc.wantReason || info.GetDomain() != service.ErrorDomain || info.GetMetadata()["http_status"] != fmt.Sprint(tc.status) || info.GetMetadata()["dintero_request_id"] != "dintero-rid-5" {
			t.Errorf("got ErrorInfo %v; want reason %s, status %d, request id dintero-rid-5", info, tc.wantReason, tc.status)
		}
	}
	if got := retry.GetRetryDelay().AsDuration(); got != tc.wantRetry {
		t.Errorf("got RetryInfo %v; want %v", got, tc.wantRetry)
	}
}

// TestCodeForHTTP checks the HTTP to gRPC mapping of every status against
// testdata/http_codes.golden (go test -run TestCodeForHTTP -update rewrites it).
func TestCodeForHTTP(t *testing.T) {
	var b strings.Builder
	for s := 400; s < 600; s++ {
		if http.StatusText(s) == "" && s != 499 && s != 599 {
			continue
		}
		fmt.Fprintf(&b, "%d %s\n", s, service.CodeForHTTP(s))
	}
	path := filepath.Join("testdata", "http_codes.golden")
	if *update {
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if b.String() != string(want) {
		t.Errorf("got mapping:\n%s\nwant (%s):\n%s", b.String(), path, want)
	}
}

func TestReason(t *testing.T) {
	for _, tc := range []struct {
		code string
		want string
	}{
		{"NOT_FOUND", "NOT_FOUND"},
		{"not_found", "NOT_FOUND"},
		{"notFound", "NOT_FOUND"},
		{"not-found", "NOT_FOUND"},
		{"invalid grant type", "INVALID_GRANT_TYPE"},
		{"ERR42x", "ERR42X"},
		{"__x__", "X"},
		{"42", "HTTP_404"},
		{"", "HTTP_404"},
		{"ünïcode", "N_CODE"},
		{strings.Repeat("A", 80), strings.Repeat("A", 63)},
	} {
		if got := service.Reason(tc.code, 404); got != tc.want {
			t.Errorf("Reason(%q) = %q; want %q", tc.code, got, tc.want)
		}
	}
}

func TestAuth(t *testing.T) {
	creds := func(o *upstream.Options) {
		o.Credentials = []upstream.Credentials{{AccountID: "T123", ClientID: dinterotest.ClientID, ClientSecret: dinterotest.ClientSecret}}
	}
	t.Run("caller token", func(t *testing.T) {
		e := setup(t, creds)
		if _, err := e.client.DeleteClientGrant(withToken(context.Background()), &authv1.DeleteClientGrantRequest{Oid: "T123", Id: "g"}); err != nil {
			t.Fatal(err)
		}
		if got := e.fake.Requests(); len(got) != 1 || got[0].Header.Get("Authorization") != "Bearer caller-token-7f3a" {
			t.Errorf("got %d requests, auth %q; want only the delete, with the caller's token", len(got), got[0].Header.Get("Authorization"))
		}
	})
	t.Run("client credentials", func(t *testing.T) {
		e := setup(t, creds)
		if _, err := e.client.DeleteClientGrant(context.Background(), &authv1.DeleteClientGrantRequest{Oid: "T123", Id: "g"}); err != nil {
			t.Fatal(err)
		}
		if e.fake.Count(dinterotest.OpToken) != 1 || e.fake.Requests()[1].Header.Get("Authorization") != "Bearer "+dinterotest.AccessToken(1) {
			t.Errorf("got %v; want a token fetch, then the delete with its token", e.fake.Requests())
		}
	})
	t.Run("refused credentials", func(t *testing.T) {
		e := setup(t, func(o *upstream.Options) {
			o.Credentials = []upstream.Credentials{{AccountID: "T123", ClientID: "wrong", ClientSecret: "wrong-secret-1234"}}
		})
		_, err := e.client.DeleteClientGrant(context.Background(), &authv1.DeleteClientGrantRequest{Oid: "T123", Id: "g"})
		if st := status.Convert(err); st.Code() != codes.Unauthenticated || !strings.Contains(st.Message(), "client credentials") || strings.Contains(st.Message(), "wrong-secret") {
			t.Errorf("got %v; want Unauthenticated naming the facade's credentials", err)
		}
	})
	t.Run("neither", func(t *testing.T) {
		e := setup(t)
		_, err := e.client.Authorize(context.Background(), goodAuthorize)
		if status.Code(err) != codes.Unauthenticated {
			t.Errorf("got %v; want Unauthenticated", err)
		}
		if n := len(e.fake.Requests()); n != 0 {
			t.Errorf("Dintero got %d requests; want none", n)
		}
	})
}

// TestNoSecretsInLogsOrStatuses drives success, Dintero errors, a transport
// error and validation errors with distinctive secrets, and looks for them
// in the log and in every status.
func TestNoSecretsInLogsOrStatuses(t *testing.T) {
	const (
		token  = "tok-SECRET-d41d8cd9"
		code   = "vc-SECRET-8f00b204"
		idTok  = "idt-SECRET-e9800998"
		oidcCS = "oidc-SECRET-ecf8427e"
	)
	e := setup(t)
	var mode atomic.Value
	mode.Store("")
	e.fake.HandleRaw(dinterotest.OpAuthorize, func(w http.ResponseWriter, r *http.Request) {
		switch mode.Load().(string) {
		case "ok":
			w.Header().Set("Location", "https://app.example.com/cb?id_token="+idTok+"&state=s")
			w.WriteHeader(302)
		case "echo":
			// A Dintero message that echoes the request's secrets.
			dinterotest.WriteError(w, 400, "invalid_code", "verification_code "+code+" is invalid for token "+token)
		case "bad location":
			w.Header().Set("Location", "https://app.example.com/cb?id_token="+idTok+"%zz")
			w.WriteHeader(302)
		default:
			c, _, _ := w.(http.Hijacker).Hijack()
			c.Close()
		}
	})
	e.fake.HandleRaw(dinterotest.OpDelete, func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write(bytes.ReplaceAll(dinterotest.GrantJSON("g"), []byte("oidc-secret-in-grant"), []byte(oidcCS)))
	})
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token)
	req := proto.Clone(goodAuthorize).(*authv1.AuthorizeRequest)
	req.VerificationCode = code
	var statuses []string
	for _, m := range []string{"ok", "echo", "bad location", "reset"} {
		mode.Store(m)
		resp, err := e.client.Authorize(ctx, req)
		if m == "ok" && (err != nil || resp.GetIdToken() != idTok) {
			t.Fatalf("got %v, %v; want the id_token", resp, err)
		}
		if m != "ok" && err == nil {
			t.Fatalf("%s: got success; want an error", m)
		}
		statuses = append(statuses, fmt.Sprint(status.Convert(err).Proto()))
	}
	bad := proto.Clone(req).(*authv1.AuthorizeRequest)
	bad.Oid = "nope"
	_, err := e.client.Authorize(ctx, bad)
	statuses = append(statuses, fmt.Sprint(status.Convert(err).Proto()))
	resp, err := e.client.DeleteClientGrant(ctx, &authv1.DeleteClientGrantRequest{Oid: "T123", Id: "g"})
	if err != nil || resp.GetGrant().GetOidc().GetClientSecret() != oidcCS {
		t.Fatalf("got %v, %v; want the grant with its oidc secret", resp, err)
	}
	logs := e.log.String() + e.audit.String()
	if n, m := len(e.log.Lines(t)), len(e.audit.Lines(t)); n != 5 || m != 1 {
		t.Errorf("got %d call lines and %d audit lines; want one per call (5 Authorize, 1 DeleteClientGrant):\n%s", n, m, logs)
	}
	for _, secret := range []string{token, code, idTok, oidcCS} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log holds %s:\n%s", secret, logs)
		}
		for _, s := range statuses {
			if strings.Contains(s, secret) {
				t.Errorf("a status holds %s: %s", secret, s)
			}
		}
	}
	if !strings.Contains(statuses[1], "[REDACTED]") {
		t.Errorf("got %s; want Dintero's echoing message kept with the secrets masked", statuses[1])
	}
}

func TestLogLine(t *testing.T) {
	e := setup(t)
	ctx := metadata.AppendToOutgoingContext(withToken(context.Background()), "x-request-id", "caller-rid-77")
	if _, err := e.client.DeleteClientGrant(ctx, &authv1.DeleteClientGrantRequest{Oid: "T12345678", Id: "grant-5"}); err != nil {
		t.Fatal(err)
	}
	e.fake.HandleRaw(dinterotest.OpDelete, func(w http.ResponseWriter, r *http.Request) {
		dinterotest.WriteError(w, 404, "not_found", "no such grant")
	})
	_, err := e.client.DeleteClientGrant(withToken(context.Background()), &authv1.DeleteClientGrantRequest{Oid: "T123", Id: "gone"})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("got %v; want NotFound", err)
	}
	lines := e.audit.Lines(t)
	if len(lines) != 2 || len(e.log.Lines(t)) != 0 {
		t.Fatalf("got %d audit lines and %d call lines; want 2 and none: a DeleteClientGrant's line is its audit line", len(lines), len(e.log.Lines(t)))
	}
	want := []map[string]any{
		{"msg": "audit", "level": "INFO", "method": authv1.AuthService_DeleteClientGrant_FullMethodName, "code": "OK", "oid": "T12345678", "grant_id": "grant-5", "http_status": 200.0, "attempts": 1.0, "request_id": "caller-rid-77", "dintero_request_id": dinterotest.RequestID},
		{"msg": "audit", "level": "INFO", "code": "NotFound", "oid": "T123", "grant_id": "gone", "http_status": 404.0, "error": "no such grant", "dintero_request_id": dinterotest.RequestID},
	}
	for i, w := range want {
		for k, v := range w {
			if lines[i][k] != v {
				t.Errorf("line %d: %s = %v; want %v", i, k, lines[i][k], v)
			}
		}
		if _, ok := lines[i]["latency_ms"]; !ok {
			t.Errorf("line %d has no latency", i)
		}
	}
	if rid, _ := lines[1]["request_id"].(string); len(rid) != 32 {
		t.Errorf("got generated request id %q; want 32 hex digits", rid)
	}
}

func TestRecovery(t *testing.T) {
	logs := &dinterotest.LogBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	ic := service.Interceptor(service.InterceptorOptions{Log: log})
	info := &grpc.UnaryServerInfo{FullMethod: authv1.AuthService_Authorize_FullMethodName}
	_, err := ic(context.Background(), goodAuthorize, info, func(ctx context.Context, req any) (any, error) {
		panic("bad request " + req.(*authv1.AuthorizeRequest).GetVerificationCode())
	})
	if status.Code(err) != codes.Internal || strings.Contains(err.Error(), "vc-4711") {
		t.Errorf("got %v; want Internal without the panic value", err)
	}
	var nilMap map[string]int
	_, err = ic(context.Background(), goodAuthorize, info, func(ctx context.Context, req any) (any, error) {
		nilMap["x"] = 1
		return nil, nil
	})
	if status.Code(err) != codes.Internal {
		t.Errorf("got %v; want Internal", err)
	}
	out := logs.String()
	if strings.Contains(out, "vc-4711") {
		t.Errorf("the log holds the panic's secret:\n%s", out)
	}
	if !strings.Contains(out, "assignment to entry in nil map") || strings.Count(out, "service_test.TestRecovery") < 2 {
		t.Errorf("want both panics logged with their stacks, the runtime error's message too:\n%s", out)
	}
	if strings.Count(out, `"code":"Internal"`) != 2 || strings.Count(out, `"msg":"call"`) != 2 {
		t.Errorf("want one Internal call line per panic:\n%s", out)
	}
}

func TestInterceptedRunsTheInterceptor(t *testing.T) {
	var methods []string
	ic := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		methods = append(methods, info.FullMethod)
		return nil, errors.New("stopped by the interceptor")
	}
	srv := service.Intercepted(service.New(nil, service.Options{}), ic)
	if _, err := srv.DeleteClientGrant(context.Background(), &authv1.DeleteClientGrantRequest{}); err == nil {
		t.Error("got no error; want the interceptor's")
	}
	if _, err := srv.Authorize(context.Background(), &authv1.AuthorizeRequest{}); err == nil {
		t.Error("got no error; want the interceptor's")
	}
	want := []string{authv1.AuthService_DeleteClientGrant_FullMethodName, authv1.AuthService_Authorize_FullMethodName}
	sort.Strings(want)
	sort.Strings(methods)
	if fmt.Sprint(methods) != fmt.Sprint(want) {
		t.Errorf("got %v; want %v", methods, want)
	}
}

func TestAuditLine(t *testing.T) {
	e := setup(t)
	e.fake.HandleRaw(dinterotest.OpDelete, func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/missing") {
			dinterotest.WriteError(w, 404, "not_found", "no such grant")
			return
		}
		w.Header().Set("Request-Id", "drid-9")
		_, _ = w.Write(dinterotest.GrantJSON("g"))
	})
	ctx := metadata.AppendToOutgoingContext(withToken(context.Background()), "x-request-id", "rid-audit")
	if _, err := e.client.DeleteClientGrant(ctx, &authv1.DeleteClientGrantRequest{Oid: "T12345678", Id: "g"}); err != nil {
		t.Fatal(err)
	}
	_, _ = e.client.DeleteClientGrant(ctx, &authv1.DeleteClientGrantRequest{Oid: "T123", Id: "missing"})
	_, _ = e.client.DeleteClientGrant(ctx, &authv1.DeleteClientGrantRequest{Oid: "bad", Id: "x"})
	_, _ = e.client.Authorize(withToken(context.Background()), goodAuthorize)
	lines := e.audit.Lines(t)
	if len(lines) != 3 {
		t.Fatalf("got %d audit lines; want one per DeleteClientGrant (3), none for Authorize:\n%s", len(lines), e.audit.String())
	}
	want := []map[string]any{
		{"msg": "audit", "method": authv1.AuthService_DeleteClientGrant_FullMethodName, "oid": "T12345678", "grant_id": "g", "code": "OK", "http_status": 200.0, "request_id": "rid-audit", "dintero_request_id": "drid-9"},
		{"oid": "T123", "grant_id": "missing", "code": "NotFound", "http_status": 404.0, "dintero_request_id": dinterotest.RequestID},
		{"oid": "bad", "grant_id": "x", "code": "InvalidArgument"},
	}
	for i, w := range want {
		for k, v := range w {
			if lines[i][k] != v {
				t.Errorf("audit line %d: %s = %v; want %v", i, k, lines[i][k], v)
			}
		}
		caller, _ := lines[i]["caller"].(map[string]any)
		if caller["addr"] != "bufconn" || !strings.HasPrefix(fmt.Sprint(caller["user_agent"]), "grpc-go/") {
			t.Errorf("audit line %d: caller %v; want the peer address and user agent", i, caller)
		}
	}
}
