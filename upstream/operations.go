package upstream

import (
	"fmt"
	"net/url"
	"strings"
)

// Operation is one of Dintero's HTTP operations as the client calls it:
// its method and path template, as Dintero's spec declares them under its
// operationId; the name its attempts are reported under (Observer, and so
// the operation label of the metrics); and whether it may be sent again.
// Each is declared once, beside the code that calls it: OpDeleteClientGrant,
// OpAuthorize, OpToken and OpKeys. The service's table of operations names
// the one each of its methods calls.
type Operation struct {
	name, method, path, operationID string
	idempotent                      bool
	// segments are path split at its slashes.
	segments []segment
}

// segment is one segment of a path template: a literal, or a placeholder
// such as {oid}.
type segment struct {
	text  string
	param bool
}

// define checks op's path template and returns op. A template that is
// not absolute, or has an empty or malformed segment, is a bug of the
// declaration: it panics when the package is loaded.
func define(op Operation) *Operation {
	if !strings.HasPrefix(op.path, "/") {
		panic(fmt.Sprintf("upstream: operation %s: path %q is not absolute", op.name, op.path))
	}
	for _, s := range strings.Split(op.path[1:], "/") {
		name, isParam := strings.CutPrefix(s, "{")
		if isParam {
			name, isParam = strings.CutSuffix(name, "}")
		}
		if s == "" || strings.ContainsAny(name, "{}") || (!isParam && url.PathEscape(s) != s) {
			panic(fmt.Sprintf("upstream: operation %s: path %q has a malformed segment %q", op.name, op.path, s))
		}
		op.segments = append(op.segments, segment{text: s, param: isParam})
	}
	return &op
}

// Name is the operation's name in the client's reports: the operation
// label of the metrics, such as DeleteClientGrant.
func (o *Operation) Name() string { return o.name }

// Method is the operation's HTTP method.
func (o *Operation) Method() string { return o.method }

// Path is the operation's path template below the base URL, as Dintero's
// spec writes it: /accounts/{oid}/auth/client-grants/{id}.
func (o *Operation) Path() string { return o.path }

// OperationID is the operation's operationId in Dintero's spec, such as
// aid_auths_client_grants_id_delete.
func (o *Operation) OperationID() string { return o.operationID }

// Idempotent reports whether the operation, made twice, has the effect of
// once: only then is it sent again after an answer that may be lost.
func (o *Operation) Idempotent() bool { return o.idempotent }

// String is the operation's name.
func (o *Operation) String() string { return o.name }

// urlPath fills the path template's placeholders with params, in order,
// each escaped into exactly one segment: an id such as "../token", "a/b"
// or "x?y=1#z" can neither reach another endpoint nor add a query. Empty,
// "." and ".." are refused.
func (o *Operation) urlPath(params ...string) (string, error) {
	n, i := 0, 0
	for _, s := range o.segments {
		n++
		if !s.param {
			n += len(s.text)
		}
	}
	for _, p := range params {
		n += len(p)
	}
	var b strings.Builder
	b.Grow(n + n/2)
	for _, s := range o.segments {
		b.WriteByte('/')
		if !s.param {
			b.WriteString(s.text)
			continue
		}
		if i == len(params) {
			return "", fmt.Errorf("%w: %s needs more than %d path parameters", ErrInvalidArgument, o.name, len(params))
		}
		p := params[i]
		i++
		switch p {
		case "", ".", "..":
			return "", fmt.Errorf("%w: path segment %q cannot be sent", ErrInvalidArgument, p)
		}
		b.WriteString(url.PathEscape(p))
	}
	if i != len(params) {
		return "", fmt.Errorf("%w: %s takes %d path parameters, not %d", ErrInvalidArgument, o.name, i, len(params))
	}
	return b.String(), nil
}
