package service_test

import (
	"regexp"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	authv1 "github.com/dintero-facade/dintero-facade/gen/dintero/auth/v1"
	"github.com/dintero-facade/dintero-facade/service"
)

// oidRE2 is Dintero's pattern written out without RE2's missing
// look-ahead, as an independent oracle for the validator.
var oidRE2 = regexp.MustCompile(`^(P|T)([0-9]{3}|[0-9]{8})$`)

// FuzzValidateDeleteClientGrant: validation never panics, accepts exactly
// the requests with a Dintero account id and a sendable grant id, and names
// each bad field in a BadRequest detail.
func FuzzValidateDeleteClientGrant(f *testing.F) {
	for _, s := range [][2]string{{"T123", "g"}, {"P00000000", ".."}, {"P1234", "x"}, {"", ""}, {"T１２３", "a"}, {"T123\n", "b"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, oid, id string) {
		err := service.ValidateDeleteClientGrant(&authv1.DeleteClientGrantRequest{Oid: oid, Id: id})
		oidOK := oidRE2.MatchString(oid)
		idOK := id != "" && id != "." && id != ".."
		if (err == nil) != (oidOK && idOK) {
			t.Fatalf("Validate(%q, %q) = %v; want ok=%v", oid, id, err, oidOK && idOK)
		}
		if err == nil {
			return
		}
		st := status.Convert(err)
		if st.Code() != codes.InvalidArgument {
			t.Fatalf("got %v; want InvalidArgument", err)
		}
		fields := map[string]bool{}
		for _, d := range st.Details() {
			if br, ok := d.(*errdetails.BadRequest); ok {
				for _, v := range br.GetFieldViolations() {
					fields[v.GetField()] = true
				}
			}
		}
		if fields["oid"] == oidOK || fields["id"] == idOK {
			t.Fatalf("Validate(%q, %q) named %v", oid, id, fields)
		}
	})
}

// FuzzValidateAuthorize: validation never panics and refuses a request
// exactly when a required field is blank, the account id is bad or the
// response_type is not the one Dintero names.
func FuzzValidateAuthorize(f *testing.F) {
	f.Add("T123", "aud", "authenticate", "c", "v")
	f.Add("X", "", " ", "c", "")
	f.Fuzz(func(t *testing.T, oid, aud, rt, cid, vc string) {
		err := service.ValidateAuthorize(&authv1.AuthorizeRequest{Oid: oid, Audience: aud, ResponseType: rt, ClientId: cid, VerificationCode: vc})
		blank := func(s string) bool {
			for _, r := range s {
				if r != ' ' && r != '\t' && r != '\n' && r != '\r' && r != '\v' && r != '\f' && r != 0x85 && r != 0xA0 && !(r >= 0x2000 && r <= 0x200a) && r != 0x1680 && r != 0x2028 && r != 0x2029 && r != 0x202f && r != 0x205f && r != 0x3000 {
					return false
				}
			}
			return true
		}
		ok := oidRE2.MatchString(oid) && !blank(aud) && rt == "authenticate" && !blank(cid) && !blank(vc)
		if (err == nil) != ok {
			t.Fatalf("ValidateAuthorize(%q, %q, %q, %q, %q) = %v; want ok=%v", oid, aud, rt, cid, vc, err, ok)
		}
	})
}
