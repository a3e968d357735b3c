package gateway

import (
	"context"
	"net/url"
	"regexp"
	"sort"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/dintero-facade/dintero-facade/service"
)

// queryKey carries a gateway request's query to strictQuery.
type queryKey struct{}

// maxNamed bounds how many parameters one refusal names, and maxName
// their length: a caller must not make an error of any size.
const (
	maxNamed = 10
	maxName  = 64
)

// fieldLike matches what a refusal may quote of a name the request does
// not have: a field-like name, snake_case or lowerCamelCase. A secret sent
// in the wrong place (a query encoded twice, verification_code%3D… with
// its code in the name; a code sent as a name) is unlikely to be one, and
// a refusal's message reaches the call's log line.
var fieldLike = regexp.MustCompile(`^[a-z][A-Za-z0-9_]{0,63}$`)

// unnamed stands in a refusal for a name it does not quote.
const unnamed = "(a name that is not a field name)"

// strictQuery refuses, for the gateway's calls, query parameters the
// request message does not have (a typo such as verificaton_code, or
// nonce), parameters the path already binds, which grpc-gateway would drop
// unseen, and parameters given twice. It runs inside the service's
// interceptor, on every method alike.
func strictQuery(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	raw, _ := ctx.Value(queryKey{}).(string)
	msg, ok := req.(proto.Message)
	if raw == "" || !ok {
		return handler(ctx, req)
	}
	if err := checkQuery(ctx, info.FullMethod, raw, msg); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

// checkQuery checks the names of query raw against msg's fields and the
// route's path parameters.
func checkQuery(ctx context.Context, method, raw string, msg proto.Message) error {
	// grpc-gateway parsed it already: a query that does not parse never
	// gets here.
	q, _ := url.ParseQuery(raw)
	pattern, _ := runtime.HTTPPathPattern(ctx)
	fields := msg.ProtoReflect().Descriptor().Fields()
	var unknown, bound, repeated []string
	for k, v := range q {
		switch {
		case fields.ByName(protoreflect.Name(k)) == nil:
			unknown = append(unknown, k)
		case strings.Contains(pattern, "{"+k+"}") || strings.Contains(pattern, "{"+k+"="):
			bound = append(bound, k)
		case len(v) > 1:
			repeated = append(repeated, k)
		}
	}
	if len(unknown)+len(bound)+len(repeated) == 0 {
		return nil
	}
	var v []*errdetails.BadRequest_FieldViolation
	for _, group := range []struct {
		names []string
		desc  string
	}{
		{unknown, "unknown query parameter"},
		{bound, "given in the path, not in the query"},
		{repeated, "given more than once"},
	} {
		sort.Strings(group.names)
		for _, k := range group.names {
			if len(v) == maxNamed {
				v = append(v, &errdetails.BadRequest_FieldViolation{Field: "query", Description: "and more parameters"})
				return invalidQuery(method, v)
			}
			switch {
			case k == "":
				k = "(a parameter without a name)"
			case !fieldLike.MatchString(k):
				k = unnamed
			}
			v = append(v, &errdetails.BadRequest_FieldViolation{Field: shorten(k, maxName), Description: group.desc})
		}
	}
	return invalidQuery(method, v)
}

// invalidQuery refuses a call of method for the query's violations v,
// naming each parameter (never its value) in the message and in a
// google.rpc.BadRequest. Nothing was sent: an operation that says in its
// errors whether its request reached Dintero says it did not.
func invalidQuery(method string, v []*errdetails.BadRequest_FieldViolation) error {
	var b strings.Builder
	b.WriteString("invalid query")
	for i, f := range v {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(f.Field + ": " + f.Description)
	}
	md := map[string]string{}
	if op, ok := service.OperationOf(method); ok && op.SentKey != "" {
		md[op.SentKey] = "false"
	}
	return refusal(codes.InvalidArgument, service.ErrorReasonInvalidArgument, b.String(), md, &errdetails.BadRequest{FieldViolations: v}).Err()
}

// shorten cuts s to at most n bytes of valid UTF-8, marking the cut.
func shorten(s string, n int) string {
	if len(s) <= n {
		return strings.ToValidUTF8(s, "")
	}
	return strings.ToValidUTF8(s[:n], "") + "…(cut)"
}
