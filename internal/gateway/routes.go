package gateway

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"

	authv1 "github.com/dintero-facade/dintero-facade/gen/dintero/auth/v1"
	"github.com/dintero-facade/dintero-facade/gen/openapiv2"
	"github.com/dintero-facade/dintero-facade/service"
)

// route is one path of the JSON API: its template's segments, the methods
// it takes, and the operation behind it. The gateway's own refusals, which
// come before grpc-gateway routes a request, read it: the Allow of a 405,
// and whether the operation says in its errors that nothing was sent.
type route struct {
	segs  []string // "{…}" matches any one segment
	allow []string // HTTP methods, sorted
	// bodies are the methods whose HTTP rule has a body (body: "*"): the
	// one place the gateway learns which requests may have one.
	bodies []string
	op     service.Operation
}

// routes is the JSON API's routes, as its OpenAPI document lists them:
// generated from the same HTTP rules as grpc-gateway's.
type routes []route

// loadRoutes reads the routes of the embedded OpenAPI document, and checks
// that every operation of the service has one.
func loadRoutes() (routes, error) {
	var doc struct {
		Paths map[string]map[string]struct {
			OperationID string `json:"operationId"`
			Parameters  []struct {
				In string `json:"in"`
			} `json:"parameters"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(openapiv2.JSON, &doc); err != nil {
		return nil, fmt.Errorf("gateway: reading the OpenAPI document: %w", err)
	}
	var rs routes
	found := map[string]bool{}
	for p, methods := range doc.Paths {
		rt := route{segs: strings.Split(p, "/")}
		for m, o := range methods {
			// operationId is <Service>_<Method>, and <Service>_<Method><n>
			// for the nth binding of a method that has more than one.
			_, name, _ := strings.Cut(o.OperationID, "_")
			if _, ok := service.OperationOf("/" + authv1.AuthService_ServiceDesc.ServiceName + "/" + name); !ok {
				name = strings.TrimRight(name, "0123456789")
			}
			op, ok := service.OperationOf("/" + authv1.AuthService_ServiceDesc.ServiceName + "/" + name)
			if !ok {
				return nil, fmt.Errorf("gateway: the OpenAPI document's %s %s names no operation of the service (%q)", strings.ToUpper(m), p, o.OperationID)
			}
			rt.allow = append(rt.allow, strings.ToUpper(m))
			if slices.ContainsFunc(o.Parameters, func(p struct {
				In string `json:"in"`
			}) bool {
				return p.In == "body"
			}) {
				rt.bodies = append(rt.bodies, strings.ToUpper(m))
			}
			rt.op = op
			found[op.Method] = true
		}
		slices.Sort(rt.allow)
		rs = append(rs, rt)
	}
	for _, op := range service.Operations() {
		if !found[op.Method] {
			return nil, fmt.Errorf("gateway: the OpenAPI document has no route to %s", op.Name)
		}
	}
	return rs, nil
}

// match returns the route of an escaped path, nil when none has it.
func (rs routes) match(escapedPath string) *route {
	segs := strings.Split(escapedPath, "/")
	for i := range rs {
		if rs[i].matches(segs) {
			return &rs[i]
		}
	}
	return nil
}

func (rt *route) matches(segs []string) bool {
	if len(segs) != len(rt.segs) {
		return false
	}
	for i, t := range rt.segs {
		switch {
		case strings.HasPrefix(t, "{"):
			if segs[i] == "" {
				return false
			}
		case t != segs[i]:
			return false
		}
	}
	return true
}

// sentMetadata is the ErrorInfo metadata of a refusal of a request for rt
// that never reached the service: for an operation that says in its
// errors whether its request may have reached Dintero, that it did not.
func (rt *route) sentMetadata(sent bool) map[string]string {
	md := map[string]string{}
	if rt != nil && rt.op.SentKey != "" {
		md[rt.op.SentKey] = fmt.Sprint(sent)
	}
	return md
}

// takesBody says whether the route's method takes a body; false for no
// route.
func (rt *route) takesBody(method string) bool {
	return rt != nil && slices.Contains(rt.bodies, method)
}

// pathParams are the names of the fields the route's path binds.
func (rt *route) pathParams() []string {
	var out []string
	for _, s := range rt.segs {
		if strings.HasPrefix(s, "{") {
			out = append(out, strings.Trim(s, "{}"))
		}
	}
	return out
}

// allowHeader is the Allow of a 405 for rt.
func (rt *route) allowHeader() string {
	if rt == nil {
		return ""
	}
	return strings.Join(rt.allow, ", ")
}

// maxRecordedSegments bounds the segments of a path that Paths records.
const maxRecordedSegments = 12

// Paths tells what a trace or a log may record of a request's path. The
// caller chooses the path, and may put a secret in it: a query behind an
// escaped "?" (authorize%3Fverification_code%3D…), a code as a segment. So
// a path a route takes is recorded as that route's template
// (/v1/accounts/{oid}/auth/authorize), and any other with each segment that
// is not a literal of some route's template replaced by "*", cut after
// maxRecordedSegments segments.
type Paths struct {
	routes   routes
	literals map[string]bool
}

// NewPaths returns the Paths of the JSON API's routes.
func NewPaths() (*Paths, error) {
	rs, err := loadRoutes()
	if err != nil {
		return nil, err
	}
	p := &Paths{routes: rs, literals: map[string]bool{"": true}}
	for _, rt := range rs {
		for _, s := range rt.segs {
			if !strings.HasPrefix(s, "{") {
				p.literals[s] = true
			}
		}
	}
	return p, nil
}

// Of returns what may be recorded of r's path.
func (p *Paths) Of(r *http.Request) string {
	escaped := r.URL.EscapedPath()
	if rt := p.routes.match(escaped); rt != nil {
		return strings.Join(rt.segs, "/")
	}
	segs := strings.Split(escaped, "/")
	if len(segs) > maxRecordedSegments+1 {
		segs = append(segs[:maxRecordedSegments+1], "…")
	}
	for i, s := range segs {
		if !p.literals[s] && s != "…" {
			segs[i] = "*"
		}
	}
	return strings.Join(segs, "/")
}
