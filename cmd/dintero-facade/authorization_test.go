package main

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	authv1 "github.com/dintero-facade/dintero-facade/gen/dintero/auth/v1"
	"github.com/dintero-facade/dintero-facade/internal/dinteromock"
	"github.com/dintero-facade/dintero-facade/internal/dinterotest"
	"github.com/dintero-facade/dintero-facade/service"
)

// TestGatewayBadAuthorization: through the JSON gateway too, an
// authorization that is blank (an unset $TOKEN) or not "Bearer <token>"
// is refused 401 BAD_AUTHORIZATION before anything reaches Dintero, with
// the facade's credentials at hand all the same; Authorize says its code
// was not sent.
func TestGatewayBadAuthorization(t *testing.T) {
	fake := dinterotest.New(t)
	fake.AddCode("T123", "v1")
	fake.AddGrants("T123", "g")
	f := startFacade(t, fake.URL, []string{"--warm-timeout", "0"}, map[string]string{"DINTERO_CLIENT_ID": dinterotest.ClientID, "DINTERO_CLIENT_SECRET": dinterotest.ClientSecret, "DINTERO_ACCOUNT_ID": "T123"})
	q := url.Values{"audience": {dinteromock.Audience("T123")}, "response_type": {"authenticate"}, "client_id": {dinterotest.App}, "verification_code": {"v1"}}
	for _, auth := range []string{"Bearer ", "Bearer", "Basic dXNlcjpwdw==", "Bearer a b"} {
		for _, call := range []struct{ method, path string }{
			{http.MethodPost, "/v1/accounts/T123/auth/authorize?" + q.Encode()},
			{http.MethodDelete, "/v1/accounts/T123/auth/client-grants/g"},
		} {
			code, _, body := f.do(t, call.method, call.path, map[string]string{"Authorization": auth})
			if code != http.StatusUnauthorized || !strings.Contains(string(body), "BAD_AUTHORIZATION") {
				t.Errorf("%s with %q: got %d %s; want 401 BAD_AUTHORIZATION", call.method, auth, code, body)
			}
			if call.method == http.MethodPost && !strings.Contains(string(body), `"verificationCodeSent":"false"`) {
				t.Errorf("authorize with %q: %s; want verification_code_sent false", auth, body)
			}
		}
	}
	if n := len(fake.Requests()); n != 0 {
		t.Errorf("%d requests reached Dintero; want none", n)
	}
}

// TestGatewayRepeatedAuthorization: two Authorization headers are refused
// 401 BAD_AUTHORIZATION before anything reaches Dintero, never quoting
// either: the call would go out with one of them, where a proxy in front
// may have checked the other.
func TestGatewayRepeatedAuthorization(t *testing.T) {
	fake := dinterotest.New(t)
	fake.AddGrants("T123", "g")
	f := startFacade(t, fake.URL, []string{"--warm-timeout", "0"}, map[string]string{"DINTERO_CLIENT_ID": dinterotest.ClientID, "DINTERO_CLIENT_SECRET": dinterotest.ClientSecret, "DINTERO_ACCOUNT_ID": "T123"})
	req, err := http.NewRequest(http.MethodDelete, f.httpURL+"/v1/accounts/T123/auth/client-grants/g", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Add("Authorization", "Bearer tok-first-77")
	req.Header.Add("Authorization", "Bearer tok-second-88")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), "BAD_AUTHORIZATION") || strings.Contains(string(body), "tok-") {
		t.Errorf("got %d %s; want 401 BAD_AUTHORIZATION, quoting neither", resp.StatusCode, body)
	}
	if n := len(fake.Requests()); n != 0 {
		t.Errorf("%d requests reached Dintero; want none", n)
	}
}

// TestFacadeCredentialsRejected: Dintero refusing the facade's own client
// credentials is not the caller's fault: over gRPC and through the gateway
// it is Internal (HTTP 500), reason FACADE_CREDENTIALS_REJECTED, never
// Unauthenticated (which clients read as "refresh your token"); each call
// writes one ERROR line with an alert, without the secret, and counts in
// dintero_facade_credentials_rejected_total.
func TestFacadeCredentialsRejected(t *testing.T) {
	fake := dinterotest.New(t)
	fake.AddGrants("T123", "g")
	const secret = "wrong-secret-4711"
	f := startFacade(t, fake.URL, []string{"--warm-timeout", "0"}, map[string]string{"DINTERO_CLIENT_ID": dinterotest.ClientID, "DINTERO_CLIENT_SECRET": secret, "DINTERO_ACCOUNT_ID": "T123"})
	_, err := f.client.DeleteClientGrant(context.Background(), &authv1.DeleteClientGrantRequest{Oid: "T123", Id: "g"})
	st := status.Convert(err)
	if reason, md := errorInfo(st); st.Code() != codes.Internal || reason != service.ErrorReasonFacadeCredentialsRejected || md["tokenFetch"] != "true" {
		t.Errorf("gRPC: got %v (%s %v); want Internal, FACADE_CREDENTIALS_REJECTED", err, reason, md)
	}
	code, _, body := f.do(t, http.MethodDelete, "/v1/accounts/T123/auth/client-grants/g", nil)
	if e := dinterotest.ParseErrorBody(t, body); code != http.StatusInternalServerError || e.GrpcCode != "INTERNAL" || !strings.Contains(string(body), `"reason":"FACADE_CREDENTIALS_REJECTED"`) {
		t.Errorf("gateway: got %d %s; want 500, INTERNAL, FACADE_CREDENTIALS_REJECTED", code, body)
	}
	var alerts int
	for _, l := range f.log.Lines(t, "call", "audit") {
		if l["reason"] == service.ErrorReasonFacadeCredentialsRejected && l["level"] == "ERROR" && l["alert"] != nil {
			alerts++
		}
	}
	if alerts != 2 {
		t.Errorf("got %d ERROR lines with an alert; want one per call, 2:\n%s", alerts, f.log.String())
	}
	if strings.Contains(f.log.String(), secret) || strings.Contains(string(body), secret) {
		t.Error("the client secret reached a log line or an answer")
	}
	if n := metric(t, scrape(t, http.DefaultClient, f.httpURL+"/metrics"), "dintero_facade_credentials_rejected_total", `operation="DeleteClientGrant"`, `account="T123"`); n != 2 {
		t.Errorf("got %v rejections counted; want 2", n)
	}
}
