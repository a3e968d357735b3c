package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	authv1 "github.com/dintero-facade/dintero-facade/gen/dintero/auth/v1"
	"github.com/dintero-facade/dintero-facade/internal/dinteromock"
	"github.com/dintero-facade/dintero-facade/internal/dinterotest"
	"github.com/dintero-facade/dintero-facade/service"
)

// TestVerifiedIdentity: over gRPC and through the gateway, authorize's
// answer carries the id_token's verification and claims; a key rotation
// at Dintero is followed without a restart; without the keys, the code
// is not sent, and works once they are back.
func TestVerifiedIdentity(t *testing.T) {
	fake := dinterotest.New(t)
	for _, c := range []string{"vc-id-1", "vc-id-2", "vc-id-3"} {
		fake.AddCode("T123", c)
	}
	f := startFacade(t, fake.URL, nil, nil)
	req := &authv1.AuthorizeRequest{Oid: "T123", Audience: dinteromock.Audience("T123"), ResponseType: "authenticate", ClientId: dinterotest.App,
		VerificationCode: "vc-id-1", RedirectUri: dinterotest.Callback, State: "s"}
	resp, err := f.client.Authorize(withBearer(context.Background(), fake, "T123"), req)
	if err != nil {
		t.Fatal(err)
	}
	if v := resp.GetIdTokenVerification(); v.GetResult() != authv1.IdTokenVerification_RESULT_VERIFIED || v.GetClaims().GetSub() != "user-vc-id-1" {
		t.Errorf("gRPC: got %v; want verified, the code's user", v)
	}

	_, next := dinterotest.TestKeys(t)
	if err := fake.Mock.RotateKey(next, false); err != nil {
		t.Fatal(err)
	}
	q := url.Values{"audience": {dinteromock.Audience("T123")}, "response_type": {"authenticate"}, "client_id": {dinterotest.App},
		"verification_code": {"vc-id-2"}, "redirect_uri": {dinterotest.Callback}}
	code, _, body := f.do(t, http.MethodPost, "/v1/accounts/T123/auth/authorize?"+q.Encode(), map[string]string{"Authorization": fake.Bearer("T123")})
	var got struct {
		IDToken      string `json:"id_token"`
		Verification struct {
			Result string `json:"result"`
			Claims struct {
				Sub   string   `json:"sub"`
				Email string   `json:"email"`
				Aud   []string `json:"aud"`
				Exp   string   `json:"exp"`
			} `json:"claims"`
		} `json:"id_token_verification"`
	}
	if err := json.Unmarshal(body, &got); err != nil || code != http.StatusOK {
		t.Fatalf("gateway: got %d %s (%v)", code, body, err)
	}
	v := got.Verification
	if v.Result != "RESULT_VERIFIED" || v.Claims.Sub != "user-vc-id-2" || v.Claims.Email == "" || len(v.Claims.Aud) != 1 || v.Claims.Aud[0] != dinterotest.Callback || v.Claims.Exp == "" {
		t.Errorf("gateway, after the rotation: got %s; want verified with the new key, claims in snake_case", body)
	}
	if n := fake.Count(dinterotest.OpKeys); n != 2 {
		t.Errorf("got %d key fetches; want 2: at first, and for the rotated kid", n)
	}

	// A new facade, and Dintero's keys endpoint down: nothing is sent.
	f2 := startFacade(t, fake.URL, nil, nil)
	fake.HandleRaw(dinterotest.OpKeys, dinterotest.Status(http.StatusServiceUnavailable))
	req.VerificationCode = "vc-id-3"
	_, err = f2.client.Authorize(withBearer(context.Background(), fake, "T123"), req)
	st := status.Convert(err)
	reason, md := errorInfo(st)
	if st.Code() != codes.Unavailable || reason != service.ErrorReasonSigningKeys || md["verificationCodeSent"] != "false" {
		t.Errorf("keys down: got %v (%s %v); want Unavailable, SIGNING_KEYS_UNAVAILABLE, the code not sent", err, reason, md)
	}
	if fake.Mock.CodeUsed("vc-id-3") {
		t.Error("the code was spent though the keys were down")
	}
	fake.Default(dinterotest.OpKeys)
	if resp, err := f2.client.Authorize(withBearer(context.Background(), fake, "T123"), req); err != nil || resp.GetIdTokenVerification().GetResult() != authv1.IdTokenVerification_RESULT_VERIFIED {
		t.Errorf("keys back: got %v, %v; want the same code redeemed, verified", resp, err)
	}
}
