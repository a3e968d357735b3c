package service_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	authv1 "github.com/dintero-facade/dintero-facade/gen/dintero/auth/v1"
	"github.com/dintero-facade/dintero-facade/internal/dinterotest"
	"github.com/dintero-facade/dintero-facade/service"
	"github.com/dintero-facade/dintero-facade/upstream"
)

func TestLogLine(t *testing.T) {
	e := setup(t)
	e.fake.AddGrants("T12345678", "grant-5")
	ctx := metadata.AppendToOutgoingContext(e.withToken(context.Background(), "T12345678"), "x-request-id", "caller-rid-77")
	// Dintero takes 30 ms over the first call, which the line's latency
	// must show, in whole microseconds.
	const held = 30 * time.Millisecond
	e.fake.Handle(dinterotest.OpDelete, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(held)
		e.fake.Mock.ServeHTTP(w, r)
	})
	start := time.Now()
	if _, err := e.client.DeleteClientGrant(ctx, &authv1.DeleteClientGrantRequest{Oid: "T12345678", Id: "grant-5"}); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	e.fake.Default(dinterotest.OpDelete)
	_, err := e.client.DeleteClientGrant(e.withToken(context.Background(), "T123"), &authv1.DeleteClientGrantRequest{Oid: "T123", Id: "gone"})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("got %v; want NotFound", err)
	}
	lines := e.audit.Lines(t)
	if len(lines) != 2 || len(e.log.Lines(t)) != 0 {
		t.Fatalf("got %d audit lines and %d call lines; want 2 and none: a DeleteClientGrant's line is its audit line", len(lines), len(e.log.Lines(t)))
	}
	want := []map[string]any{
		{"msg": "audit", "level": "INFO", "method": authv1.AuthService_DeleteClientGrant_FullMethodName, "code": "OK", "oid": "T12345678", "grant_id": "grant-5", "http_status": 200.0, "attempts": 1.0, "request_id": "caller-rid-77", "credentials": "own_token"},
		{"msg": "audit", "level": "INFO", "code": "NotFound", "oid": "T123", "grant_id": "gone", "http_status": 404.0, "error": "client grant not found", "reason": "DINTERO_ERROR"},
	}
	for i, w := range want {
		for k, v := range w {
			if lines[i][k] != v {
				t.Errorf("line %d: %s = %v; want %v", i, k, lines[i][k], v)
			}
		}
		if ts, _ := lines[i]["time"].(string); ts == "" {
			t.Errorf("line %d has no time", i)
		} else if at, err := time.Parse(time.RFC3339Nano, ts); err != nil || time.Since(at) > time.Minute || time.Since(at) < 0 {
			t.Errorf("line %d: time %q; want now, in RFC 3339", i, ts)
		}
		if us, ok := lines[i]["latency_us"].(float64); !ok || us != float64(int64(us)) || us < 0 {
			t.Errorf("line %d: latency_us %v; want whole microseconds", i, lines[i]["latency_us"])
		}
		if rid, _ := lines[i]["dintero_request_id"].(string); !strings.HasPrefix(rid, "mock-") {
			t.Errorf("line %d: dintero_request_id %q; want the mock's", i, rid)
		}
	}
	if us := lines[0]["latency_us"].(float64); us < float64(held.Microseconds()) || us > float64(took.Microseconds()) {
		t.Errorf("latency_us %v; want within [%d, %d], the time Dintero held the call and the time the caller waited", us, held.Microseconds(), took.Microseconds())
	}
	if rid, _ := lines[1]["request_id"].(string); len(rid) != 32 {
		t.Errorf("got generated request id %q; want 32 hex digits", rid)
	}
}

// TestLogLinesAreBounded: what a caller chooses (ids, a user agent) is cut
// to a fixed length in the line.
func TestLogLinesAreBounded(t *testing.T) {
	e := setup(t)
	long := strings.Repeat("x", 10000)
	ctx := metadata.AppendToOutgoingContext(e.withToken(context.Background(), "T123"), "user-agent", long)
	_, _ = e.client.DeleteClientGrant(ctx, &authv1.DeleteClientGrantRequest{Oid: long, Id: long})
	_, _ = e.client.DeleteClientGrant(ctx, &authv1.DeleteClientGrantRequest{Oid: "T123", Id: long})
	e.fake.HandleRaw(dinterotest.OpDelete, dinterotest.Body(400, "application/json", []byte(`{"error":{"message":"`+long+`"}}`)))
	_, _ = e.client.DeleteClientGrant(ctx, &authv1.DeleteClientGrantRequest{Oid: "T123", Id: "g"})
	lines := strings.Split(strings.TrimSpace(e.audit.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("got %d lines; want 3", len(lines))
	}
	// A string of exactly the bound is logged whole.
	exact := "T" + strings.Repeat("1", 255)
	_, _ = e.client.DeleteClientGrant(ctx, &authv1.DeleteClientGrantRequest{Oid: exact, Id: "g"})
	if !strings.Contains(e.audit.String(), `"oid":"`+exact+`"`) {
		t.Errorf("a 256-byte oid was not logged whole")
	}
	for _, l := range lines {
		if len(l) > 3000 || !strings.Contains(l, "…(cut)") {
			t.Errorf("got a line of %d bytes; want the caller's strings cut: %.300s", len(l), l)
		}
	}
}

func TestRecovery(t *testing.T) {
	logs := &dinterotest.LogBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	ic, err := service.Interceptor(service.InterceptorOptions{Log: log, Audit: log})
	if err != nil {
		t.Fatal(err)
	}
	info := &grpc.UnaryServerInfo{FullMethod: authv1.AuthService_Authorize_FullMethodName}
	_, err = ic(context.Background(), goodAuthorize(), info, func(ctx context.Context, req any) (any, error) {
		panic("bad request " + req.(*authv1.AuthorizeRequest).GetVerificationCode())
	})
	if status.Code(err) != codes.Internal || strings.Contains(err.Error(), "vc-4711") {
		t.Errorf("got %v; want Internal without the panic value", err)
	}
	// A handler that panicked returned no outcome: whether the code left
	// is not known, so the answer is that it may have.
	if info, _ := details(status.Convert(err)); info.GetReason() != service.ErrorReasonInternal || info.GetMetadata()["verificationCodeSent"] != "true" {
		t.Errorf("got ErrorInfo %v; want INTERNAL saying the code may have been sent", info)
	}
	var nilMap map[string]int
	_, err = ic(context.Background(), goodAuthorize(), info, func(ctx context.Context, req any) (any, error) {
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

// TestInterceptorNeedsLoggers: the audit logger is required, so that audit
// lines cannot fall back to a logger the level silences.
func TestInterceptorNeedsLoggers(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	for _, o := range []service.InterceptorOptions{{Log: log}, {Audit: log}, {}} {
		if _, err := service.Interceptor(o); err == nil {
			t.Errorf("Interceptor(%+v): got no error", o)
		}
	}
}

// TestAuditLine: every DeleteClientGrant, and every Authorize made with
// the facade's own credentials, writes an audit line naming the caller;
// an Authorize with the caller's own token writes a call line.
func TestAuditLine(t *testing.T) {
	e := setup(t, credentials)
	e.fake.AddGrants("T12345678", "g")
	e.fake.AddCode("T123", "vc-4711-secret")
	ctx := metadata.AppendToOutgoingContext(e.withToken(context.Background(), "T12345678"), "x-request-id", "rid-audit")
	if _, err := e.client.DeleteClientGrant(ctx, &authv1.DeleteClientGrantRequest{Oid: "T12345678", Id: "g"}); err != nil {
		t.Fatal(err)
	}
	_, _ = e.client.DeleteClientGrant(ctx, &authv1.DeleteClientGrantRequest{Oid: "T12345678", Id: "missing"})
	_, _ = e.client.DeleteClientGrant(ctx, &authv1.DeleteClientGrantRequest{Oid: "bad", Id: "x"})
	if _, err := e.client.Authorize(context.Background(), goodAuthorize()); err != nil {
		t.Fatalf("authorize with the facade's credentials: %v", err)
	}
	_, _ = e.client.Authorize(e.withToken(context.Background(), "T123"), goodAuthorize())
	lines := e.audit.Lines(t)
	if len(lines) != 4 {
		t.Fatalf("got %d audit lines; want one per DeleteClientGrant (3) and one for the Authorize on the facade's credentials:\n%s", len(lines), e.audit.String())
	}
	want := []map[string]any{
		{"msg": "audit", "method": authv1.AuthService_DeleteClientGrant_FullMethodName, "oid": "T12345678", "grant_id": "g", "code": "OK", "http_status": 200.0, "request_id": "rid-audit"},
		{"oid": "T12345678", "grant_id": "missing", "code": "NotFound", "http_status": 404.0},
		{"oid": "bad", "grant_id": "x", "code": "InvalidArgument"},
		{"method": authv1.AuthService_Authorize_FullMethodName, "oid": "T123", "code": "OK", "credentials": "unrestricted"},
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
	if calls := e.log.Lines(t, "call"); len(calls) != 1 || calls[0]["credentials"] != "own_token" {
		t.Errorf("got call lines %v; want the Authorize on the caller's own token", calls)
	}
}

// TestNoSecretsInLogsOrStatuses drives success, Dintero errors, OAuth's
// error, a transport error and validation errors with distinctive secrets,
// and looks for them in the log and in every status.
func TestNoSecretsInLogsOrStatuses(t *testing.T) {
	const (
		code   = "vc-SECRET-8f00b204"
		oidcCS = "oidc-SECRET-ecf8427e"
	)
	// The grant's OIDC secret is returned, to see that it reaches no log.
	e := setup(t, func(_ *upstream.Options, so *service.Options) { so.ReturnOIDCClientSecret = true })
	e.fake.AddCode("T123", code)
	token := strings.TrimPrefix(e.fake.Bearer("T123"), "Bearer ")
	var idToken string
	var statuses []string
	run := func(name string, fault http.HandlerFunc) {
		if fault != nil {
			e.fake.HandleRaw(dinterotest.OpAuthorize, fault)
		} else {
			e.fake.Default(dinterotest.OpAuthorize)
		}
		req := goodAuthorize()
		req.VerificationCode = code
		resp, err := e.client.Authorize(e.withToken(context.Background(), "T123"), req)
		if name == "ok" {
			if err != nil || resp.GetIdToken() == "" {
				t.Fatalf("got %v, %v; want the id_token", resp, err)
			}
			idToken = resp.GetIdToken()
			return
		}
		if err == nil {
			t.Fatalf("%s: got success; want an error", name)
		}
		statuses = append(statuses, fmt.Sprint(status.Convert(err).Proto()))
	}
	run("ok", nil)
	run("echo", func(w http.ResponseWriter, r *http.Request) {
		dinterotest.WriteError(w, 400, "invalid_code", "verification_code "+code+" is invalid for token "+token+" and "+idToken)
	})
	run("oauth echo", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", "https://app.example.com/cb?error=access_denied&error_description="+code+"+"+idToken)
		w.WriteHeader(302)
	})
	run("bad location", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", "https://app.example.com/cb?id_token="+idToken+"%zz")
		w.WriteHeader(302)
	})
	run("reset", dinterotest.Reset)
	bad := goodAuthorize()
	bad.Oid, bad.VerificationCode = "nope", code
	_, err := e.client.Authorize(e.withToken(context.Background(), "T123"), bad)
	statuses = append(statuses, fmt.Sprint(status.Convert(err).Proto()))

	e.fake.HandleRaw(dinterotest.OpDelete, dinterotest.Body(200, "application/json", []byte(`{"id":"g","oidc":{"client_secret":"`+oidcCS+`"}}`)))
	resp, err := e.client.DeleteClientGrant(e.withToken(context.Background(), "T123"), &authv1.DeleteClientGrantRequest{Oid: "T123", Id: "g"})
	if err != nil || resp.GetGrant().GetOidc().GetClientSecret() != oidcCS {
		t.Fatalf("got %v, %v; want the grant with its oidc secret", resp, err)
	}
	logs := e.log.String() + e.audit.String()
	if n, m := len(e.log.Lines(t)), len(e.audit.Lines(t)); n != 6 || m != 1 {
		t.Errorf("got %d call lines and %d audit lines; want one per call (6 Authorize, 1 DeleteClientGrant):\n%s", n, m, logs)
	}
	// The end of the id_token's payload too: a JWT cut where it begins
	// as the caller's token does (the same issuer's header) must not
	// leave the rest behind.
	payload := strings.Split(idToken, ".")[1]
	for _, secret := range []string{token, code, idToken, payload[len(payload)-24:], oidcCS} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log holds %.20s…:\n%s", secret, logs)
		}
		for _, s := range statuses {
			if strings.Contains(s, secret) {
				t.Errorf("a status holds %.20s…: %s", secret, s)
			}
		}
	}
	if !strings.Contains(statuses[0], "[REDACTED]") || !strings.Contains(statuses[1], "[REDACTED]") {
		t.Errorf("got %s and %s; want Dintero's echoing texts kept with the secrets masked", statuses[0], statuses[1])
	}
}

// TestInterceptorRefusesDefaultOverMax: a default deadline longer than
// the longest allowed is a configuration error.
func TestInterceptorRefusesDefaultOverMax(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	for _, tc := range []struct {
		def, max time.Duration
		ok       bool
	}{
		{2 * time.Second, time.Second, false},
		{time.Second, time.Second, true},
		{time.Second, 0, true},
	} {
		_, err := service.Interceptor(service.InterceptorOptions{Log: log, Audit: log, DefaultDeadline: tc.def, MaxDeadline: tc.max})
		if (err == nil) != tc.ok {
			t.Errorf("default %v, max %v: got %v; want ok %v", tc.def, tc.max, err, tc.ok)
		}
	}
}

// TestRequestID: a caller's request id is kept when it is printable ASCII
// of at most 128 bytes without spaces, and refused otherwise
// (InvalidArgument naming x-request-id, nothing sent to Dintero); the
// call's answer carries the id used, a new one for a refused id. (grpc-go
// itself refuses to send ids with control characters or beyond ASCII.)
func TestRequestID(t *testing.T) {
	e := setup(t)
	for i, tc := range []struct {
		id   string
		kept bool
	}{
		{"req-1", true},
		{"~!" + strings.Repeat("a", 126), true},
		{strings.Repeat("a", 129), false},
		{"has space", false},
		{"quote\"d", true},
	} {
		grant := fmt.Sprintf("g%d", i)
		e.fake.AddGrants("T123", grant)
		var md metadata.MD
		ctx := metadata.AppendToOutgoingContext(e.withToken(context.Background(), "T123"), "x-request-id", tc.id)
		_, err := e.client.DeleteClientGrant(ctx, &authv1.DeleteClientGrantRequest{Oid: "T123", Id: grant}, grpc.Header(&md))
		got := md.Get("x-request-id")
		if len(got) != 1 || (got[0] == tc.id) != tc.kept || len(got[0]) == 0 {
			t.Errorf("request id %q: got %q; want it kept %v", tc.id, got, tc.kept)
		}
		st := status.Convert(err)
		if tc.kept {
			if err != nil {
				t.Errorf("request id %q: got %v; want the call made", tc.id, err)
			}
			continue
		}
		if st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), "x-request-id") {
			t.Errorf("request id %q: got %v; want InvalidArgument naming x-request-id", tc.id, err)
		}
		var named bool
		for _, d := range st.Details() {
			if br, ok := d.(*errdetails.BadRequest); ok && len(br.GetFieldViolations()) == 1 && br.GetFieldViolations()[0].GetField() == "x-request-id" {
				named = true
			}
		}
		if !named {
			t.Errorf("request id %q: got details %v; want a BadRequest naming x-request-id", tc.id, st.Details())
		}
		if !e.fake.Mock.HasGrant("T123", grant) {
			t.Errorf("request id %q: the grant was deleted; want nothing sent", tc.id)
		}
	}
}
