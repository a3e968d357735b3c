package service_test

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	authv1 "github.com/dintero-facade/dintero-facade/gen/dintero/auth/v1"
	"github.com/dintero-facade/dintero-facade/internal/dinteromock"
	"github.com/dintero-facade/dintero-facade/internal/dinterotest"
	"github.com/dintero-facade/dintero-facade/service"
	"github.com/dintero-facade/dintero-facade/upstream"
)

// answerIDToken makes authorize answer with a 302 carrying an id_token
// signed by the mock's key, with claims changed by mod.
func answerIDToken(t *testing.T, e *env, mod func(jwt.MapClaims)) {
	s := signedToken(t, e, mod)
	e.fake.Handle(dinterotest.OpAuthorize, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", dinterotest.Callback+"?id_token="+url.QueryEscape(s)+"&state=s-1")
		w.WriteHeader(http.StatusFound)
	})
}

// signedToken is an id_token for goodAuthorize signed by the mock's key,
// with claims changed by mod.
func signedToken(t *testing.T, e *env, mod func(jwt.MapClaims)) string {
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
	return s
}

// TestIDTokenVerification: the caller gets the verification, the checks
// that ran and typed claims; an invalid token is an error by default
// (FailedPrecondition for an audience, an issuer or times that do not
// fit, Internal for a forged or malformed token), and an answer marked
// invalid only for a request that accepts unverified tokens; the log line
// and the metric say which, and neither holds a claim.
func TestIDTokenVerification(t *testing.T) {
	expired := func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Hour).Unix() }
	base := []authv1.IdTokenVerification_Check{authv1.IdTokenVerification_CHECK_SIGNATURE, authv1.IdTokenVerification_CHECK_TIMES,
		authv1.IdTokenVerification_CHECK_AUDIENCE, authv1.IdTokenVerification_CHECK_SUBJECT}
	t.Run("verified", func(t *testing.T) {
		e := setup(t)
		answerIDToken(t, e, nil)
		resp, err := e.client.Authorize(e.withToken(context.Background(), "T123"), goodAuthorize())
		if err != nil {
			t.Fatal(err)
		}
		v := resp.GetIdTokenVerification()
		cl := v.GetClaims()
		if v.GetResult() != authv1.IdTokenVerification_RESULT_VERIFIED || v.GetReason() != authv1.IdTokenVerification_REASON_UNSPECIFIED || cl.GetSub() != "user-PII-sub-77" || cl.GetEmail() != "pii-77@example.com" ||
			cl.GetName() != "PII Name 77" || cl.GetIss() != dinteromock.Defaults().Issuer || cl.GetIat() == nil || cl.GetExtra().GetFields()["ext_pii"].GetStringValue() != "PII-ext-77" {
			t.Errorf("got %v; want verified with the token's claims", v)
		}
		if !slices.Equal(v.GetChecks(), base) {
			t.Errorf("got checks %v; want %v (no issuer configured)", v.GetChecks(), base)
		}
		if n := counterOf(t, e, "dintero_facade_id_token_verifications_total", map[string]string{"result": "verified", "reason": ""}); n != 1 {
			t.Errorf("got %v verified counted; want 1", n)
		}
		checkIDTokenLog(t, e, "verified", "")
	})
	t.Run("verified, the issuer checked and listed", func(t *testing.T) {
		e := setup(t, func(u *upstream.Options, o *service.Options) {
			u.IDToken.Issuer = dinteromock.Defaults().Issuer
			o.IDTokenIssuer = dinteromock.Defaults().Issuer
		})
		answerIDToken(t, e, nil)
		resp, err := e.client.Authorize(e.withToken(context.Background(), "T123"), goodAuthorize())
		if want := append(slices.Clone(base), authv1.IdTokenVerification_CHECK_ISSUER); err != nil || !slices.Equal(resp.GetIdTokenVerification().GetChecks(), want) {
			t.Errorf("got %v, %v; want checks %v", resp.GetIdTokenVerification(), err, want)
		}
	})
	for _, tc := range []struct {
		name   string
		mod    func(jwt.MapClaims)
		issuer string
		code   codes.Code
		reason authv1.IdTokenVerification_Reason
		logged string
	}{
		{"expired", expired, "", codes.FailedPrecondition, authv1.IdTokenVerification_REASON_EXPIRED, "expired"},
		{"another audience", func(c jwt.MapClaims) { c["aud"] = "https://elsewhere.example.com/cb" }, "", codes.FailedPrecondition, authv1.IdTokenVerification_REASON_AUDIENCE, "audience"},
		{"another issuer", nil, "https://issuer.example.com", codes.FailedPrecondition, authv1.IdTokenVerification_REASON_ISSUER, "issuer"},
		{"no subject", func(c jwt.MapClaims) { delete(c, "sub") }, "", codes.Internal, authv1.IdTokenVerification_REASON_CLAIMS, "claims"},
	} {
		t.Run("invalid, an error by default: "+tc.name, func(t *testing.T) {
			e := setup(t, func(u *upstream.Options, o *service.Options) {
				u.IDToken.Issuer, o.IDTokenIssuer = tc.issuer, tc.issuer
			})
			answerIDToken(t, e, tc.mod)
			_, err := e.client.Authorize(e.withToken(context.Background(), "T123"), goodAuthorize())
			st := status.Convert(err)
			info, _ := details(st)
			if st.Code() != tc.code || info.GetReason() != service.ErrorReasonIDTokenInvalid || info.GetDomain() != service.ErrorDomain ||
				info.GetMetadata()["idTokenReason"] != tc.reason.String() || info.GetMetadata()["verificationCodeSent"] != "true" {
				t.Errorf("got %v (%v); want %v, ID_TOKEN_INVALID, %v, the code sent", err, info, tc.code, tc.reason)
			}
			checkIDTokenLog(t, e, "invalid", tc.logged)
		})
	}
	t.Run("invalid, a forged signature: Internal", func(t *testing.T) {
		e := setup(t)
		answerIDToken(t, e, nil)
		e.fake.Handle(dinterotest.OpAuthorize, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Location", dinterotest.Callback+"?id_token="+url.QueryEscape(forged(t, e))+"&state=s-1")
			w.WriteHeader(http.StatusFound)
		})
		_, err := e.client.Authorize(e.withToken(context.Background(), "T123"), goodAuthorize())
		st := status.Convert(err)
		info, _ := details(st)
		if st.Code() != codes.Internal || info.GetMetadata()["idTokenReason"] != "REASON_SIGNATURE" {
			t.Errorf("got %v (%v); want Internal, REASON_SIGNATURE", err, info)
		}
	})
	t.Run("invalid, accepted by the request", func(t *testing.T) {
		e := setup(t)
		answerIDToken(t, e, expired)
		req := goodAuthorize()
		req.AcceptUnverifiedIdToken = true
		resp, err := e.client.Authorize(e.withToken(context.Background(), "T123"), req)
		if err != nil {
			t.Fatalf("got %v; want the answer, marked invalid", err)
		}
		if v := resp.GetIdTokenVerification(); v.GetResult() != authv1.IdTokenVerification_RESULT_INVALID || v.GetReason() != authv1.IdTokenVerification_REASON_EXPIRED ||
			v.GetClaims() != nil || !slices.Equal(v.GetChecks(), base) {
			t.Errorf("got %v; want invalid, expired, the checks, no claims", v)
		}
		if resp.GetLocation() == "" || resp.GetIdToken() == "" {
			t.Errorf("got %v; want the location and the token kept", resp)
		}
		if n := counterOf(t, e, "dintero_facade_id_token_verifications_total", map[string]string{"result": "invalid", "reason": "expired"}); n != 1 {
			t.Errorf("got %v invalid counted; want 1", n)
		}
		checkIDTokenLog(t, e, "invalid", "expired")
	})
	t.Run("not checked", func(t *testing.T) {
		e := setup(t)
		e.fake.Handle(dinterotest.OpAuthorize, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Location", dinterotest.Callback+"#access_token=A1&state=s-1")
			w.WriteHeader(http.StatusFound)
		})
		resp, err := e.client.Authorize(e.withToken(context.Background(), "T123"), goodAuthorize())
		if v := resp.GetIdTokenVerification(); err != nil || v.GetResult() != authv1.IdTokenVerification_RESULT_NOT_CHECKED || len(v.GetChecks()) != 0 {
			t.Errorf("got %v, %v; want not checked, no checks", resp, err)
		}
	})
}

// forged is a token with the mock's kid signed by another key.
func forged(t *testing.T, e *env) string {
	t.Helper()
	_, other := dinterotest.TestKeys(t)
	now := time.Now()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"iss": dinteromock.Defaults().Issuer, "sub": "x", "aud": dinterotest.Callback,
		"iat": now.Unix(), "exp": now.Add(time.Minute).Unix()})
	tok.Header["kid"] = e.fake.Mock.KeyID()
	s, err := tok.SignedString(other)
	if err != nil {
		t.Fatal(err)
	}
	return s
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
