package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	authv1 "github.com/dintero-facade/dintero-facade/gen/dintero/auth/v1"
	"github.com/dintero-facade/dintero-facade/internal/dinteromock"
	"github.com/dintero-facade/dintero-facade/internal/dinterotest"
)

// panicOn is an AuthService that panics when the verification code says
// so, and otherwise calls the real one.
type panicOn struct {
	authv1.AuthServiceServer
	code string
}

func (p panicOn) Authorize(ctx context.Context, r *authv1.AuthorizeRequest) (*authv1.AuthorizeResponse, error) {
	if r.GetVerificationCode() == p.code {
		panic("cannot redeem " + r.GetVerificationCode() + " with " + fmt.Sprint(metadata.ValueFromIncomingContext(ctx, "authorization")))
	}
	return p.AuthServiceServer.Authorize(ctx, r)
}

// TestNoSecretAnywhere sets distinctive secrets, drives every path over
// gRPC and the gateway, the code in the query and in :redeem's body
// (success, Dintero errors that echo the secrets, a
// transport failure, a timeout, validation, a token refresh, a recovered
// panic, and bodies and queries that hold the code where it does not
// belong) and asserts that no secret appears in the logs, the statuses and
// HTTP error bodies, the metrics or the trace spans.
func TestNoSecretAnywhere(t *testing.T) {
	// Every verification code holds S3CR3T; so does the panic's.
	const panicCode = "PANIC-VCODE-S3CR3T-e5f6"
	fake := dinterotest.New(t, dinterotest.Options{Lenient: true})
	fake.AddGrants("T12345678", "g")
	callerToken := fake.Bearer("T12345678")
	n := 0
	nextCode := func() string {
		n++
		c := fmt.Sprintf("VCODE-S3CR3T-%d", n)
		fake.AddCode("T12345678", c)
		return c
	}
	// The fake's handlers of an earlier step may still run (a stalled call's
	// server side ends after the caller gave up), so mode is atomic.
	var mode atomic.Value
	mode.Store("ok")
	fake.HandleRaw(dinterotest.OpAuthorize, func(w http.ResponseWriter, r *http.Request) {
		switch mode.Load().(string) {
		case "ok":
			fake.Mock.ServeHTTP(w, r)
		case "echo":
			dinterotest.WriteError(w, 400, "bad_code "+r.URL.Query().Get("verification_code"), "code "+r.URL.Query().Get("verification_code")+" with "+r.Header.Get("Authorization")+" is spent")
		case "oauth echo":
			w.Header().Set("Location", dinterotest.Callback+"?error=access_denied&error_description="+url.QueryEscape("code "+r.URL.RawQuery+" for "+r.Header.Get("Authorization")))
			w.WriteHeader(http.StatusFound)
		case "state echo":
			// Dintero's redirect, with the code echoed as another state:
			// STATE_MISMATCH, after the code was spent.
			rec := httptest.NewRecorder()
			fake.Mock.ServeHTTP(rec, r)
			loc, _ := url.Parse(rec.Header().Get("Location"))
			q := loc.Query()
			q.Set("state", "not-"+r.URL.Query().Get("verification_code"))
			loc.RawQuery = q.Encode()
			w.Header().Set("Location", loc.String())
			w.WriteHeader(rec.Code)
		case "id echo":
			// Dintero's request id echoing the code and the token.
			w.Header().Set("Request-Id", "id-"+r.URL.Query().Get("verification_code")+"-"+r.Header.Get("Authorization"))
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":{"code":"bad_code","message":"spent"}}`))
		case "id echo ok":
			rec := httptest.NewRecorder()
			fake.Mock.ServeHTTP(rec, r)
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.Header().Set("Request-Id", r.URL.Query().Get("verification_code")+strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
			w.WriteHeader(rec.Code)
			_, _ = w.Write(rec.Body.Bytes())
		case "unauthorized":
			dinterotest.WriteError(w, 401, "expired", "token "+r.Header.Get("Authorization")+" expired")
		case "reset":
			dinterotest.Reset(w, r)
		case "stall":
			dinterotest.Stall(w, r)
		}
	})
	rec := tracetest.NewSpanRecorder()
	// The grant's OIDC secret is returned, to see that it reaches no log.
	f := startFacade(t, fake.URL, []string{"--return-oidc-client-secret"}, map[string]string{"DINTERO_CLIENT_ID": dinterotest.ClientID, "DINTERO_CLIENT_SECRET": dinterotest.ClientSecret, "DINTERO_ACCOUNT_ID": "T12345678"},
		func(o *Options) {
			o.TracerProvider = trace.NewTracerProvider(trace.WithSpanProcessor(rec))
			o.wrap = func(s authv1.AuthServiceServer) authv1.AuthServiceServer { return panicOn{s, panicCode} }
		})

	var seen []string     // every status message and HTTP error body
	var idTokens []string // what the callers were given
	req := func(vc string) *authv1.AuthorizeRequest {
		return &authv1.AuthorizeRequest{Oid: "T12345678", Audience: dinteromock.Audience("T12345678"), ResponseType: "authenticate", ClientId: dinterotest.App, VerificationCode: vc, RedirectUri: dinterotest.Callback}
	}
	// Only the stalled call meets its deadline; the others have time to
	// spare on a busy machine.
	deadline := func() time.Duration {
		if mode.Load() == "stall" {
			return 300 * time.Millisecond
		}
		return 10 * time.Second
	}
	grpcCall := func(withToken bool, r *authv1.AuthorizeRequest) codes.Code {
		ctx, cancel := context.WithTimeout(context.Background(), deadline())
		defer cancel()
		if withToken {
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", callerToken)
		}
		var header, trailer metadata.MD
		resp, err := f.client.Authorize(ctx, r, grpc.Header(&header), grpc.Trailer(&trailer))
		idTokens = append(idTokens, resp.GetIdToken())
		seen = append(seen, fmt.Sprint(status.Convert(err).Proto()), fmt.Sprint(header), fmt.Sprint(trailer))
		return status.Code(err)
	}
	// httpCall sends the code in the query, or with redeem in the JSON
	// body of :redeem.
	httpCall := func(withToken, redeem bool, r *authv1.AuthorizeRequest) int {
		q := url.Values{"audience": {r.Audience}, "response_type": {r.ResponseType}, "client_id": {r.ClientId}, "verification_code": {r.VerificationCode}, "redirect_uri": {r.RedirectUri}}
		h := map[string]string{"Grpc-Timeout": fmt.Sprint(deadline().Milliseconds()) + "m"}
		if withToken {
			h["Authorization"] = callerToken
		}
		var c int
		var header http.Header
		var body []byte
		if redeem {
			b, _ := json.Marshal(map[string]string{"audience": r.Audience, "response_type": r.ResponseType, "client_id": r.ClientId, "verification_code": r.VerificationCode, "redirect_uri": r.RedirectUri})
			h["Content-Type"] = "application/json"
			c, header, body = dinterotest.DoBody(t, http.DefaultClient, http.MethodPost, f.httpURL+"/v1/accounts/"+r.Oid+"/auth/authorize:redeem", strings.NewReader(string(b)), h)
		} else {
			c, header, body = f.do(t, http.MethodPost, "/v1/accounts/"+r.Oid+"/auth/authorize?"+q.Encode(), h)
		}
		seen = append(seen, fmt.Sprint(header))
		if c != 200 {
			seen = append(seen, string(body))
		}
		var v struct {
			IDToken string `json:"id_token"`
		}
		_ = json.Unmarshal(body, &v)
		idTokens = append(idTokens, v.IDToken)
		return c
	}

	steps := []struct {
		mode     string
		token    bool
		oid      string
		wantGRPC codes.Code
		wantHTTP int
	}{
		{"ok", true, "T12345678", codes.OK, 200},
		{"ok", false, "T12345678", codes.OK, 200}, // the facade's own token
		{"echo", true, "T12345678", codes.InvalidArgument, 400},
		{"echo", false, "T12345678", codes.InvalidArgument, 400},
		{"oauth echo", true, "T12345678", codes.PermissionDenied, 403},
		{"id echo", true, "T12345678", codes.InvalidArgument, 400},
		{"id echo", false, "T12345678", codes.InvalidArgument, 400},
		{"id echo ok", true, "T12345678", codes.OK, 200},
		{"state echo", true, "T12345678", codes.Internal, 500},
		{"unauthorized", false, "T12345678", codes.Unauthenticated, 401}, // drops the cached token
		{"ok", false, "T12345678", codes.OK, 200},                        // a fresh one is fetched
		{"reset", true, "T12345678", codes.Unavailable, 503},
		{"stall", true, "T12345678", codes.DeadlineExceeded, 504},
		{"ok", true, "bad-oid", codes.InvalidArgument, 400},
		{"panic", true, "T12345678", codes.Internal, 500},
	}
	for _, s := range steps {
		mode.Store(s.mode)
		for _, via := range []string{"grpc", "gateway", ":redeem"} {
			code := panicCode
			if s.mode != "panic" {
				code = nextCode()
			}
			r := req(code)
			r.Oid = s.oid
			if via == "grpc" {
				if got := grpcCall(s.token, r); got != s.wantGRPC {
					t.Errorf("%s over gRPC: got %v; want %v", s.mode, got, s.wantGRPC)
				}
			} else if got := httpCall(s.token, via == ":redeem", r); got != s.wantHTTP {
				t.Errorf("%s through the gateway: got %d; want %d", s.mode, got, s.wantHTTP)
			}
		}
	}
	// Bad :redeem bodies and queries, each holding a code: refused
	// before anything is sent, and never quoting it.
	mode.Store("ok")
	for _, bad := range []struct{ path, body string }{
		{":redeem", `{"verification_code": 12345, "state": "BAD-S3CR3T-1"}`},
		{":redeem", `{"verification_code": "BAD-S3CR3T-2", "verification_code": "BAD-S3CR3T-2"}`},
		{":redeem", `{"BAD-S3CR3T-3": "x"}`},
		{":redeem", `{"field BAD-S3CR3T-4": "x"}`},
		{":redeem", `{"accept_unverified_id_token": "BAD-S3CR3T-5"}`},
		{":redeem", "{\"verification_code\": \"BAD-S3CR3T-6\xff\"}"},
		{":redeem", `{"verification_code": "BAD-S3CR3T-7"} trailing`},
		{":redeem?verification_code=BAD-S3CR3T-8", `{}`},
		{"?verification_code%3DBAD-S3CR3T-9&audience=a&response_type=authenticate&client_id=c", ""},
	} {
		c, _, body := dinterotest.DoBody(t, http.DefaultClient, http.MethodPost, f.httpURL+"/v1/accounts/T12345678/auth/authorize"+bad.path, strings.NewReader(bad.body), map[string]string{"Content-Type": "application/json"})
		if c != http.StatusBadRequest {
			t.Errorf("%s %s: got %d %s; want 400", bad.path, bad.body, c, body)
		}
		seen = append(seen, string(body))
	}
	// DeleteClientGrant returns the grant's OIDC secret to the caller,
	// and must log none of it.
	resp, err := f.client.DeleteClientGrant(context.Background(), &authv1.DeleteClientGrantRequest{Oid: "T12345678", Id: "g"})
	if err != nil || resp.GetGrant().GetOidc().GetClientSecret() != "oidc-secret-in-grant" {
		t.Fatalf("got %v, %v; want the grant with its OIDC secret", resp, err)
	}
	// The 401 step drops the cached token three times (once per path),
	// so the facade fetches one at first and three more after.
	issued := fake.Mock.IssuedTokens("T12345678")
	if len(issued) != 4 {
		t.Errorf("got %d token fetches; want 4", len(issued))
	}
	secrets := append([]string{"S3CR3T", strings.TrimPrefix(callerToken, "Bearer "), dinterotest.ClientSecret, "oidc-secret-in-grant"}, issued...)
	for _, tok := range idTokens {
		if tok != "" {
			secrets = append(secrets, tok)
		}
	}
	if len(secrets) < 4+4+9 {
		t.Errorf("only %d secrets to look for: the successes returned no id_token", len(secrets))
	}

	logs := f.log.String()
	if !strings.Contains(logs, "recovered from a panic") || !strings.Contains(logs, "goroutine") {
		t.Errorf("the panic was not logged with its stack:\n%s", logs)
	}
	metrics := scrape(t, http.DefaultClient, f.httpURL+"/metrics")
	var spans strings.Builder
	for _, s := range rec.Ended() {
		fmt.Fprintf(&spans, "%s %v %s", s.Name(), s.Attributes(), s.Status().Description)
		for _, e := range s.Events() {
			fmt.Fprintf(&spans, " %s %v", e.Name, e.Attributes)
		}
		spans.WriteString("\n")
	}
	if len(rec.Ended()) < len(steps) {
		t.Errorf("only %d spans recorded", len(rec.Ended()))
	}
	places := map[string]string{"logs": logs, "statuses and HTTP bodies": strings.Join(seen, "\n"), "metrics": metrics, "spans": spans.String()}
	for where, text := range places {
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("the %s hold %.24q…", where, s)
			}
		}
	}
	// The verified claims are personal data: the caller gets them, the
	// logs, metrics and traces never (the subject holds S3CR3T above).
	for _, where := range []string{"logs", "metrics", "spans"} {
		for _, pii := range []string{"user@example.com", "Test User"} {
			if strings.Contains(places[where], pii) {
				t.Errorf("the %s hold the claim %q", where, pii)
			}
		}
	}
	if !strings.Contains(strings.Join(seen, "\n"), "[REDACTED]") {
		t.Error("Dintero's echoing messages should come back with the secrets masked")
	}
}
