package service_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	authv1 "github.com/dintero-facade/dintero-facade/gen/dintero/auth/v1"
	"github.com/dintero-facade/dintero-facade/internal/dinteromock"
	"github.com/dintero-facade/dintero-facade/internal/dinterotest"
	"github.com/dintero-facade/dintero-facade/internal/idtoken"
	"github.com/dintero-facade/dintero-facade/service"
	"github.com/dintero-facade/dintero-facade/upstream"
)

// answerIDToken makes authorize answer with a 302 carrying an id_token
// signed by the mock's key, with claims changed by mod.
func answerIDToken(t *testing.T, e *env, mod func(jwt.MapClaims)) {
	key, _ := dinterotest.TestKeys(t)
	now := time.Now()
	c := jwt.MapClaims{
		"iss": dinteromock.Defaults().Issuer, "sub": "user-PII-sub-77", "email": "pii-77@example.com", "name": "PII Name 77",
		"aud": dinterotest.Callback, "iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(), "ext_pii": "PII-ext-77",
	}
	if mod != nil {
		mod(c)
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, c)
	tok.Header["kid"] = e.fake.Mock.KeyID()
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	e.fake.Handle(dinterotest.OpAuthorize, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", dinterotest.Callback+"?id_token="+url.QueryEscape(s)+"&state=s-1")
		w.WriteHeader(http.StatusFound)
	})
}

// TestIDTokenVerification: the caller gets the verification and typed
// claims; an invalid token is an answer marked invalid, or, when the
// operator asks, Unauthenticated; the log line and the metric say which,
// and neither holds a claim.
func TestIDTokenVerification(t *testing.T) {
	expired := func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Hour).Unix() }
	t.Run("verified", func(t *testing.T) {
		e := setup(t)
		answerIDToken(t, e, nil)
		resp, err := e.client.Authorize(e.withToken(context.Background(), "T123"), goodAuthorize())
		if err != nil {
			t.Fatal(err)
		}
		v := resp.GetIdTokenVerification()
		cl := v.GetClaims()
		if v.GetResult() != authv1.IdTokenVerification_RESULT_VERIFIED || v.GetReason() != "" || cl.GetSub() != "user-PII-sub-77" || cl.GetEmail() != "pii-77@example.com" ||
			cl.GetName() != "PII Name 77" || cl.GetIss() != dinteromock.Defaults().Issuer || cl.GetIat() == nil || cl.GetExtra().GetFields()["ext_pii"].GetStringValue() != "PII-ext-77" {
			t.Errorf("got %v; want verified with the token's claims", v)
		}
		if n := counterOf(t, e, "dintero_facade_id_token_verifications_total", map[string]string{"result": "verified", "reason": ""}); n != 1 {
			t.Errorf("got %v verified counted; want 1", n)
		}
		checkIDTokenLog(t, e, "verified", "")
	})
	t.Run("invalid, answered", func(t *testing.T) {
		e := setup(t)
		answerIDToken(t, e, expired)
		resp, err := e.client.Authorize(e.withToken(context.Background(), "T123"), goodAuthorize())
		if err != nil {
			t.Fatalf("got %v; want the answer, marked invalid", err)
		}
		if v := resp.GetIdTokenVerification(); v.GetResult() != authv1.IdTokenVerification_RESULT_INVALID || v.GetReason() != idtoken.ReasonExpired || v.GetClaims() != nil {
			t.Errorf("got %v; want invalid, expired, no claims", v)
		}
		if resp.GetLocation() == "" || resp.GetIdToken() == "" {
			t.Errorf("got %v; want the location and the token kept", resp)
		}
		if n := counterOf(t, e, "dintero_facade_id_token_verifications_total", map[string]string{"result": "invalid", "reason": "expired"}); n != 1 {
			t.Errorf("got %v invalid counted; want 1", n)
		}
		checkIDTokenLog(t, e, "invalid", "expired")
	})
	t.Run("invalid, an error when the operator asks", func(t *testing.T) {
		e := setup(t, func(_ *upstream.Options, o *service.Options) { o.RejectInvalidIDToken = true })
		answerIDToken(t, e, expired)
		_, err := e.client.Authorize(e.withToken(context.Background(), "T123"), goodAuthorize())
		st := status.Convert(err)
		info, _ := details(st)
		if st.Code() != codes.Unauthenticated || info.GetReason() != service.ErrorReasonIDTokenInvalid || info.GetDomain() != service.FacadeDomain ||
			info.GetMetadata()["id_token_reason"] != "expired" || info.GetMetadata()["verification_code_sent"] != "true" {
			t.Errorf("got %v (%v); want Unauthenticated, ID_TOKEN_INVALID, expired, the code sent", err, info)
		}
		checkIDTokenLog(t, e, "invalid", "expired")
	})
	t.Run("verified, the flag set", func(t *testing.T) {
		e := setup(t, func(_ *upstream.Options, o *service.Options) { o.RejectInvalidIDToken = true })
		answerIDToken(t, e, nil)
		if _, err := e.client.Authorize(e.withToken(context.Background(), "T123"), goodAuthorize()); err != nil {
			t.Errorf("got %v; want a good token answered", err)
		}
	})
	t.Run("not checked", func(t *testing.T) {
		e := setup(t)
		e.fake.Handle(dinterotest.OpAuthorize, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Location", dinterotest.Callback+"#access_token=A1&state=s-1")
			w.WriteHeader(http.StatusFound)
		})
		resp, err := e.client.Authorize(e.withToken(context.Background(), "T123"), goodAuthorize())
		if err != nil || resp.GetIdTokenVerification().GetResult() != authv1.IdTokenVerification_RESULT_NOT_CHECKED {
			t.Errorf("got %v, %v; want not checked", resp, err)
		}
	})
}

// checkIDTokenLog checks the call's line names the verification, and that
// no log line holds a claim.
func checkIDTokenLog(t *testing.T, e *env, result, reason string) {
	t.Helper()
	lines := e.log.Lines(t, "call")
	if len(lines) != 1 || lines[0]["id_token"] != result || (reason != "" && lines[0]["id_token_reason"] != reason) {
		t.Errorf("got call lines %v; want id_token %s %s", lines, result, reason)
	}
	all := e.log.String() + e.audit.String()
	for _, pii := range []string{"PII-sub-77", "pii-77@", "PII Name 77", "PII-ext-77"} {
		if strings.Contains(all, pii) {
			t.Errorf("a claim (%s) reached the logs:\n%s", pii, all)
		}
	}
}
