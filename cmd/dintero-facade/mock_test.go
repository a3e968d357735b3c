package main

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	authv1 "github.com/dintero-facade/dintero-facade/gen/dintero/auth/v1"
	"github.com/dintero-facade/dintero-facade/internal/dinteromock"
)

// TestMockMode runs the facade as the README's first command does (--mock)
// and uses it like a newcomer would: no token of their own, the mock's
// grants and verification codes, over gRPC and the gateway.
func TestMockMode(t *testing.T) {
	f := startFacade(t, "", []string{"--mock"}, nil)
	ctx := context.Background()
	grants := dinteromock.Defaults().Grants[dinteromock.DefaultAccount]

	resp, err := f.client.DeleteClientGrant(ctx, &authv1.DeleteClientGrantRequest{Oid: dinteromock.DefaultAccount, Id: grants[0].ID})
	if err != nil {
		t.Fatalf("delete through the mock: %v", err)
	}
	if g := resp.GetGrant(); g.GetId() != grants[0].ID || g.GetDeletedAt() == nil || g.GetDeletedBy() != dinteromock.DefaultClientID {
		t.Errorf("got %v; want the grant deleted by the mock's client", g)
	}
	_, err = f.client.DeleteClientGrant(ctx, &authv1.DeleteClientGrantRequest{Oid: dinteromock.DefaultAccount, Id: grants[0].ID})
	if status.Code(err) != codes.NotFound {
		t.Errorf("deleting it again: got %v; want NotFound", err)
	}
	if code, _, body := f.do(t, http.MethodDelete, "/v1/accounts/"+dinteromock.DefaultAccount+"/auth/client-grants/"+grants[1].ID, nil); code != 200 || !strings.Contains(string(body), `"deleted_at"`) {
		t.Errorf("gateway delete: got %d %s", code, body)
	}

	req := &authv1.AuthorizeRequest{Oid: dinteromock.DefaultAccount, Audience: "https://api.dintero.com/v1/accounts/T12345678", ResponseType: "authenticate",
		ClientId: dinteromock.DefaultApp, VerificationCode: dinteromock.Defaults().Codes[0].Value, RedirectUri: dinteromock.DefaultCallback, State: "s"}
	ar, err := f.client.Authorize(ctx, req)
	if err != nil || strings.Count(ar.GetIdToken(), ".") != 2 || ar.GetQuery()["state"] != "s" {
		t.Fatalf("authorize through the mock: %v, %v; want a JWT id_token and the state", ar, err)
	}
	_, err = f.client.Authorize(ctx, req)
	if st := status.Convert(err); st.Code() != codes.PermissionDenied || !strings.Contains(st.Message(), "access_denied: the verification code is invalid or was already used") {
		t.Errorf("reusing the code: got %v; want PermissionDenied with Dintero's access_denied", err)
	}
	if !strings.Contains(f.log.String(), "--mock: calling a local mock Dintero") {
		t.Errorf("the log does not say the facade calls a mock:\n%s", f.log.String())
	}
}

func TestMockExcludesDinteroURL(t *testing.T) {
	if _, err := parseConfig([]string{"--mock", "--dintero-url", "https://api.dintero.com/v1"}, envOf(nil), nil); err == nil || !strings.Contains(err.Error(), "exclude") {
		t.Errorf("got %v; want --mock and --dintero-url refused together", err)
	}
}
