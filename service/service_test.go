package service_test

import (
	"context"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	authv1 "github.com/dintero-facade/dintero-facade/gen/dintero/auth/v1"
	"github.com/dintero-facade/dintero-facade/internal/dinteromock"
	"github.com/dintero-facade/dintero-facade/internal/dinterotest"
	"github.com/dintero-facade/dintero-facade/service"
	"github.com/dintero-facade/dintero-facade/upstream"
)

func TestDeleteClientGrant(t *testing.T) {
	e := setup(t)
	e.fake.AddGrants("T12345678", "grant-9")
	ctx := metadata.AppendToOutgoingContext(e.withToken(context.Background(), "T12345678"), "x-request-id", "caller-req-1")
	var header metadata.MD
	resp, err := e.client.DeleteClientGrant(ctx, &authv1.DeleteClientGrantRequest{Oid: "T12345678", Id: "grant-9"}, grpc.Header(&header))
	if err != nil {
		t.Fatal(err)
	}
	g := resp.GetGrant()
	if g.GetDeletedAt() == nil || time.Since(g.GetDeletedAt().AsTime()) > time.Minute {
		t.Errorf("got deleted_at %v; want about now", g.GetDeletedAt())
	}
	want := &authv1.ClientGrant{
		Id: "grant-9", ClientId: "2a6b5f2e-client", Audience: "https://api.dintero.com/v1/accounts/T12345678",
		Scope: []string{"admin:accounts", "write:checkout"}, Type: "authorization_code",
		// The OIDC client secret is withheld by default.
		Oidc:      &authv1.Oidc{ClientId: "oidc-client", Authority: "https://identityserver.example.com/access"},
		CreatedAt: timestamppb.New(time.Date(2024, 1, 2, 1, 4, 5, 123000000, time.UTC)),
		UpdatedAt: g.GetDeletedAt(), DeletedAt: g.GetDeletedAt(),
		CreatedBy: "user-creator", DeletedBy: "caller-T12345678",
	}
	if diff := cmpProto(g, want); diff != "" {
		t.Errorf("grant differs: %s", diff)
	}
	if got := header.Get("x-request-id"); len(got) != 1 || got[0] != "caller-req-1" {
		t.Errorf("got response x-request-id %v; want caller-req-1", got)
	}
	r := e.fake.Requests()[0]
	if r.Header.Get("Authorization") != e.fake.Bearer("T12345678") || r.Header.Get("X-Request-Id") != "caller-req-1" {
		t.Errorf("Dintero got authorization %q, request id %q", r.Header.Get("Authorization"), r.Header.Get("X-Request-Id"))
	}
}

// TestOIDCClientSecretWithheld: the deleted grant's oidc.client_secret is
// withheld unless the operator allows it, and the audit line names the
// field withheld, never its value.
func TestOIDCClientSecretWithheld(t *testing.T) {
	for _, allow := range []bool{false, true} {
		e := setup(t, func(_ *upstream.Options, so *service.Options) { so.ReturnOIDCClientSecret = allow })
		e.fake.AddGrants("T123", "g")
		resp, err := e.client.DeleteClientGrant(e.withToken(context.Background(), "T123"), &authv1.DeleteClientGrantRequest{Oid: "T123", Id: "g"})
		if err != nil {
			t.Fatal(err)
		}
		o := resp.GetGrant().GetOidc()
		if got := o.GetClientSecret(); (got == "oidc-secret-in-grant") != allow || o.GetClientId() != "oidc-client" {
			t.Errorf("allowed %v: got oidc %v; want the secret only when allowed", allow, o)
		}
		lines := e.audit.Lines(t, "audit")
		if len(lines) != 1 {
			t.Fatalf("got %d audit lines; want 1", len(lines))
		}
		withheld, _ := lines[0]["withheld"].([]any)
		if allow != (len(withheld) == 0) || (!allow && withheld[0] != "oidc.client_secret") {
			t.Errorf("allowed %v: the audit line says withheld %v; want [oidc.client_secret] when withheld", allow, lines[0]["withheld"])
		}
		if strings.Contains(e.audit.String(), "oidc-secret-in-grant") || strings.Contains(e.log.String(), "oidc-secret-in-grant") {
			t.Error("the secret reached a log")
		}
	}
}

// TestBadAuthorization: an authorization that is blank, or not "Bearer
// <token>", is refused Unauthenticated before anything is sent, over
// either operation; Authorize says its code was not sent. A blank one
// does not fall back to the facade's credentials.
func TestBadAuthorization(t *testing.T) {
	e := setup(t, credentials)
	e.fake.AddCode("T123", goodAuthorize().GetVerificationCode())
	e.fake.AddGrants("T123", "g")
	for _, auth := range []string{"", " ", "Bearer ", "Bearer", "Basic dXNlcjpwdw==", "Bearer a b"} {
		ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", auth)
		_, err := e.client.Authorize(ctx, goodAuthorize())
		st := status.Convert(err)
		info, _ := details(st)
		if st.Code() != codes.Unauthenticated || info.GetReason() != service.ErrorReasonBadAuthorization || info.GetMetadata()["verificationCodeSent"] != "false" {
			t.Errorf("Authorize with authorization %q: got %v %v; want Unauthenticated, BAD_AUTHORIZATION, not sent", auth, st.Code(), info)
		}
		_, err = e.client.DeleteClientGrant(ctx, &authv1.DeleteClientGrantRequest{Oid: "T123", Id: "g"})
		if st := status.Convert(err); st.Code() != codes.Unauthenticated {
			t.Errorf("DELETE with authorization %q: got %v; want Unauthenticated", auth, st)
		}
	}
	if n := len(e.fake.Requests()); n != 0 {
		t.Errorf("%d requests reached Dintero; want none", n)
	}
}

// TestRepeatedAuthorization: a call with more than one authorization is
// refused BAD_AUTHORIZATION before anything is sent, whatever the values
// and their order: the facade would use one, and a proxy in front, or the
// caller, may have meant (or checked) the other. The facade's own
// credentials are at hand, and not used either.
func TestRepeatedAuthorization(t *testing.T) {
	e := setup(t, credentials)
	e.fake.AddCode("T123", goodAuthorize().GetVerificationCode())
	e.fake.AddGrants("T123", "g")
	for _, auths := range [][]string{{"Bearer tok-first-77", "Bearer tok-second-88"}, {"Bearer tok-first-77", ""}, {"Bearer tok-first-77", "Bearer tok-first-77"}} {
		ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", auths[0], "authorization", auths[1])
		_, err := e.client.Authorize(ctx, goodAuthorize())
		st := status.Convert(err)
		info, _ := details(st)
		if st.Code() != codes.Unauthenticated || info.GetReason() != service.ErrorReasonBadAuthorization || info.GetMetadata()["verificationCodeSent"] != "false" {
			t.Errorf("Authorize with authorizations %q: got %v %v; want Unauthenticated, BAD_AUTHORIZATION, not sent", auths, st.Code(), info)
		}
		if strings.Contains(st.Message(), "tok-") {
			t.Errorf("the refusal %q quotes an authorization", st.Message())
		}
		_, err = e.client.DeleteClientGrant(ctx, &authv1.DeleteClientGrantRequest{Oid: "T123", Id: "g"})
		if st := status.Convert(err); st.Code() != codes.Unauthenticated {
			t.Errorf("DELETE with authorizations %q: got %v; want Unauthenticated", auths, st)
		}
	}
	if n := len(e.fake.Requests()); n != 0 {
		t.Errorf("%d requests reached Dintero; want none", n)
	}
}

// TestDeletionReadInPart: a 2xx is a deletion; what cannot be read is
// left unset, and the call's log line (at warn) and a metric say so.
func TestDeletionReadInPart(t *testing.T) {
	e := setup(t)
	e.fake.HandleRaw(dinterotest.OpDelete, dinterotest.Body(200, "application/json",
		[]byte(`{"id":"g","client_id":"c","created_at":"last tuesday","deleted_at":"2023-11-07T05:31:56.123+0000","scope":"admin"}`)))
	resp, err := e.client.DeleteClientGrant(e.withToken(context.Background(), "T123"), &authv1.DeleteClientGrantRequest{Oid: "T123", Id: "g"})
	if err != nil {
		t.Fatalf("got %v; want OK: Dintero deleted the grant", err)
	}
	want := &authv1.ClientGrant{Id: "g", ClientId: "c", Type: "any", DeletedAt: timestamppb.New(time.Date(2023, 11, 7, 5, 31, 56, 123000000, time.UTC))}
	if diff := cmpProto(resp.GetGrant(), want); diff != "" {
		t.Errorf("grant differs: %s", diff)
	}
	lines := e.audit.Lines(t, "audit")
	if len(lines) != 1 || lines[0]["level"] != "WARN" || lines[0]["code"] != "OK" || strings.Join(strings.Fields(strings.Trim(strings.ReplaceAll(toString(lines[0]["undecoded"]), ",", " "), "[]")), ",") != "created_at,scope" {
		t.Errorf("got %v; want one OK line at WARN naming created_at and scope", lines)
	}
	for _, f := range []string{"created_at", "scope"} {
		if n := counterOf(t, e, "dintero_facade_undecoded_fields_total", map[string]string{"operation": "DeleteClientGrant", "field": f}); n != 1 {
			t.Errorf("undecoded %s counted %v times; want 1", f, n)
		}
	}

	e.fake.HandleRaw(dinterotest.OpDelete, dinterotest.Body(204, "", nil))
	resp, err = e.client.DeleteClientGrant(e.withToken(context.Background(), "T123"), &authv1.DeleteClientGrantRequest{Oid: "T123", Id: "g2"})
	if err != nil || cmpProto(resp.GetGrant(), &authv1.ClientGrant{Id: "g2"}) != "" {
		t.Errorf("204: got %v, %v; want OK with the grant's id", resp, err)
	}
}

func toString(v any) string {
	switch v := v.(type) {
	case []any:
		parts := make([]string, 0, len(v))
		for _, x := range v {
			parts = append(parts, toString(x))
		}
		return "[" + strings.Join(parts, ",") + "]"
	case string:
		return v
	}
	return ""
}

// TestAuthorizeState: the redirect's state is the answer's state field
// when it is the request's, and an error after the code was spent when it
// is not; credentials in the redirect never reach the query and fragment
// maps.
func TestAuthorizeState(t *testing.T) {
	redirect := func(e *env, loc string) {
		e.fake.Handle(dinterotest.OpAuthorize, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Location", loc)
			w.WriteHeader(http.StatusFound)
		})
	}
	for _, tc := range []struct {
		name, state, loc string
	}{
		{"another state", "s-1", "?state=s-2"},
		{"no state back", "s-1", "?keep=1"},
		{"a state nobody sent", "", "?state=s-1"},
		{"another state in the fragment", "s-1", "#state=s-2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := setup(t)
			redirect(e, dinterotest.Callback+tc.loc+"&id_token="+url.QueryEscape(signedToken(t, e, nil)))
			req := goodAuthorize()
			req.State = tc.state
			_, err := e.client.Authorize(e.withToken(context.Background(), "T123"), req)
			st := status.Convert(err)
			info, _ := details(st)
			if st.Code() != codes.Internal || info.GetReason() != service.ErrorReasonStateMismatch || info.GetMetadata()["verificationCodeSent"] != "true" {
				t.Errorf("got %v (%v); want Internal, STATE_MISMATCH, the code sent", err, info)
			}
		})
	}
	// OAuth's refusal is a redirect too: one carrying another state
	// belongs to another authorization, and is not this call's answer.
	for _, tc := range []struct{ name, state, loc string }{
		{"a refusal with another state", "s-1", "?error=access_denied&state=s-2"},
		{"a refusal with a state nobody sent", "", "#error=access_denied&state=s-1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := setup(t)
			redirect(e, dinterotest.Callback+tc.loc)
			req := goodAuthorize()
			req.State = tc.state
			_, err := e.client.Authorize(e.withToken(context.Background(), "T123"), req)
			info, _ := details(status.Convert(err))
			if info.GetReason() != service.ErrorReasonStateMismatch || info.GetMetadata()["verificationCodeSent"] != "true" {
				t.Errorf("got %v (%v); want STATE_MISMATCH, the code sent", err, info)
			}
		})
	}
	for _, tc := range []struct{ name, loc, wantState string }{
		{"a refusal with the request's state", "?error=access_denied&state=s-1", "s-1"},
		{"a refusal without a state", "?error=access_denied", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := setup(t)
			redirect(e, dinterotest.Callback+tc.loc)
			_, err := e.client.Authorize(e.withToken(context.Background(), "T123"), goodAuthorize())
			if info, _ := details(status.Convert(err)); info.GetReason() != service.ErrorReasonOAuthError || info.GetMetadata()["oauthState"] != tc.wantState {
				t.Errorf("got %v (%v); want OAUTH_ERROR with oauthState %q", err, info, tc.wantState)
			}
		})
	}
	t.Run("credentials stripped", func(t *testing.T) {
		e := setup(t)
		// Besides OAuth's credentials: one in another letter case, and
		// Dintero echoing the request's code (goodAuthorize's) or a JWT
		// under names of its own, or as a name.
		jwt := signedToken(t, e, nil)
		redirect(e, dinterotest.Callback+"?state=s-1&code=C-SECRET&refresh_token=R-SECRET&keep=1&id_token="+url.QueryEscape(jwt)+
			"&Code=C3-SECRET&verification_code=vc-4711-secret&session=was-vc-4711-secret&vc-4711-secret=1"+
			"#access_token=A-SECRET&refresh_token=R2-SECRET&code=C2-SECRET&more=2&ID_TOKEN=I-SECRET&sid="+url.QueryEscape(jwt))
		resp, err := e.client.Authorize(e.withToken(context.Background(), "T123"), goodAuthorize())
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetState() != "s-1" || !maps.Equal(resp.GetQuery(), map[string]string{"keep": "1", "session": "was-[REDACTED]"}) ||
			!maps.Equal(resp.GetFragment(), map[string]string{"more": "2", "sid": "[REDACTED]"}) {
			t.Errorf("got state %q query %v fragment %v; want s-1, keep=1 and session masked, more=2 and sid masked", resp.GetState(), resp.GetQuery(), resp.GetFragment())
		}
	})
}

func TestAuthorize(t *testing.T) {
	for _, shape := range []dinteromock.AuthorizeAnswer{dinteromock.AnswerQuery, dinteromock.AnswerFragment, dinteromock.AnswerJSON} {
		t.Run(string(shape), func(t *testing.T) {
			e := setup(t)
			e.fake.Mock.SetBehaviour(dinteromock.Behaviour{Authorize: shape})
			e.fake.AddCode("T123", "vc-4711-secret")
			resp, err := e.client.Authorize(e.withToken(context.Background(), "T123"), goodAuthorize())
			if err != nil {
				t.Fatal(err)
			}
			c := jwt.MapClaims{}
			if _, _, err := jwt.NewParser().ParseUnverified(resp.GetIdToken(), c); err != nil || c["aud"] != dinterotest.Callback {
				t.Errorf("got id_token %q (%v); want the mock's JWT for the callback", resp.GetIdToken(), err)
			}
			if resp.GetState() != "s-1" || len(resp.GetQuery())+len(resp.GetFragment()) != 0 || resp.GetAccessToken() != "" {
				t.Errorf("got state %q query %v fragment %v; want the state, wherever the %s answer puts it, and nothing else", resp.GetState(), resp.GetQuery(), resp.GetFragment(), shape)
			}
			if !strings.HasPrefix(resp.GetLocation(), dinterotest.Callback) {
				t.Errorf("got location %q", resp.GetLocation())
			}
			if v := resp.GetIdTokenVerification(); v.GetResult() != authv1.IdTokenVerification_RESULT_VERIFIED || v.GetClaims().GetSub() != "user-vc-4711-secret" ||
				v.GetClaims().GetEmail() != "user@example.com" || !slices.Equal(v.GetClaims().GetAud(), []string{dinterotest.Callback}) || v.GetClaims().GetExp() == nil {
				t.Errorf("got verification %v; want verified, the mock's user", v)
			}
			reqs := e.fake.Requests()
			if len(reqs) != 2 || reqs[0].Op != dinterotest.OpKeys || reqs[1].Op != dinterotest.OpAuthorize {
				t.Fatalf("got %d requests; want the keys, then authorize", len(reqs))
			}
			q := reqs[1].Query
			for k, v := range map[string]string{"audience": goodAuthorize().Audience, "scope": "openid", "response_type": "authenticate", "client_id": dinterotest.App, "state": "s-1", "redirect_uri": dinterotest.Callback, "verification_code": "vc-4711-secret", "connection": "sms"} {
				if q.Get(k) != v {
					t.Errorf("query %s: got %q; want %q", k, q.Get(k), v)
				}
			}
		})
	}
}

func TestAuth(t *testing.T) {
	t.Run("caller token", func(t *testing.T) {
		e := setup(t, credentials)
		e.fake.AddGrants("T123", "g")
		if _, err := e.client.DeleteClientGrant(e.withToken(context.Background(), "T123"), &authv1.DeleteClientGrantRequest{Oid: "T123", Id: "g"}); err != nil {
			t.Fatal(err)
		}
		if got := e.fake.Requests(); len(got) != 1 || got[0].Header.Get("Authorization") != e.fake.Bearer("T123") {
			t.Errorf("got %d requests; want only the delete, with the caller's token", len(got))
		}
	})
	t.Run("client credentials", func(t *testing.T) {
		e := setup(t, credentials)
		e.fake.AddGrants("T123", "g")
		if _, err := e.client.DeleteClientGrant(context.Background(), &authv1.DeleteClientGrantRequest{Oid: "T123", Id: "g"}); err != nil {
			t.Fatal(err)
		}
		if e.fake.Count(dinterotest.OpToken) != 1 || e.fake.Requests()[1].Header.Get("Authorization") != "Bearer "+e.fake.Mock.IssuedTokens("T123")[0] {
			t.Errorf("got %v; want a token fetch, then the delete with its token", e.fake.Requests())
		}
	})
	t.Run("refused credentials", func(t *testing.T) {
		e := setup(t, func(o *upstream.Options, _ *service.Options) {
			o.Credentials = []upstream.Credentials{{AccountID: "T123", ClientID: "wrong", ClientSecret: "wrong-secret-1234"}}
		})
		_, err := e.client.DeleteClientGrant(context.Background(), &authv1.DeleteClientGrantRequest{Oid: "T123", Id: "g"})
		st := status.Convert(err)
		info, _ := details(st)
		if st.Code() != codes.Internal || info.GetReason() != service.ErrorReasonFacadeCredentialsRejected || !strings.Contains(st.Message(), "client credentials") ||
			strings.Contains(st.Message(), "wrong-secret") || info.GetMetadata()["tokenFetch"] != "true" {
			t.Errorf("got %v (%v); want Internal, FACADE_CREDENTIALS_REJECTED, naming the facade's credentials", err, info)
		}
		lines := e.audit.Lines(t, "audit")
		if len(lines) != 1 || lines[0]["level"] != "ERROR" || lines[0]["alert"] == nil || lines[0]["reason"] != service.ErrorReasonFacadeCredentialsRejected {
			t.Errorf("got audit lines %v; want one ERROR line with an alert", lines)
		}
		if all := e.log.String() + e.audit.String(); strings.Contains(all, "wrong-secret") {
			t.Errorf("the secret reached the logs:\n%s", all)
		}
		if n := counterOf(t, e, "dintero_facade_credentials_rejected_total", map[string]string{"operation": "DeleteClientGrant", "account": "T123"}); n != 1 {
			t.Errorf("got %v rejections counted; want 1", n)
		}
	})
	t.Run("neither", func(t *testing.T) {
		e := setup(t)
		_, err := e.client.Authorize(context.Background(), goodAuthorize())
		st := status.Convert(err)
		info, _ := details(st)
		if st.Code() != codes.Unauthenticated || info.GetReason() != service.ErrorReasonNoCredentials || info.GetMetadata()["verificationCodeSent"] != "false" {
			t.Errorf("got %v (%v); want Unauthenticated, NO_CREDENTIALS, the code not sent", err, info)
		}
		if n := len(e.fake.Requests()); n != 0 {
			t.Errorf("Dintero got %d requests; want none", n)
		}
	})
}

// TestPolicyUnderReload: a caller the policy denies never acts with the
// facade's credentials, however a reload of the credentials or the policy
// races its call: the decision and the call use one snapshot of each.
func TestPolicyUnderReload(t *testing.T) {
	policy, err := service.ParsePolicy([]byte(`rules: [{identity: "spiffe://example.org/allowed", accounts: ["*"], operations: [DeleteClientGrant]}]`))
	if err != nil {
		t.Fatal(err)
	}
	other, err := service.ParsePolicy([]byte(`rules: [{identity: "spiffe://example.org/other", accounts: ["T*"], operations: [DeleteClientGrant, Authorize]}]`))
	if err != nil {
		t.Fatal(err)
	}
	policies := []*service.Policy{policy, other}
	e := setup(t, func(_ *upstream.Options, so *service.Options) { so.Policy = policy })
	creds := []upstream.Credentials{{AccountID: "T123", ClientID: dinterotest.ClientID, ClientSecret: dinterotest.ClientSecret}}
	stop := make(chan struct{})
	var reloads atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := e.up.SetCredentials(creds[:i%2]); err != nil {
				t.Error(err)
				return
			}
			// The policy is reloaded too: each call is decided on one.
			if err := e.srv.SetPolicy(policies[i%2]); err != nil {
				t.Error(err)
				return
			}
			reloads.Add(1)
		}
	})
	codesSeen := map[codes.Code]int{}
	for range 2000 {
		_, err := e.client.DeleteClientGrant(context.Background(), &authv1.DeleteClientGrantRequest{Oid: "T123", Id: "g"})
		codesSeen[status.Code(err)]++
	}
	close(stop)
	wg.Wait()
	if codesSeen[codes.PermissionDenied] == 0 || codesSeen[codes.Unauthenticated] == 0 || len(codesSeen) != 2 || reloads.Load() < 100 {
		t.Errorf("got codes %v under %d reloads; want only PermissionDenied (credentials held) and Unauthenticated (none held), both seen", codesSeen, reloads.Load())
	}
	if n := e.fake.Count(dinterotest.OpDelete) + e.fake.Count(dinterotest.OpToken); n != 0 {
		t.Errorf("Dintero got %d requests from a denied caller; want none", n)
	}
}

// TestSetPolicy: a policy put in force binds the next call (a caller
// without a client certificate, whom no rule admits, is denied from then
// on, and nothing reaches Dintero); a policy cannot be taken away.
func TestSetPolicy(t *testing.T) {
	e := setup(t, credentials)
	e.fake.AddGrants("T123", "g1", "g2")
	del := func(id string) error {
		_, err := e.client.DeleteClientGrant(context.Background(), &authv1.DeleteClientGrantRequest{Oid: "T123", Id: id})
		return err
	}
	if err := del("g1"); err != nil {
		t.Fatalf("without a policy: %v; want the call made with the facade's credentials", err)
	}
	policy, err := service.ParsePolicy([]byte(`rules: [{identity: "spiffe://example.org/allowed", accounts: ["*"], operations: [DeleteClientGrant]}]`))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.srv.SetPolicy(policy); err != nil {
		t.Fatal(err)
	}
	before := e.fake.Count(dinterotest.OpDelete)
	if err := del("g2"); status.Code(err) != codes.PermissionDenied {
		t.Errorf("after SetPolicy: %v; want PermissionDenied", err)
	}
	if err := e.srv.SetPolicy(nil); err == nil {
		t.Error("SetPolicy(nil) was accepted: every caller could act with the facade's credentials")
	}
	if err := del("g2"); status.Code(err) != codes.PermissionDenied {
		t.Errorf("after SetPolicy(nil): %v; want the policy still in force", err)
	}
	if n := e.fake.Count(dinterotest.OpDelete) - before; n != 0 {
		t.Errorf("Dintero got %d deletions from a denied caller; want none", n)
	}
}

// counterOf returns the value of the counter name with labels, 0 when
// there is none.
func counterOf(t *testing.T, e *env, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := e.metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			if maps.Equal(got, labels) {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// TestAllowMissingOnlyForTheGrant: allow_missing takes Dintero's 404 to
// the DELETE as the grant being gone, and nothing else: a 404 from the
// fetch of the facade's own token (an account Dintero does not know), or
// one without Dintero's error document, is an error.
func TestAllowMissingOnlyForTheGrant(t *testing.T) {
	e := setup(t, credentials)
	e.fake.AddGrants("T123", "g")
	e.fake.HandleRaw(dinterotest.OpToken, func(w http.ResponseWriter, _ *http.Request) {
		dinterotest.WriteError(w, http.StatusNotFound, "NOT_FOUND", "account not found")
	})
	resp, err := e.client.DeleteClientGrant(context.Background(), &authv1.DeleteClientGrantRequest{Oid: "T123", Id: "g", AllowMissing: true})
	if info, _ := details(status.Convert(err)); err == nil || info.GetReason() != service.ErrorReasonFacadeCredentialsRejected {
		t.Fatalf("got %v, %v; want FACADE_CREDENTIALS_REJECTED: the grant was never asked about", resp, err)
	}
	if n := e.fake.Count(dinterotest.OpDelete); n != 0 {
		t.Errorf("Dintero got %d DELETEs; want none", n)
	}
	// A 404 without Dintero's error document, from a proxy or a wrong
	// URL, is not Dintero saying the grant is gone.
	e = setup(t)
	e.fake.HandleRaw(dinterotest.OpDelete, dinterotest.Body(http.StatusNotFound, "text/html", []byte("<h1>404 Not Found</h1>")))
	resp, err = e.client.DeleteClientGrant(e.withToken(context.Background(), "T123"), &authv1.DeleteClientGrantRequest{Oid: "T123", Id: "g", AllowMissing: true})
	if status.Code(err) != codes.NotFound {
		t.Errorf("a bare 404: got %v, %v; want NotFound, not the grant taken as gone", resp, err)
	}
}
