package service_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	authv1 "github.com/dintero-facade/dintero-facade/gen/dintero/auth/v1"
	"github.com/dintero-facade/dintero-facade/internal/dinterotest"
	"github.com/dintero-facade/dintero-facade/internal/mask"
	"github.com/dintero-facade/dintero-facade/service"
	"github.com/dintero-facade/dintero-facade/upstream"
)

// errorCase is one row of the error mapping: what Dintero does, and what
// the caller must get.
type errorCase struct {
	name       string
	authorize  bool
	tokenFetch bool // the facade's own token fetch answers, and the call brings no token
	keys       bool // the keys endpoint answers, before authorize
	status     int
	header     map[string]string
	body       string
	loc        string           // Location of a 3xx
	raw        http.HandlerFunc // instead of status/body
	ctx        func() (context.Context, context.CancelFunc)
	mod        func(*upstream.Options, *service.Options)
	wantCode   codes.Code
	wantMsg    string // substring
	wantDomain string
	wantReason string
	wantMeta   map[string]string // a subset of the ErrorInfo's metadata
	wantRetry  time.Duration
	wantFields []string // BadRequest's fields
	wantErrors int      // DinteroError's errors; -1 for no DinteroError
	wantRID    string   // ErrorInfo's dintero_request_id
}

func TestErrorMapping(t *testing.T) {
	dintero := func(code, msg string) string {
		return fmt.Sprintf(`{"error":{"code":%q,"message":%q}}`, code, msg)
	}
	const d, f = service.ErrorDomain, service.ErrorDomain
	cases := []errorCase{
		{name: "400", status: 400, body: dintero("invalid_request", "scope is not allowed"), wantCode: codes.InvalidArgument, wantMsg: "scope is not allowed", wantDomain: d, wantReason: service.ErrorReasonDintero, wantMeta: map[string]string{"dinteroHttpStatus": "400", "dinteroCode": "invalid_request"}},
		{name: "400 with errors", status: 400, body: `{"error":{"code":"INVALID","message":"bad","errors":[{"field":"id","message":"too long"},{"path":["a","b"],"code":"x"},{"detail":"no field"}]}}`,
			wantCode: codes.InvalidArgument, wantMsg: "bad", wantDomain: d, wantReason: service.ErrorReasonDintero, wantFields: []string{"id", "a.b"}, wantErrors: 3},
		{name: "401", status: 401, body: dintero("unauthorized", "token expired"), wantCode: codes.Unauthenticated, wantMsg: "token expired", wantDomain: d, wantReason: service.ErrorReasonDintero},
		{name: "403", status: 403, body: dintero("forbidden", "missing scope"), wantCode: codes.PermissionDenied, wantMsg: "missing scope", wantDomain: d, wantReason: service.ErrorReasonDintero},
		{name: "404", status: 404, body: dintero("notFound", "grant not found"), wantCode: codes.NotFound, wantMsg: "grant not found", wantDomain: d, wantReason: service.ErrorReasonDintero, wantMeta: map[string]string{"dinteroCode": "notFound"}},
		{name: "409", status: 409, body: dintero("conflict", "busy"), wantCode: codes.Aborted, wantMsg: "busy", wantDomain: d, wantReason: service.ErrorReasonDintero},
		{name: "422", status: 422, body: dintero("", "unprocessable"), wantCode: codes.InvalidArgument, wantMsg: "unprocessable", wantDomain: d, wantReason: service.ErrorReasonDintero},
		{name: "429", status: 429, header: map[string]string{"Retry-After": "30"}, body: dintero("rate-limited", "slow down"), mod: func(o *upstream.Options, _ *service.Options) { o.MaxAttempts = 1 },
			wantCode: codes.ResourceExhausted, wantMsg: "slow down", wantDomain: d, wantReason: service.ErrorReasonDintero, wantRetry: 30 * time.Second},
		{name: "500", status: 500, body: dintero("server_error", "oops"), wantCode: codes.Internal, wantMsg: "oops", wantDomain: d, wantReason: service.ErrorReasonDintero},
		{name: "501", status: 501, body: ``, wantCode: codes.Unimplemented, wantMsg: "HTTP 501", wantDomain: d, wantReason: service.ErrorReasonDintero, wantErrors: -1},
		{name: "502", status: 502, body: `<html>bad gateway</html>`, wantCode: codes.Unavailable, wantMsg: "HTTP 502 Bad Gateway", wantDomain: d, wantReason: service.ErrorReasonDintero, wantErrors: -1,
			wantMeta: map[string]string{"uncertainAttempts": "HTTP 502; HTTP 502; HTTP 502"}},
		{name: "503", status: 503, body: dintero("", "maintenance"), wantCode: codes.Unavailable, wantMsg: "maintenance", wantDomain: d, wantReason: service.ErrorReasonDintero},
		{name: "504", status: 504, body: ``, wantCode: codes.DeadlineExceeded, wantMsg: "HTTP 504", wantDomain: d, wantReason: service.ErrorReasonDintero, wantErrors: -1},
		{name: "418 other 4xx", status: 418, body: ``, wantCode: codes.FailedPrecondition, wantMsg: "HTTP 418", wantDomain: d, wantReason: service.ErrorReasonDintero, wantErrors: -1},
		{name: "505 other 5xx", status: 505, body: ``, wantCode: codes.Internal, wantMsg: "HTTP 505", wantDomain: d, wantReason: service.ErrorReasonDintero, wantErrors: -1},
		{name: "3xx on delete", status: 302, body: ``, wantCode: codes.Internal, wantMsg: "unexpected response", wantDomain: d, wantReason: service.ErrorReasonUnusableAnswer, wantMeta: map[string]string{"dinteroHttpStatus": "302"}, wantErrors: -1},
		{name: "authorize 400", authorize: true, status: 400, body: dintero("invalid_scope", "scope must be openid"), wantCode: codes.InvalidArgument, wantMsg: "scope must be openid", wantDomain: d, wantReason: service.ErrorReasonDintero, wantMeta: map[string]string{"verificationCodeSent": "true"}},
		{name: "authorize 302 without a Location", authorize: true, status: 302, wantCode: codes.Internal, wantMsg: "no redirect", wantDomain: d, wantReason: service.ErrorReasonUnusableAnswer, wantMeta: map[string]string{"verificationCodeSent": "true", "dinteroHttpStatus": "302"}, wantErrors: -1},
		{name: "authorize 200 neither a redirect nor JSON", authorize: true, status: 200, body: `<html>`, wantCode: codes.Internal, wantMsg: "no redirect", wantDomain: d, wantReason: service.ErrorReasonUnusableAnswer, wantMeta: map[string]string{"verificationCodeSent": "true"}, wantErrors: -1},
		{name: "authorize: a redirect without a token", authorize: true, status: 302, loc: "https://app.example.com/cb?state=s-1", wantCode: codes.Internal, wantMsg: "neither a token nor an error", wantDomain: d, wantReason: service.ErrorReasonUnusableAnswer, wantMeta: map[string]string{"verificationCodeSent": "true"}, wantErrors: -1},
		{name: "authorize: OAuth's access_denied", authorize: true, status: 302, loc: "https://app.example.com/cb?error=access_denied&error_description=bad+code&state=s-1", wantCode: codes.PermissionDenied, wantMsg: "access_denied: bad code", wantDomain: d, wantReason: service.ErrorReasonOAuthError,
			wantMeta: map[string]string{"verificationCodeSent": "true", "oauthError": "access_denied", "oauthErrorDescription": "bad code", "oauthState": "s-1", "dinteroHttpStatus": "302"}, wantErrors: -1},
		{name: "authorize: OAuth's temporarily_unavailable in the fragment", authorize: true, status: 302, loc: "https://app.example.com/cb#error=temporarily_unavailable", wantCode: codes.Unavailable, wantDomain: d, wantReason: service.ErrorReasonOAuthError, wantMeta: map[string]string{"verificationCodeSent": "true"}, wantErrors: -1},
		{name: "authorize: an unknown OAuth error", authorize: true, status: 302, loc: "https://app.example.com/cb?error=weird.thing", wantCode: codes.Unknown, wantDomain: d, wantReason: service.ErrorReasonOAuthError, wantMeta: map[string]string{"oauthError": "weird.thing"}, wantErrors: -1},
		{name: "transport failure", raw: func(w http.ResponseWriter, r *http.Request) {
			c, _, _ := w.(http.Hijacker).Hijack()
			c.Close()
		}, wantCode: codes.Unavailable, wantMsg: "transport failure", wantDomain: f, wantReason: service.ErrorReasonTransport, wantErrors: -1},
		{name: "authorize: transport failure", authorize: true, raw: dinterotest.Reset, wantCode: codes.Unavailable, wantDomain: f, wantReason: service.ErrorReasonTransport, wantMeta: map[string]string{"verificationCodeSent": "true"}, wantErrors: -1},
		{name: "authorize: refused connection", authorize: true, mod: func(o *upstream.Options, _ *service.Options) { o.BaseURL = dinterotest.RefusingURL(t) },
			wantCode: codes.Unavailable, wantMsg: "transport failure", wantDomain: f, wantReason: service.ErrorReasonSigningKeys, wantMeta: map[string]string{"verificationCodeSent": "false"}, wantErrors: -1},
		{name: "authorize: the keys endpoint fails", authorize: true, keys: true, status: 503, body: dintero("", "maintenance"),
			wantCode: codes.Unavailable, wantMsg: "signing keys", wantDomain: f, wantReason: service.ErrorReasonSigningKeys, wantMeta: map[string]string{"verificationCodeSent": "false"}, wantErrors: -1},
		{name: "authorize: the keys endpoint answers no keys", authorize: true, keys: true, status: 200, body: `<html>`,
			wantCode: codes.Unavailable, wantMsg: "signing keys", wantDomain: f, wantReason: service.ErrorReasonSigningKeys, wantMeta: map[string]string{"verificationCodeSent": "false"}, wantErrors: -1},
		{name: "authorize: the keys endpoint refuses the caller's token", authorize: true, keys: true, status: 401, body: dintero("unauthorized", "token expired"),
			wantCode: codes.Unauthenticated, wantMsg: "token expired", wantDomain: d, wantReason: service.ErrorReasonDintero, wantMeta: map[string]string{"verificationCodeSent": "false", "dinteroHttpStatus": "401"}},
		{name: "our own timeout", raw: dinterotest.Stall, mod: func(o *upstream.Options, _ *service.Options) { o.Timeout = 100 * time.Millisecond }, wantCode: codes.DeadlineExceeded, wantDomain: f, wantReason: service.ErrorReasonDeadline, wantErrors: -1},
		// A deadline of 1 s keeps 100 ms for the answer's way back, which a
		// loaded machine does not overrun (300 ms kept 30 ms, and the
		// caller got a bare DeadlineExceeded under load, on both rows).
		{name: "caller deadline", raw: dinterotest.Stall, ctx: func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), time.Second)
		}, wantCode: codes.DeadlineExceeded, wantDomain: f, wantReason: service.ErrorReasonDeadline, wantErrors: -1},
		{name: "authorize: caller deadline, the code sent", authorize: true, raw: dinterotest.Stall, ctx: func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), time.Second)
		}, wantCode: codes.DeadlineExceeded, wantDomain: f, wantReason: service.ErrorReasonDeadline, wantMeta: map[string]string{"verificationCodeSent": "true"}, wantErrors: -1},
		{name: "the facade's credentials refused with 403", tokenFetch: true, mod: credentials, status: 403, body: dintero("forbidden", "no grant for the audience"),
			wantCode: codes.Internal, wantMsg: "Dintero refused the facade's client credentials", wantDomain: d, wantReason: service.ErrorReasonFacadeCredentialsRejected,
			wantMeta: map[string]string{"tokenFetch": "true", "dinteroHttpStatus": "403", "dinteroCode": "forbidden"}},
		{name: "caller gone", raw: dinterotest.Stall, ctx: func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(100*time.Millisecond, cancel)
			return ctx, cancel
		}, wantCode: codes.Canceled, wantErrors: -1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var mods []func(*upstream.Options, *service.Options)
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
					if tc.loc != "" {
						w.Header().Set("Location", tc.loc)
					}
					w.Header().Set("Request-Id", "dintero-rid-5")
					w.WriteHeader(tc.status)
					_, _ = w.Write([]byte(tc.body))
				}
			}
			op := dinterotest.OpDelete
			switch {
			case tc.tokenFetch:
				op = dinterotest.OpToken
			case tc.keys:
				op = dinterotest.OpKeys
			case tc.authorize:
				op = dinterotest.OpAuthorize
			}
			e.fake.HandleRaw(op, h)
			ctx, cancel := context.Background(), context.CancelFunc(func() {})
			if tc.ctx != nil {
				ctx, cancel = tc.ctx()
			}
			defer cancel()
			if !tc.tokenFetch {
				ctx = e.withToken(ctx, "T123")
			}
			var err error
			if tc.authorize {
				_, err = e.client.Authorize(ctx, goodAuthorize())
			} else {
				_, err = e.client.DeleteClientGrant(ctx, &authv1.DeleteClientGrantRequest{Oid: "T123", Id: "g"})
			}
			if tc.raw == nil && slices.Contains([]string{service.ErrorReasonDintero, service.ErrorReasonOAuthError, service.ErrorReasonFacadeCredentialsRejected, service.ErrorReasonUnusableAnswer}, tc.wantReason) {
				tc.wantRID = "dintero-rid-5"
			}
			checkStatus(t, status.Convert(err), tc)
		})
	}
}

func checkStatus(t *testing.T, st *status.Status, tc errorCase) {
	t.Helper()
	if st.Code() != tc.wantCode {
		t.Fatalf("got %v; want %v", st.Err(), tc.wantCode)
	}
	if !strings.Contains(st.Message(), tc.wantMsg) {
		t.Errorf("got message %q; want it to contain %q", st.Message(), tc.wantMsg)
	}
	var (
		infos   int
		info    *errdetails.ErrorInfo
		retry   *errdetails.RetryInfo
		br      *errdetails.BadRequest
		dintero *authv1.DinteroError
	)
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			info = d
			infos++
		case *errdetails.RetryInfo:
			retry = d
		case *errdetails.BadRequest:
			br = d
		case *authv1.DinteroError:
			dintero = d
		}
	}
	if tc.wantDomain != "" && (infos != 1 || info.GetDomain() != tc.wantDomain || info.GetReason() != tc.wantReason) {
		t.Errorf("got %d ErrorInfo %v; want one, domain %s, reason %s", infos, info, tc.wantDomain, tc.wantReason)
	}
	if tc.wantRID != "" && info.GetMetadata()["dinteroRequestId"] != tc.wantRID {
		t.Errorf("got ErrorInfo %v; want Dintero's request id %s", info, tc.wantRID)
	}
	for k, v := range tc.wantMeta {
		if got := info.GetMetadata()[k]; got != v {
			t.Errorf("ErrorInfo metadata %s = %q; want %q (all: %v)", k, got, v, info.GetMetadata())
		}
	}
	_, sent := info.GetMetadata()["verificationCodeSent"]
	if info != nil && sent != tc.authorize {
		t.Errorf("verification_code_sent present: %v; want it on Authorize errors only", sent)
	}
	if got := retry.GetRetryDelay().AsDuration(); got != tc.wantRetry {
		t.Errorf("got RetryInfo %v; want %v", got, tc.wantRetry)
	}
	var fields []string
	for _, v := range br.GetFieldViolations() {
		fields = append(fields, v.GetField())
	}
	if fmt.Sprint(fields) != fmt.Sprint(tc.wantFields) {
		t.Errorf("got BadRequest fields %v; want %v", fields, tc.wantFields)
	}
	switch {
	case tc.wantErrors < 0 && dintero != nil:
		t.Errorf("got DinteroError %v; want none", dintero)
	case tc.wantErrors >= 0 && (dintero == nil || len(dintero.GetErrors()) != tc.wantErrors):
		t.Errorf("got DinteroError %v; want one with %d errors", dintero, tc.wantErrors)
	}
}

// TestLostAnswerIsNotAPlainNotFound: Dintero deleted the grant and the
// answer was lost; the retry's 404 tells the caller that this very call
// may have deleted it, and the audit line records it.
func TestLostAnswerIsNotAPlainNotFound(t *testing.T) {
	e := setup(t)
	e.fake.AddGrants("T123", "g")
	e.fake.HandleRaw(dinterotest.OpDelete, dinterotest.Times(1, dinterotest.ActThen(e.fake.Mock, dinterotest.Status(503)), e.fake.Mock))
	_, err := e.client.DeleteClientGrant(e.withToken(context.Background(), "T123"), &authv1.DeleteClientGrantRequest{Oid: "T123", Id: "g"})
	checkStatus(t, status.Convert(err), errorCase{wantCode: codes.NotFound, wantMsg: "may have deleted it", wantDomain: service.ErrorDomain,
		wantReason: service.ErrorReasonNotFoundUncertain, wantMeta: map[string]string{"uncertainAttempts": "HTTP 503", "dinteroHttpStatus": "404", "dinteroCode": "NOT_FOUND"}, wantErrors: 0})
	_, err = e.client.DeleteClientGrant(e.withToken(context.Background(), "T123"), &authv1.DeleteClientGrantRequest{Oid: "T123", Id: "never-was"})
	checkStatus(t, status.Convert(err), errorCase{wantCode: codes.NotFound, wantDomain: service.ErrorDomain, wantReason: service.ErrorReasonDintero, wantErrors: 0})

	lines := e.audit.Lines(t, "audit")
	if len(lines) != 2 || toString(lines[0]["uncertain_attempts"]) != "[HTTP 503]" || lines[0]["reason"] != service.ErrorReasonNotFoundUncertain || lines[1]["uncertain_attempts"] != nil {
		t.Errorf("got audit lines %v; want the first to record the uncertain attempt and its reason", lines)
	}
}

// TestCodeForHTTP checks the HTTP to gRPC mapping of every status against
// testdata/http_codes.golden (go test -run TestCodeFor -update rewrites it).
func TestCodeForHTTP(t *testing.T) {
	var b strings.Builder
	for s := 400; s < 600; s++ {
		if http.StatusText(s) == "" && s != 499 && s != 599 {
			continue
		}
		fmt.Fprintf(&b, "%d %s\n", s, service.CodeForHTTP(s))
	}
	golden(t, "http_codes.golden", b.String())
}

// TestCodeForOAuthError checks the mapping of OAuth's errors against
// testdata/oauth_codes.golden.
func TestCodeForOAuthError(t *testing.T) {
	var b strings.Builder
	for _, e := range []string{
		"invalid_request", "unauthorized_client", "access_denied", "unsupported_response_type", "invalid_scope", "server_error", "temporarily_unavailable",
		"login_required", "interaction_required", "consent_required", "account_selection_required", "invalid_request_uri", "invalid_request_object",
		"request_not_supported", "request_uri_not_supported", "registration_not_supported", "something_else", "",
	} {
		fmt.Fprintf(&b, "%q %s\n", e, service.CodeForOAuthError(e))
	}
	golden(t, "oauth_codes.golden", b.String())
}

// TestStatusGolden checks whole statuses, details and all, for the kinds
// of upstream error against testdata/statuses.golden.
func TestStatusGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		op   string
		err  error
		meta upstream.Meta
	}{
		{"dintero 400 with errors", "DeleteClientGrant", &upstream.Error{StatusCode: 400, Code: "INVALID", Message: "bad", RequestID: "r1", Errors: []any{map[string]any{"field": "id", "message": "too long"}, "plain"}}, upstream.Meta{Sent: true}},
		{"dintero 429", "DeleteClientGrant", &upstream.Error{StatusCode: 429, Message: "slow", RetryAfter: 3 * time.Second}, upstream.Meta{Sent: true}},
		{"dintero 503 that says when", "DeleteClientGrant", &upstream.Error{StatusCode: 503, Message: "back soon", RetryAfter: 45 * time.Second}, upstream.Meta{Sent: true}},
		{"a 404 after an uncertain attempt", "DeleteClientGrant", &upstream.Error{StatusCode: 404, Code: "NOT_FOUND", Message: "no", Uncertain: []string{"no answer: timeout"}}, upstream.Meta{Sent: true, Uncertain: []string{"no answer: timeout"}}},
		{"a token fetch refused", "Authorize", fmt.Errorf("%w: %w", upstream.ErrTokenFetch, &upstream.Error{StatusCode: 401, Code: "INVALID_CLIENT", Message: "client authentication failed"}), upstream.Meta{}},
		{"OAuth's refusal", "Authorize", &upstream.OAuthError{Code: "access_denied", Description: "bad code", State: "s1", StatusCode: 302, RequestID: "r2"}, upstream.Meta{Sent: true}},
		{"an unusable answer", "Authorize", &upstream.Error{StatusCode: 302, Reason: upstream.ErrUnexpectedResponse}, upstream.Meta{Sent: true}},
		{"no credentials", "Authorize", fmt.Errorf("%w for account T123", upstream.ErrNoCredentials), upstream.Meta{}},
		{"busy", "DeleteClientGrant", upstream.ErrBusy, upstream.Meta{}},
		{"circuit open", "Authorize", upstream.ErrCircuitOpen, upstream.Meta{}},
		{"signing keys unavailable", "Authorize", fmt.Errorf("%w: %w", upstream.ErrSigningKeys, fmt.Errorf("GET /keys: %w: reset", upstream.ErrTransport)), upstream.Meta{}},
		{"transport", "Authorize", fmt.Errorf("POST /x: %w: reset", upstream.ErrTransport), upstream.Meta{Sent: true}},
		{"deadline", "DeleteClientGrant", context.DeadlineExceeded, upstream.Meta{Sent: true, Uncertain: []string{"no answer: timeout"}}},
		{"canceled", "DeleteClientGrant", context.Canceled, upstream.Meta{}},
		{"anything else", "DeleteClientGrant", errors.New("boom"), upstream.Meta{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := service.StatusOf(tc.op, tc.err, tc.meta)
			b, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(st.Proto())
			if err != nil {
				t.Fatal(err)
			}
			// The JSON gateway's form of these statuses is
			// internal/gateway's golden test.
			golden(t, filepath.Join("statuses", fileName(tc.name)+".golden"), fmt.Sprintf("gRPC status:\n%s\n", normalize(b)))
		})
	}
}

// fileName turns a test's name into a file name: letters, digits and _.
func fileName(name string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, name)
}

// normalize undoes protojson's random choice of one or two spaces after a
// colon, so that golden files are stable.
func normalize(b []byte) string {
	return strings.ReplaceAll(string(b), ":  ", ": ")
}

// golden compares got with testdata/name, which -update rewrites.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("got:\n%s\nwant (%s):\n%s", got, path, want)
	}
}

// TestDinteroCodeIsNoReason: Dintero's code, whatever its spelling,
// travels unchanged in the metadata and in DinteroError, and never becomes
// the reason, which is a constant of the facade's (notFound and not-found
// were once the same reason; a long code was cut).
func TestDinteroCodeIsNoReason(t *testing.T) {
	for _, code := range []string{"NOT_FOUND", "notFound", "not-found", "invalid grant type", strings.Repeat("A", 80), ""} {
		st := service.StatusOf("DeleteClientGrant", &upstream.Error{StatusCode: 404, Code: code, Message: "no"}, upstream.Meta{Sent: true})
		info, _ := details(st)
		if info.GetReason() != service.ErrorReasonDintero || info.GetDomain() != service.ErrorDomain || info.GetMetadata()["dinteroCode"] != code {
			t.Errorf("code %q: got %v; want reason DINTERO_ERROR, domain %s, dinteroCode unchanged", code, info, service.ErrorDomain)
		}
		var de *authv1.DinteroError
		for _, d := range st.Details() {
			if x, ok := d.(*authv1.DinteroError); ok {
				de = x
			}
		}
		if code != "" && de.GetCode() != code {
			t.Errorf("code %q: DinteroError has %q", code, de.GetCode())
		}
	}
}

// TestStatusIsBounded: however much Dintero writes, a status stays small
// enough for any client's header limits (grpc-java: 8 KiB in all).
func TestStatusIsBounded(t *testing.T) {
	long := strings.Repeat("x", 100000)
	items := make([]any, 50)
	for i := range items {
		m := map[string]any{"field": long, "message": long}
		for k := range 20 {
			m[fmt.Sprint("k", k)] = []any{long, map[string]any{"deep": []any{long}}}
		}
		items[i] = m
	}
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"Dintero's error", &upstream.Error{StatusCode: 400, Code: long, Message: long, RequestID: long, Errors: items}},
		{"OAuth's error", &upstream.OAuthError{Code: "access_denied", Description: long, URI: long, State: long, StatusCode: 302, RequestID: long}},
		{"an unusable answer", &upstream.Error{StatusCode: 200, Reason: fmt.Errorf("%w: %s", upstream.ErrUnexpectedResponse, long)}},
	} {
		st := service.StatusOf("Authorize", tc.err, upstream.Meta{Sent: true, Uncertain: []string{long, long}})
		b, err := proto.Marshal(st.Proto())
		if err != nil {
			t.Fatal(err)
		}
		if n := base64.StdEncoding.EncodedLen(len(b)) + len(st.Message()); n > 6<<10 {
			t.Errorf("%s: the status takes %d bytes on the wire; want at most 6 KiB", tc.name, n)
		}
		if info, _ := details(st); info.GetMetadata()["verificationCodeSent"] != "true" {
			t.Errorf("%s: the cut lost verification_code_sent", tc.name)
		}
	}
}

// TestNotFoundIsBounded: a NotFound names its resource, and a grant id as
// long as a request may hold does not make the status too large for a
// client's header limits.
func TestNotFoundIsBounded(t *testing.T) {
	e := setup(t)
	_, err := e.client.DeleteClientGrant(e.withToken(context.Background(), "T123"), &authv1.DeleteClientGrantRequest{Oid: "T123", Id: strings.Repeat("g", 12<<10)})
	st := status.Convert(err)
	var name string
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.ResourceInfo); ok {
			name = ri.GetResourceName()
		}
	}
	if st.Code() != codes.NotFound || !strings.HasPrefix(name, "accounts/T123/auth/client-grants/ggg") {
		t.Fatalf("got %v, resource %.60q; want NotFound naming the grant", st.Code(), name)
	}
	b, err := proto.Marshal(st.Proto())
	if err != nil {
		t.Fatal(err)
	}
	if n := base64.StdEncoding.EncodedLen(len(b)) + len(st.Message()); n > 6<<10 {
		t.Errorf("the status takes %d bytes on the wire; want at most 6 KiB", n)
	}
}

// TestStatusCutFreesNoCode: the status quotes Dintero's message cut, and
// what Dintero echoed of the call is masked before it; a short code is
// masked only as a word of its own, so a cut that takes away the rest of
// its word must not leave it standing alone. Wherever the cut falls.
func TestStatusCutFreesNoCode(t *testing.T) {
	const code = "123"
	m := mask.New(code)
	for pad := range 1200 {
		msg := strings.Repeat("x", pad) + "-" + code + "4567" + strings.Repeat("y", 1200)
		st := service.StatusOf("Authorize", &upstream.Error{StatusCode: 400, Code: msg, Message: msg}, upstream.Meta{Sent: true})
		b, err := protojson.Marshal(st.Proto())
		if err != nil {
			t.Fatal(err)
		}
		if got := string(b); m.Text(got) != got {
			t.Fatalf("cut after %d bytes: the status shows the code: %s", pad, m.Text(got))
		}
	}
}
