package service

import (
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"

	authv1 "github.com/dintero-facade/dintero-facade/gen/dintero/auth/v1"
	"github.com/dintero-facade/dintero-facade/upstream"
)

// The values Dintero's authorize page names for response_type and scope.
const (
	responseTypeAuthenticate = "authenticate"
	scopeOpenID              = "openid"
)

// violations collects what is wrong with a request, field by field.
type violations []*errdetails.BadRequest_FieldViolation

func (v *violations) add(field, desc string) {
	*v = append(*v, &errdetails.BadRequest_FieldViolation{Field: field, Description: desc})
}

func (v *violations) oid(oid string) {
	switch {
	case oid == "":
		v.add("oid", "required: Dintero's account id, P or T followed by 3 or 8 digits")
	case !upstream.ValidAccountID(oid):
		v.add("oid", "must be P or T followed by exactly 3 or 8 digits, such as P00000000 or T123")
	}
}

func (v *violations) required(field, value string) {
	if strings.TrimSpace(value) == "" {
		v.add(field, "required")
	}
}

// utf8 refuses a value that is not UTF-8, which a proto3 string must be:
// a gRPC request could not carry it, but the JSON gateway builds its
// requests in process from the URL's escapes (%FF), unchecked.
func (v *violations) utf8(field, value string) {
	if !utf8.ValidString(value) {
		v.add(field, "must be valid UTF-8")
	}
}

// err returns InvalidArgument naming every bad field in its message and in
// a google.rpc.BadRequest, or nil when there is none. Nothing was sent.
func (v violations) err(op, msg string) error {
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
	return failure(op, upstream.Meta{}, codes.InvalidArgument, ErrorReasonInvalidArgument, b.String(), &errdetails.BadRequest{FieldViolations: v}).Err()
}

// validateDeleteClientGrant checks a request before anything is sent.
func validateDeleteClientGrant(r *authv1.DeleteClientGrantRequest) error {
	var v violations
	v.oid(r.GetOid())
	switch id := r.GetId(); id {
	case "":
		v.add("id", "required: the id of the client grant")
	case ".", "..":
		v.add("id", `must not be "." or ".."`)
	default:
		// It goes into Dintero's path and the audit line as it is.
		if !utf8.ValidString(id) || strings.ContainsFunc(id, unicode.IsControl) {
			v.add("id", "must be valid UTF-8 without control characters")
		}
	}
	return v.err(opDelete, "invalid DeleteClientGrantRequest")
}

// validateAuthorize checks a request before anything is sent, so that a
// request Dintero would refuse does not spend the user's code: the required
// parameters, the values Dintero's authorize page names for response_type
// and scope, and a redirect_uri that is an absolute URL.
func validateAuthorize(r *authv1.AuthorizeRequest) error {
	var v violations
	v.oid(r.GetOid())
	v.required("audience", r.GetAudience())
	v.required("client_id", r.GetClientId())
	v.required("verification_code", r.GetVerificationCode())
	switch rt := r.GetResponseType(); rt {
	case responseTypeAuthenticate:
	case "":
		v.add("response_type", "required: "+responseTypeAuthenticate)
	default:
		v.add("response_type", "must be "+responseTypeAuthenticate)
	}
	if s := r.GetScope(); s != "" && s != scopeOpenID {
		v.add("scope", "must be "+scopeOpenID+" or left out")
	}
	if ru := r.GetRedirectUri(); ru != "" {
		if u, err := url.Parse(ru); err != nil || !u.IsAbs() || u.Host == "" {
			v.add("redirect_uri", "must be an absolute URL, a callback registered for the client")
		}
	}
	for _, f := range [...]struct{ name, value string }{
		{"audience", r.GetAudience()}, {"client_id", r.GetClientId()}, {"state", r.GetState()},
		{"redirect_uri", r.GetRedirectUri()}, {"verification_code", r.GetVerificationCode()}, {"connection", r.GetConnection()},
	} {
		v.utf8(f.name, f.value)
	}
	return v.err(opAuthorize, "invalid AuthorizeRequest")
}
