package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	authv1 "github.com/dintero-facade/dintero-facade/gen/dintero/auth/v1"
	"github.com/dintero-facade/dintero-facade/internal/dinteromock"
	"github.com/dintero-facade/dintero-facade/internal/dinterotest"
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
	if err != nil || strings.Count(ar.GetIdToken(), ".") != 2 || ar.GetState() != "s" {
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

// TestMockFaultsThroughTheFacade: under --mock, a caller's fault request
// (the Dintero-Mock-Fault header through the gateway, dintero-mock-fault
// metadata over gRPC) reaches the mock, whose 429 with Retry-After comes
// back as RetryInfo and Retry-After.
func TestMockFaultsThroughTheFacade(t *testing.T) {
	f := startFacade(t, "", []string{"--mock"}, nil)
	grants := dinteromock.Defaults().Grants[dinteromock.DefaultAccount]
	code, h, body := f.do(t, http.MethodDelete, "/v1/accounts/"+dinteromock.DefaultAccount+"/auth/client-grants/"+grants[0].ID,
		map[string]string{"Dintero-Mock-Fault": "rate-limit=1; retry-after=30"})
	if e := dinterotest.ParseErrorBody(t, body); code != 429 || h.Get("Retry-After") != "30" || e.Code != "TOO_MANY_REQUESTS" {
		t.Errorf("through the gateway: got %d, Retry-After %q, %s; want the mock's 429 with Retry-After 30", code, h.Get("Retry-After"), body)
	}
	ctx := metadata.AppendToOutgoingContext(context.Background(), "dintero-mock-fault", "rate-limit=1; retry-after=30")
	_, err := f.client.DeleteClientGrant(ctx, &authv1.DeleteClientGrantRequest{Oid: dinteromock.DefaultAccount, Id: grants[0].ID})
	var wait time.Duration
	for _, d := range status.Convert(err).Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			wait = ri.GetRetryDelay().AsDuration()
		}
	}
	if status.Code(err) != codes.ResourceExhausted || wait != 30*time.Second {
		t.Errorf("over gRPC: got %v, RetryInfo %v; want the mock's 429 with 30 s", err, wait)
	}
	// Without the fault, the grant is still there to delete.
	if _, err := f.client.DeleteClientGrant(context.Background(), &authv1.DeleteClientGrantRequest{Oid: dinteromock.DefaultAccount, Id: grants[0].ID}); err != nil {
		t.Errorf("after the faults: %v; want the grant deleted", err)
	}
}

// TestMockFaultNotForwarded: a facade that calls anything but its own
// --mock never sends a caller's fault request on.
func TestMockFaultNotForwarded(t *testing.T) {
	fake := dinterotest.New(t)
	fake.AddGrants("T123", "g1", "g2")
	f := startFacade(t, fake.URL, nil, nil)
	if code, _, body := f.do(t, http.MethodDelete, "/v1/accounts/T123/auth/client-grants/g1", map[string]string{"Authorization": fake.Bearer("T123"), "Dintero-Mock-Fault": "fail=1"}); code != 200 {
		t.Errorf("through the gateway: got %d %s; want 200", code, body)
	}
	ctx := metadata.AppendToOutgoingContext(withBearer(context.Background(), fake, "T123"), "dintero-mock-fault", "fail=1")
	if _, err := f.client.DeleteClientGrant(ctx, &authv1.DeleteClientGrantRequest{Oid: "T123", Id: "g2"}); err != nil {
		t.Errorf("over gRPC: %v", err)
	}
	reqs := fake.Requests()
	if len(reqs) != 2 {
		t.Fatalf("Dintero got %d requests; want 2", len(reqs))
	}
	for _, r := range reqs {
		if v := r.Header.Values("Dintero-Mock-Fault"); len(v) > 0 {
			t.Errorf("%s %s carried Dintero-Mock-Fault %q", r.Method, r.Path, v)
		}
	}
}
