package service_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	authv1 "github.com/dintero-facade/dintero-facade/gen/dintero/auth/v1"
	"github.com/dintero-facade/dintero-facade/service"
)

func TestValidation(t *testing.T) {
	e := setup(t)
	authorize := func(mod func(*authv1.AuthorizeRequest)) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			r := goodAuthorize()
			mod(r)
			_, err := e.client.Authorize(ctx, r)
			return err
		}
	}
	deleting := func(oid, id string) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			_, err := e.client.DeleteClientGrant(ctx, &authv1.DeleteClientGrantRequest{Oid: oid, Id: id})
			return err
		}
	}
	type tcase struct {
		name       string
		call       func(ctx context.Context) error
		authorize  bool
		wantFields []string
	}
	tests := []tcase{
		{"delete empty", deleting("", ""), false, []string{"oid", "id"}},
		{"delete dot", deleting("P00000000", "."), false, []string{"id"}},
		{"delete dot dot", deleting("P00000000", ".."), false, []string{"id"}},
		{"authorize empty", func(ctx context.Context) error {
			_, err := e.client.Authorize(ctx, &authv1.AuthorizeRequest{})
			return err
		}, true, []string{"oid", "audience", "client_id", "verification_code", "response_type"}},
		{"authorize blank code", authorize(func(r *authv1.AuthorizeRequest) { r.VerificationCode = "  " }), true, []string{"verification_code"}},
		{"response_type token", authorize(func(r *authv1.AuthorizeRequest) { r.ResponseType = "token" }), true, []string{"response_type"}},
		{"response_type in capitals", authorize(func(r *authv1.AuthorizeRequest) { r.ResponseType = "AUTHENTICATE" }), true, []string{"response_type"}},
		{"scope email", authorize(func(r *authv1.AuthorizeRequest) { r.Scope = "openid email" }), true, []string{"scope"}},
		{"a relative redirect_uri", authorize(func(r *authv1.AuthorizeRequest) { r.RedirectUri = "/cb" }), true, []string{"redirect_uri"}},
		{"a redirect_uri that is no URL", authorize(func(r *authv1.AuthorizeRequest) { r.RedirectUri = "https://a b/%zz" }), true, []string{"redirect_uri"}},
	}
	for _, oid := range []string{"P1234", "X123", "p00000000", "T12", "T1234567", "T123456789", "P00000000 ", "T12a", "PT123", "T１２３"} {
		tests = append(tests, tcase{"oid " + oid, deleting(oid, "g"), false, []string{"oid"}})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call(e.withToken(context.Background(), "T123"))
			st := status.Convert(err)
			if st.Code() != codes.InvalidArgument {
				t.Fatalf("got %v; want InvalidArgument", err)
			}
			info, br := details(st)
			var got []string
			for _, f := range br.GetFieldViolations() {
				got = append(got, f.GetField())
				if !strings.Contains(st.Message(), f.GetField()+": ") {
					t.Errorf("message %q does not name %s", st.Message(), f.GetField())
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.wantFields) {
				t.Errorf("got bad fields %v; want %v", got, tc.wantFields)
			}
			if info.GetDomain() != service.ErrorDomain || info.GetReason() != service.ErrorReasonInvalidArgument {
				t.Errorf("got ErrorInfo %v; want the facade's INVALID_ARGUMENT", info)
			}
			if sent, ok := info.GetMetadata()["verificationCodeSent"]; ok != tc.authorize || (ok && sent != "false") {
				t.Errorf("got verification_code_sent %q (%v); want false on Authorize only", sent, ok)
			}
		})
	}
	if n := len(e.fake.Requests()); n != 0 {
		t.Errorf("Dintero got %d requests; want none", n)
	}
	// The valid ones reach Dintero, whose 404 or redirect is the answer.
	for _, oid := range []string{"T123", "P00000000", "T99999999"} {
		if _, err := e.client.DeleteClientGrant(e.withToken(context.Background(), oid), &authv1.DeleteClientGrantRequest{Oid: oid, Id: "g"}); status.Code(err) != codes.NotFound {
			t.Errorf("oid %s: got %v; want Dintero's NotFound", oid, err)
		}
	}
	r := proto.Clone(goodAuthorize()).(*authv1.AuthorizeRequest)
	r.Scope = ""
	if _, err := e.client.Authorize(e.withToken(context.Background(), "T123"), r); status.Code(err) == codes.InvalidArgument {
		t.Errorf("no scope: got %v; want it sent", err)
	}
}
