package service

import (
	"regexp"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	authv1 "github.com/dintero-facade/dintero-facade/gen/dintero/auth/v1"
)

// oidPattern is Dintero's account id pattern ^[PT]{1}(?=(?:.{3}|.{8})$)[0-9]*$
// without the look-ahead, which RE2 lacks: P or T, then exactly 3 or 8 digits.
var oidPattern = regexp.MustCompile(`^[PT](?:[0-9]{3}|[0-9]{8})$`)

// violations collects what is wrong with a request, field by field.
type violations []*errdetails.BadRequest_FieldViolation

func (v *violations) add(field, desc string) {
	*v = append(*v, &errdetails.BadRequest_FieldViolation{Field: field, Description: desc})
}

func (v *violations) oid(oid string) {
	switch {
	case oid == "":
		v.add("oid", "required: Dintero's account id, P or T followed by 3 or 8 digits")
	case !oidPattern.MatchString(oid):
		v.add("oid", "must be P or T followed by exactly 3 or 8 digits, such as P00000000 or T123")
	}
}

func (v *violations) required(field, value string) {
	if strings.TrimSpace(value) == "" {
		v.add(field, "required")
	}
}

// err returns InvalidArgument with a google.rpc.BadRequest detail naming
// every bad field, or nil when there is none.
func (v violations) err(msg string) error {
	if len(v) == 0 {
		return nil
	}
	var b strings.Builder
	b.WriteString(msg)
	for i, f := range v {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(f.Field)
		b.WriteString(": ")
		b.WriteString(f.Description)
	}
	st, err := status.New(codes.InvalidArgument, b.String()).WithDetails(&errdetails.BadRequest{FieldViolations: v})
	if err != nil {
		return status.Error(codes.InvalidArgument, b.String())
	}
	return st.Err()
}

// ValidateDeleteClientGrant checks a request before anything is sent.
func ValidateDeleteClientGrant(r *authv1.DeleteClientGrantRequest) error {
	var v violations
	v.oid(r.GetOid())
	switch id := r.GetId(); id {
	case "":
		v.add("id", "required: the id of the client grant")
	case ".", "..":
		v.add("id", `must not be "." or ".."`)
	}
	return v.err("invalid DeleteClientGrantRequest")
}

// ValidateAuthorize checks a request before anything is sent. Enum values
// (scope, response_type) are left to Dintero, the authority on them.
func ValidateAuthorize(r *authv1.AuthorizeRequest) error {
	var v violations
	v.oid(r.GetOid())
	v.required("audience", r.GetAudience())
	v.required("response_type", r.GetResponseType())
	v.required("client_id", r.GetClientId())
	v.required("verification_code", r.GetVerificationCode())
	return v.err("invalid AuthorizeRequest")
}

// ValidAccountID reports whether s is a Dintero account id: P or T, then
// exactly 3 or 8 digits.
func ValidAccountID(s string) bool { return oidPattern.MatchString(s) }
