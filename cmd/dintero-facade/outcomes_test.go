package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	rpccode "google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	authv1 "github.com/dintero-facade/dintero-facade/gen/dintero/auth/v1"
	"github.com/dintero-facade/dintero-facade/internal/dinteromock"
	"github.com/dintero-facade/dintero-facade/internal/dinterotest"
	"github.com/dintero-facade/dintero-facade/service"
)

// outcome is one way Dintero can answer, and what the caller must get for
// it, over gRPC and through the gateway alike.
type outcome struct {
	name      string
	authorize bool
	// dintero sets the fake up for one call that deletes grant id or
	// redeems code.
	dintero  func(fake *dinterotest.Server, id, code string)
	wantCode codes.Code
	wantHTTP int
	// wantReason is the ErrorInfo's reason; wantGatewayCode the gateway
	// body's error.code when it is not the reason (Dintero's own code).
	wantReason      string
	wantGatewayCode string
	wantMeta        map[string]string
	// wantHeader are headers the gateway's answer must have ("" for one
	// it must not have).
	wantHeader map[string]string
	// check looks at a success, as the gRPC answer's fields by their JSON
	// names: for a delete, the grant, and the outcome as "outcome".
	check func(t *testing.T, got map[string]any)
	// allowMissing and accept set the request's allow_missing and
	// accept_unverified_id_token.
	allowMissing, accept bool
}

// tamper makes the mock answer authorize, then changes its redirect's
// Location with edit: what a mix-up or a forger would send.
func tamper(edit func(loc string) string) func(*dinterotest.Server, string, string) {
	return func(fake *dinterotest.Server, id, code string) {
		mockAnswers(dinteromock.Behaviour{})(fake, id, code)
		fake.HandleRaw(dinterotest.OpAuthorize, func(w http.ResponseWriter, r *http.Request) {
			rec := httptest.NewRecorder()
			fake.Mock.ServeHTTP(rec, r)
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			if loc := rec.Header().Get("Location"); loc != "" {
				w.Header().Set("Location", edit(loc))
			}
			w.WriteHeader(rec.Code)
			_, _ = w.Write(rec.Body.Bytes())
		})
	}
}

// forgeSignature changes a character amid the id_token's signature in a
// redirect (not the last, whose low bits base64url may not carry).
func forgeSignature(loc string) string {
	u, _ := url.Parse(loc)
	q := u.Query()
	tok := []byte(q.Get("id_token"))
	i := len(tok) - 10
	if tok[i] == 'A' {
		tok[i] = 'B'
	} else {
		tok[i] = 'A'
	}
	q.Set("id_token", string(tok))
	u.RawQuery = q.Encode()
	return u.String()
}

func answer(status int, header map[string]string, body string) func(*dinterotest.Server, string, string) {
	return func(fake *dinterotest.Server, _, _ string) {
		h := func(w http.ResponseWriter, r *http.Request) {
			for k, v := range header {
				w.Header().Set(k, v)
			}
			w.WriteHeader(status)
			_, _ = w.Write([]byte(body))
		}
		fake.HandleRaw(dinterotest.OpDelete, h)
		fake.HandleRaw(dinterotest.OpAuthorize, h)
	}
}

func mockAnswers(b dinteromock.Behaviour) func(*dinterotest.Server, string, string) {
	return func(fake *dinterotest.Server, id, code string) {
		fake.Mock.SetBehaviour(b)
		fake.AddGrants("T123", id)
		fake.AddCode("T123", code)
		fake.Default(dinterotest.OpDelete)
		fake.Default(dinterotest.OpAuthorize)
		if b.DeleteNoContent {
			// Not in Dintero's spec: its check is skipped.
			fake.HandleRaw(dinterotest.OpDelete, fake.Mock.ServeHTTP)
		}
	}
}

func redirect(loc string) func(*dinterotest.Server, string, string) {
	return answer(302, map[string]string{"Location": loc}, "")
}

func TestOutcomes(t *testing.T) {
	sent := map[string]string{"verificationCodeSent": "true"}
	hasIDToken := func(where string) func(t *testing.T, got map[string]any) {
		return func(t *testing.T, got map[string]any) {
			t.Helper()
			params, _ := got[where].(map[string]any)
			if tok, _ := got["id_token"].(string); strings.Count(tok, ".") != 2 || got["state"] != "s1" || params["state"] != nil || params["id_token"] != nil {
				t.Errorf("got %v; want a JWT id_token, the state its own field, and neither in the %s", got, where)
			}
		}
	}
	outcomes := []outcome{
		{name: "a 302 with the id_token in its query", authorize: true, dintero: mockAnswers(dinteromock.Behaviour{Authorize: dinteromock.AnswerQuery}), wantCode: codes.OK, wantHTTP: 200, check: hasIDToken("query")},
		{name: "a 302 with the id_token in its fragment", authorize: true, dintero: mockAnswers(dinteromock.Behaviour{Authorize: dinteromock.AnswerFragment}), wantCode: codes.OK, wantHTTP: 200, check: hasIDToken("fragment")},
		{name: "a 200 JSON redirect", authorize: true, dintero: mockAnswers(dinteromock.Behaviour{Authorize: dinteromock.AnswerJSON}), wantCode: codes.OK, wantHTTP: 200, check: hasIDToken("query")},
		{name: "another state in the redirect", authorize: true, dintero: tamper(func(loc string) string { return strings.Replace(loc, "state=s1", "state=s2", 1) }),
			wantCode: codes.Internal, wantHTTP: 500, wantReason: service.ErrorReasonStateMismatch, wantMeta: sent},
		{name: "no state in the redirect", authorize: true, dintero: tamper(func(loc string) string { return strings.Replace(loc, "&state=s1", "", 1) }),
			wantCode: codes.Internal, wantHTTP: 500, wantReason: service.ErrorReasonStateMismatch, wantMeta: sent},
		{name: "credentials in the redirect", authorize: true, dintero: tamper(func(loc string) string { return loc + "&code=c-1&refresh_token=r-1&keep=1#refresh_token=r-2&more=2" }),
			wantCode: codes.OK, wantHTTP: 200, check: func(t *testing.T, got map[string]any) {
				q, _ := got["query"].(map[string]any)
				f, _ := got["fragment"].(map[string]any)
				if len(q) != 1 || q["keep"] != "1" || len(f) != 1 || f["more"] != "2" {
					t.Errorf("got query %v fragment %v; want keep=1 and more=2 alone", q, f)
				}
			}},
		{name: "a forged id_token", authorize: true, dintero: tamper(forgeSignature),
			wantCode: codes.Internal, wantHTTP: 500, wantReason: service.ErrorReasonIDTokenInvalid, wantMeta: map[string]string{"verificationCodeSent": "true", "idTokenReason": "REASON_SIGNATURE"}},
		{name: "a forged id_token, accepted unverified", authorize: true, accept: true, dintero: tamper(forgeSignature), wantCode: codes.OK, wantHTTP: 200,
			check: func(t *testing.T, got map[string]any) {
				v, _ := got["id_token_verification"].(map[string]any)
				if v["result"] != "RESULT_INVALID" || v["reason"] != "REASON_SIGNATURE" || v["claims"] != nil || len(v["checks"].([]any)) != 4 || got["location"] == nil {
					t.Errorf("got %v; want the answer marked invalid, the signature named, the checks listed", got)
				}
			}},
		{name: "an access_token in the fragment", authorize: true, dintero: redirect("https://app.example.com/cb#access_token=at-1&token_type=Bearer&state=s1"), wantCode: codes.OK, wantHTTP: 200,
			check: func(t *testing.T, got map[string]any) {
				if got["access_token"] != "at-1" || got["fragment"].(map[string]any)["token_type"] != "Bearer" {
					t.Errorf("got %v; want the access_token and the rest of the fragment", got)
				}
			}},
		{name: "OAuth's access_denied", authorize: true, dintero: redirect("https://app.example.com/cb?error=access_denied&error_description=bad+code&state=s1"),
			wantCode: codes.PermissionDenied, wantHTTP: 403, wantReason: service.ErrorReasonOAuthError, wantGatewayCode: "access_denied",
			wantMeta: map[string]string{"verificationCodeSent": "true", "oauthErrorDescription": "bad code", "oauthState": "s1", "oauthError": "access_denied", "dinteroHttpStatus": "302"}},
		{name: "OAuth's access_denied from the mock: a spent code", authorize: true, dintero: func(fake *dinterotest.Server, id, code string) {
			mockAnswers(dinteromock.Behaviour{})(fake, id, code)
			if _, _, err := fakeAuthorize(fake, code); err != nil {
				t.Fatal(err)
			}
		}, wantCode: codes.PermissionDenied, wantHTTP: 403, wantReason: service.ErrorReasonOAuthError, wantGatewayCode: "access_denied", wantMeta: map[string]string{"verificationCodeSent": "true", "oauthError": "access_denied"}},
		{name: "OAuth's invalid_request", authorize: true, dintero: redirect("https://app.example.com/cb?error=invalid_request"), wantCode: codes.InvalidArgument, wantHTTP: 400, wantReason: service.ErrorReasonOAuthError, wantGatewayCode: "invalid_request", wantMeta: map[string]string{"verificationCodeSent": "true", "oauthError": "invalid_request"}},
		{name: "OAuth's unauthorized_client", authorize: true, dintero: redirect("https://app.example.com/cb?error=unauthorized_client"), wantCode: codes.PermissionDenied, wantHTTP: 403, wantReason: service.ErrorReasonOAuthError, wantGatewayCode: "unauthorized_client", wantMeta: map[string]string{"verificationCodeSent": "true", "oauthError": "unauthorized_client"}},
		{name: "OAuth's unsupported_response_type", authorize: true, dintero: redirect("https://app.example.com/cb?error=unsupported_response_type"), wantCode: codes.InvalidArgument, wantHTTP: 400, wantReason: service.ErrorReasonOAuthError, wantGatewayCode: "unsupported_response_type", wantMeta: map[string]string{"verificationCodeSent": "true", "oauthError": "unsupported_response_type"}},
		{name: "OAuth's invalid_scope in the fragment", authorize: true, dintero: redirect("https://app.example.com/cb#error=invalid_scope"), wantCode: codes.InvalidArgument, wantHTTP: 400, wantReason: service.ErrorReasonOAuthError, wantGatewayCode: "invalid_scope", wantMeta: map[string]string{"verificationCodeSent": "true", "oauthError": "invalid_scope"}},
		{name: "OAuth's server_error", authorize: true, dintero: redirect("https://app.example.com/cb?error=server_error"), wantCode: codes.Internal, wantHTTP: 500, wantReason: service.ErrorReasonOAuthError, wantGatewayCode: "server_error", wantMeta: map[string]string{"verificationCodeSent": "true", "oauthError": "server_error"}},
		{name: "OAuth's temporarily_unavailable", authorize: true, dintero: redirect("https://app.example.com/cb?error=temporarily_unavailable"), wantCode: codes.Unavailable, wantHTTP: 503, wantReason: service.ErrorReasonOAuthError, wantGatewayCode: "temporarily_unavailable", wantMeta: map[string]string{"verificationCodeSent": "true", "oauthError": "temporarily_unavailable"}},
		{name: "an OAuth error it does not define", authorize: true, dintero: redirect("https://app.example.com/cb?error=quota_blown"), wantCode: codes.Unknown, wantHTTP: 500, wantReason: service.ErrorReasonOAuthError, wantGatewayCode: "quota_blown", wantMeta: map[string]string{"verificationCodeSent": "true", "oauthError": "quota_blown"}},
		{name: "a 302 without a Location", authorize: true, dintero: answer(302, nil, ""), wantCode: codes.Internal, wantHTTP: 500, wantReason: service.ErrorReasonUnusableAnswer, wantMeta: sent},
		{name: "a 302 with neither a token nor an error", authorize: true, dintero: redirect("https://app.example.com/cb?state=s1"), wantCode: codes.Internal, wantHTTP: 500, wantReason: service.ErrorReasonUnusableAnswer, wantMeta: sent},
		{name: "a 200 that is neither", authorize: true, dintero: answer(200, map[string]string{"Content-Type": "text/html"}, "<html>hello</html>"), wantCode: codes.Internal, wantHTTP: 500, wantReason: service.ErrorReasonUnusableAnswer, wantMeta: sent},
		{name: "Dintero's 400 with errors", authorize: true, dintero: answer(400, map[string]string{"Content-Type": "application/json"}, `{"error":{"code":"invalid_code","message":"the code is wrong","errors":[{"field":"verification_code","message":"expired"}]}}`),
			wantCode: codes.InvalidArgument, wantHTTP: 400, wantReason: service.ErrorReasonDintero, wantGatewayCode: "invalid_code", wantMeta: map[string]string{"verificationCodeSent": "true", "dinteroCode": "invalid_code"}},

		{name: "the deleted grant", dintero: mockAnswers(dinteromock.Behaviour{}), wantCode: codes.OK, wantHTTP: 200, check: func(t *testing.T, got map[string]any) {
			if got["deleted_at"] == nil || got["type"] != "authorization_code" || got["outcome"] != "OUTCOME_DELETED" {
				t.Errorf("got %v; want the whole grant", got)
			}
		}},
		{name: "204", dintero: mockAnswers(dinteromock.Behaviour{DeleteNoContent: true}), wantCode: codes.OK, wantHTTP: 200, check: func(t *testing.T, got map[string]any) {
			if got["id"] == nil || got["deleted_at"] != nil || got["type"] != nil {
				t.Errorf("got %v; want the id alone", got)
			}
		}},
		{name: "timestamps with +0000 and no zone, no type", dintero: answer(200, map[string]string{"Content-Type": "application/json"}, `{"id":"x","created_at":"2023-11-07T05:31:56.123+0000","deleted_at":"2023-11-07T05:31:57"}`),
			wantCode: codes.OK, wantHTTP: 200, check: func(t *testing.T, got map[string]any) {
				if got["created_at"] != "2023-11-07T05:31:56.123Z" || got["deleted_at"] != "2023-11-07T05:31:57Z" || got["type"] != "any" {
					t.Errorf("got %v; want both timestamps in UTC and type any", got)
				}
			}},
		{name: "a 200 that cannot be read", dintero: answer(200, nil, "<html>deleted</html>"), wantCode: codes.OK, wantHTTP: 200, check: func(t *testing.T, got map[string]any) {
			if got["id"] == nil || len(got) != 2 {
				t.Errorf("got %v; want the id alone", got)
			}
		}},
		{name: "the answer lost after Dintero deleted", dintero: func(fake *dinterotest.Server, id, code string) {
			fake.AddGrants("T123", id)
			fake.HandleRaw(dinterotest.OpDelete, dinterotest.Times(1, dinterotest.LoseAnswer(fake.Mock), fake.Mock))
		}, wantCode: codes.NotFound, wantHTTP: 404, wantReason: service.ErrorReasonNotFoundUncertain, wantMeta: map[string]string{"uncertainAttempts": "no answer: connection failed", "dinteroCode": "NOT_FOUND"}},
		{name: "the answer lost after Dintero deleted, allow_missing", allowMissing: true, dintero: func(fake *dinterotest.Server, id, code string) {
			fake.AddGrants("T123", id)
			fake.HandleRaw(dinterotest.OpDelete, dinterotest.Times(1, dinterotest.LoseAnswer(fake.Mock), fake.Mock))
		}, wantCode: codes.OK, wantHTTP: 200, check: func(t *testing.T, got map[string]any) {
			if got["outcome"] != "OUTCOME_ABSENT_AFTER_UNCERTAIN_ATTEMPT" || len(got) != 1 {
				t.Errorf("got %v; want no grant, and the outcome that says this call may have deleted it", got)
			}
		}},
		{name: "a grant that never was", dintero: func(fake *dinterotest.Server, _, _ string) { fake.Default(dinterotest.OpDelete) }, wantCode: codes.NotFound, wantHTTP: 404,
			wantReason: service.ErrorReasonDintero, wantGatewayCode: "NOT_FOUND", wantMeta: map[string]string{"dinteroCode": "NOT_FOUND", "dinteroHttpStatus": "404"}},
		{name: "a grant that never was, allow_missing", allowMissing: true, dintero: func(fake *dinterotest.Server, _, _ string) { fake.Default(dinterotest.OpDelete) }, wantCode: codes.OK, wantHTTP: 200,
			check: func(t *testing.T, got map[string]any) {
				if got["outcome"] != "OUTCOME_ALREADY_ABSENT" || len(got) != 1 {
					t.Errorf("got %v; want no grant, outcome OUTCOME_ALREADY_ABSENT", got)
				}
			}},
		{name: "429 beyond the deadline", dintero: answer(429, map[string]string{"Retry-After": "60", "Content-Type": "application/json"}, `{"error":{"code":"RATE_LIMITED","message":"slow down"}}`),
			wantCode: codes.ResourceExhausted, wantHTTP: 429, wantReason: service.ErrorReasonDintero, wantGatewayCode: "RATE_LIMITED", wantHeader: map[string]string{"Retry-After": "60"}},
		{name: "Authorize's 429", authorize: true, dintero: answer(429, map[string]string{"Retry-After": "7", "Content-Type": "application/json"}, `{"error":{"code":"RATE_LIMITED","message":"slow down"}}`),
			wantCode: codes.ResourceExhausted, wantHTTP: 429, wantReason: service.ErrorReasonDintero, wantGatewayCode: "RATE_LIMITED", wantMeta: sent, wantHeader: map[string]string{"Retry-After": "7"}},
		{name: "503 that says when, beyond the deadline", dintero: answer(503, map[string]string{"Retry-After": "45", "Content-Type": "application/json"}, `{"error":{"code":"MAINTENANCE","message":"back soon"}}`),
			wantCode: codes.Unavailable, wantHTTP: 503, wantReason: service.ErrorReasonDintero, wantGatewayCode: "MAINTENANCE", wantHeader: map[string]string{"Retry-After": "45"}},
		{name: "503 that does not say", authorize: true, dintero: answer(503, map[string]string{"Content-Type": "application/json"}, `{"error":{"code":"DOWN","message":"down"}}`),
			wantCode: codes.Unavailable, wantHTTP: 503, wantReason: service.ErrorReasonDintero, wantGatewayCode: "DOWN", wantMeta: sent, wantHeader: map[string]string{"Retry-After": ""}},
	}
	for _, o := range outcomes {
		t.Run(o.name, func(t *testing.T) {
			fake := dinterotest.New(t)
			f := startFacade(t, fake.URL, nil, nil)
			for _, via := range []string{"grpc", "gateway"} {
				id, code := "g-"+via, "code-"+via
				o.dintero(fake, id, code)
				var st *status.Status
				var got map[string]any
				if via == "grpc" {
					st, got = grpcOutcome(t, f, fake, o, id, code)
				} else {
					st, got = gatewayOutcome(t, f, fake, o, id, code)
				}
				if st.Code() != o.wantCode {
					t.Fatalf("%s: got %v; want %v", via, st.Err(), o.wantCode)
				}
				if o.wantCode == codes.OK {
					o.check(t, got)
					continue
				}
				reason, md := errorInfo(st)
				if reason != o.wantReason {
					t.Errorf("%s: got reason %q; want %q", via, reason, o.wantReason)
				}
				for k, v := range o.wantMeta {
					if md[k] != v {
						t.Errorf("%s: ErrorInfo %s = %q; want %q", via, k, md[k], v)
					}
				}
			}
		})
	}
}

// fakeAuthorize redeems code at the fake directly, as another caller.
func fakeAuthorize(fake *dinterotest.Server, code string) (int, string, error) {
	q := url.Values{"audience": {dinteromock.Audience("T123")}, "response_type": {"authenticate"}, "client_id": {dinterotest.App}, "verification_code": {code}}
	req, err := http.NewRequest(http.MethodPost, fake.URL+"/accounts/T123/auth/authorize?"+q.Encode(), nil)
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Authorization", fake.Bearer("T123"))
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	resp.Body.Close()
	c.CloseIdleConnections()
	return resp.StatusCode, resp.Header.Get("Location"), nil
}

func grpcOutcome(t *testing.T, f *facade, fake *dinterotest.Server, o outcome, id, code string) (*status.Status, map[string]any) {
	t.Helper()
	ctx := withBearer(context.Background(), fake, "T123")
	var resp proto.Message
	var err error
	if o.authorize {
		resp, err = f.client.Authorize(ctx, &authv1.AuthorizeRequest{Oid: "T123", Audience: dinteromock.Audience("T123"), ResponseType: "authenticate", ClientId: dinterotest.App,
			VerificationCode: code, RedirectUri: dinterotest.Callback, State: "s1", AcceptUnverifiedIdToken: o.accept})
	} else {
		resp, err = f.client.DeleteClientGrant(ctx, &authv1.DeleteClientGrantRequest{Oid: "T123", Id: id, AllowMissing: o.allowMissing})
	}
	if err != nil {
		st := status.Convert(err)
		checkErrorDetails(t, "grpc", st.Code(), st.Details())
		return st, nil
	}
	got := asJSON(t, resp)
	if !o.authorize {
		got = flatGrant(got)
	}
	return status.New(codes.OK, ""), got
}

func gatewayOutcome(t *testing.T, f *facade, fake *dinterotest.Server, o outcome, id, code string) (*status.Status, map[string]any) {
	t.Helper()
	var httpStatus int
	var header http.Header
	var body []byte
	if o.authorize {
		q := url.Values{"audience": {dinteromock.Audience("T123")}, "response_type": {"authenticate"}, "client_id": {dinterotest.App},
			"verification_code": {code}, "redirect_uri": {dinterotest.Callback}, "state": {"s1"}}
		if o.accept {
			q.Set("accept_unverified_id_token", "true")
		}
		httpStatus, header, body = f.do(t, http.MethodPost, "/v1/accounts/T123/auth/authorize?"+q.Encode(), bearer(fake, "T123"))
	} else {
		p := "/v1/accounts/T123/auth/client-grants/" + id
		if o.allowMissing {
			p += "?allow_missing=true"
		}
		httpStatus, header, body = f.do(t, http.MethodDelete, p, bearer(fake, "T123"))
	}
	if httpStatus != o.wantHTTP {
		t.Errorf("gateway: got HTTP %d %s; want %d", httpStatus, body, o.wantHTTP)
	}
	for k, v := range o.wantHeader {
		if got := header.Get(k); got != v {
			t.Errorf("gateway: got %s %q; want %q", k, got, v)
		}
	}
	if httpStatus == 200 {
		var got map[string]any
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatalf("gateway: %s is not JSON", body)
		}
		if !o.authorize {
			got = flatGrant(got)
		}
		return status.New(codes.OK, ""), got
	}
	e := dinterotest.ParseErrorBody(t, body)
	want := o.wantGatewayCode
	if want == "" {
		want = o.wantReason
	}
	if e.Code != want {
		t.Errorf("gateway: got error.code %q; want %q", e.Code, want)
	}
	var details struct {
		Error struct {
			Details []map[string]any `json:"details"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &details); err != nil {
		t.Fatal(err)
	}
	var types []any
	for _, d := range details.Error.Details {
		types = append(types, d["@type"])
	}
	checkErrorDetails(t, "gateway", codeByName(t, e.GrpcCode), types)
	reason, md := e.Reason()
	st := status.New(codeByName(t, e.GrpcCode), e.Message)
	// Rebuild the ErrorInfo from the JSON details, for the shared checks.
	meta := map[string]string{}
	for k, v := range md {
		meta[k], _ = v.(string)
	}
	st, err := st.WithDetails(errorInfoOf(reason, meta))
	if err != nil {
		t.Fatal(err)
	}
	return st, nil
}

// asJSON is a message as the gateway writes it.
func asJSON(t *testing.T, m proto.Message) map[string]any {
	t.Helper()
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// codeByName is the gRPC code of a name such as PERMISSION_DENIED.
func codeByName(t *testing.T, name string) codes.Code {
	t.Helper()
	v, ok := rpccode.Code_value[name]
	if !ok {
		t.Fatalf("grpc_code %q is no gRPC code", name)
	}
	return codes.Code(v)
}

func errorInfoOf(reason string, md map[string]string) *errdetails.ErrorInfo {
	return &errdetails.ErrorInfo{Reason: reason, Metadata: md}
}

// flatGrant is a DeleteClientGrantResponse as JSON with the grant's fields
// at the top, beside its outcome, for the checks of a deletion.
func flatGrant(resp map[string]any) map[string]any {
	out := map[string]any{}
	if g, ok := resp["grant"].(map[string]any); ok {
		for k, v := range g {
			out[k] = v
		}
	}
	if o, ok := resp["outcome"]; ok {
		out["outcome"] = o
	}
	return out
}

// checkErrorDetails checks that an error carries the call's request id
// (google.rpc.RequestInfo) and one ErrorInfo, and a NotFound a
// google.rpc.ResourceInfo, over gRPC (the details) and through the gateway
// (their @type names).
func checkErrorDetails(t *testing.T, via string, code codes.Code, details []any) {
	t.Helper()
	var info, request, resource int
	for _, d := range details {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			info++
		case *errdetails.RequestInfo:
			if d.GetRequestId() != "" {
				request++
			}
		case *errdetails.ResourceInfo:
			if d.GetResourceName() != "" {
				resource++
			}
		case string:
			switch d {
			case "type.googleapis.com/google.rpc.ErrorInfo":
				info++
			case "type.googleapis.com/google.rpc.RequestInfo":
				request++
			case "type.googleapis.com/google.rpc.ResourceInfo":
				resource++
			}
		}
	}
	if info != 1 || request != 1 {
		t.Errorf("%s: got details %v; want one ErrorInfo and one RequestInfo", via, details)
	}
	if (code == codes.NotFound) != (resource == 1) {
		t.Errorf("%s: a %v with %d ResourceInfo; want one on a NotFound only", via, code, resource)
	}
}
