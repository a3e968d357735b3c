package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	authv1 "github.com/dintero-facade/dintero-facade/gen/dintero/auth/v1"
	"github.com/dintero-facade/dintero-facade/gen/openapiv2"
	"github.com/dintero-facade/dintero-facade/internal/dinteromock"
	"github.com/dintero-facade/dintero-facade/internal/dinterotest"
	"github.com/dintero-facade/dintero-facade/service"
)

// walkAccount is the account the facade holds credentials for in
// TestEveryMethodOnBothFaces.
const walkAccount = "T12345678"

// samples make, for each method of AuthService, a request the fake Dintero
// answers with success; n makes each one fresh (a grant is deleted once, a
// code spent once). A method without a sample fails
// TestEveryMethodOnBothFaces.
var samples = map[string]func(fake *dinterotest.Server, n int) proto.Message{
	"DeleteClientGrant": func(fake *dinterotest.Server, n int) proto.Message {
		id := fmt.Sprintf("walk-grant-%d", n)
		fake.AddGrants(walkAccount, id)
		return &authv1.DeleteClientGrantRequest{Oid: walkAccount, Id: id}
	},
	"Authorize": func(fake *dinterotest.Server, n int) proto.Message {
		code := fmt.Sprintf("walk-code-%d", n)
		fake.AddCode(walkAccount, code)
		return &authv1.AuthorizeRequest{Oid: walkAccount, Audience: dinteromock.Audience(walkAccount), ResponseType: "authenticate",
			ClientId: dinterotest.App, VerificationCode: code}
	},
}

// route is a method's HTTP rule, as the OpenAPI document says it.
type route struct{ verb, path string }

// routes reads each method's route from the OpenAPI document, generated
// from the HTTP rules: its operationId is AuthService_<method>.
func routes(t *testing.T) map[string]route {
	t.Helper()
	var doc struct {
		Paths map[string]map[string]struct {
			OperationID string `json:"operationId"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(openapiv2.JSON, &doc); err != nil {
		t.Fatal(err)
	}
	out := map[string]route{}
	for p, ops := range doc.Paths {
		for verb, op := range ops {
			out[strings.TrimPrefix(op.OperationID, "AuthService_")] = route{strings.ToUpper(verb), p}
		}
	}
	return out
}

// target is the URL path and query of a JSON call of r with req: the
// fields the path binds in it, the others in the query.
func (r route) target(req proto.Message) string {
	p, q := r.path, url.Values{}
	req.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		name := string(fd.Name())
		if strings.Contains(p, "{"+name+"}") {
			p = strings.Replace(p, "{"+name+"}", url.PathEscape(v.String()), 1)
		} else {
			q.Set(name, v.String())
		}
		return true
	})
	return p + "?" + q.Encode()
}

// TestEveryMethodOnBothFaces walks AuthService_ServiceDesc: every method
// has an entry in the operations table, a sample, and an HTTP rule, and is
// served over gRPC and over JSON through the same path: the policy decides
// on the caller's mTLS identity on both faces (an allowed caller succeeds
// with the facade's credentials, another is denied), each call writes its
// audit line naming the caller and the request id it brought, and the
// metrics count it under its method.
func TestEveryMethodOnBothFaces(t *testing.T) {
	const (
		allowedID = "spiffe://example.org/walk/allowed"
		deniedID  = "spiffe://example.org/walk/denied"
	)
	pki := dinterotest.NewPKI(t)
	fake := dinterotest.New(t)
	var opNames []string
	for _, op := range service.Operations() {
		opNames = append(opNames, op.Name)
	}
	policy := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(policy, fmt.Appendf(nil, "rules:\n  - identity: %s\n    accounts: [\"T*\"]\n    operations: [%s]\n", allowedID, strings.Join(opNames, ", ")), 0o600); err != nil {
		t.Fatal(err)
	}
	f := startFacade(t, fake.URL, []string{"--tls-cert", pki.CertFile, "--tls-key", pki.KeyFile, "--client-ca", pki.CAFile, "--policy-file", policy},
		map[string]string{"DINTERO_CLIENT_ID": dinterotest.ClientID, "DINTERO_CLIENT_SECRET": dinterotest.ClientSecret, "DINTERO_ACCOUNT_ID": walkAccount})
	allowedTLS := pki.ClientTLS(pki.Client(t, "allowed", allowedID))
	deniedTLS := pki.ClientTLS(pki.Client(t, "denied", deniedID))
	conns := map[string]*grpc.ClientConn{allowedID: tlsConn(t, f.grpcAddr, allowedTLS), deniedID: tlsConn(t, f.grpcAddr, deniedTLS)}
	clients := map[string]*http.Client{
		allowedID: {Transport: &http.Transport{TLSClientConfig: allowedTLS}},
		deniedID:  {Transport: &http.Transport{TLSClientConfig: deniedTLS}},
	}
	for _, c := range clients {
		defer c.Transport.(*http.Transport).CloseIdleConnections()
	}
	httpsURL := strings.Replace(f.httpURL, "http://", "https://", 1)
	rules := routes(t)
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	svc := authv1.File_dintero_auth_v1_auth_proto.Services().ByName("AuthService")
	if len(authv1.AuthService_ServiceDesc.Methods) != svc.Methods().Len() || len(authv1.AuthService_ServiceDesc.Streams) != 0 {
		t.Fatalf("the ServiceDesc has %d methods and %d streams; the descriptor %d methods", len(authv1.AuthService_ServiceDesc.Methods), len(authv1.AuthService_ServiceDesc.Streams), svc.Methods().Len())
	}
	n := 0
	for _, m := range authv1.AuthService_ServiceDesc.Methods {
		name := m.MethodName
		full := "/" + authv1.AuthService_ServiceDesc.ServiceName + "/" + name
		t.Run(name, func(t *testing.T) {
			op, ok := service.OperationOf(full)
			switch {
			case !ok || op.Name != name:
				t.Fatalf("%s is not in the operations table", full)
			case op.Upstream == nil:
				t.Fatalf("%s: the operations table names no upstream operation (declare one in upstream/, beside its call)", name)
			case !op.Idempotent && op.SentKey == "":
				t.Errorf("%s is not idempotent, and the operations table names no metadata saying whether a call was sent", name)
			}
			if err := dinterotest.CheckOperation(op.Upstream); err != nil {
				t.Errorf("%s: %v", name, err)
			}
			if op.Upstream.Idempotent() != op.Idempotent {
				t.Errorf("%s: the method's idempotency_level says idempotent %v, upstream's %s %v: retries must agree", name, op.Idempotent, op.Upstream, op.Upstream.Idempotent())
			}
			reached := fake.Count(op.Upstream.OperationID())
			sample, ok := samples[name]
			if !ok {
				t.Fatalf("no sample request of %s: add one to samples", name)
			}
			rule, ok := rules[name]
			if !ok {
				t.Fatalf("%s has no HTTP rule in proto/dintero/auth/v1/auth_http.yaml", name)
			}
			if !strings.Contains(string(readme), "| `"+name+"` |") {
				t.Errorf("README.md's table of operations has no row for %s", name)
			}
			output := dynamicpb.NewMessage(svc.Methods().ByName(protoreflect.Name(name)).Output())
			for _, who := range []string{allowedID, deniedID} {
				n++
				// Over gRPC.
				rid := fmt.Sprintf("walk-grpc-%d", n)
				var header metadata.MD
				ctx := metadata.AppendToOutgoingContext(context.Background(), "x-request-id", rid)
				err := conns[who].Invoke(ctx, full, sample(fake, n), output, grpc.Header(&header))
				wantCode := codes.OK
				if who == deniedID {
					wantCode = codes.PermissionDenied
				}
				if status.Code(err) != wantCode {
					t.Errorf("gRPC as %s: got %v; want %v", who, err, wantCode)
				}
				if got := header.Get("x-request-id"); len(got) != 1 || got[0] != rid {
					t.Errorf("gRPC as %s: the answer's request id %q; want %q", who, got, rid)
				}
				if st := status.Convert(err); op.SentKey != "" && wantCode != codes.OK {
					if _, md := errorInfo(st); md[op.SentKey] != "false" {
						t.Errorf("gRPC as %s: %s = %q; want false", who, op.SentKey, md[op.SentKey])
					}
				}
				checkAuditLine(t, f, full, rid, who, "grpc-go/", who == allowedID)

				// Over JSON.
				n++
				rid = fmt.Sprintf("walk-json-%d", n)
				req, err := http.NewRequest(rule.verb, httpsURL+rule.target(sample(fake, n)), nil)
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("X-Request-Id", rid)
				req.Header.Set("User-Agent", "walk-agent/1")
				resp, err := clients[who].Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				wantHTTP := http.StatusOK
				if who == deniedID {
					wantHTTP = http.StatusForbidden
					e := dinterotest.ParseErrorBody(t, body)
					if _, md := e.Reason(); e.Code != service.ErrorReasonPolicyDenied || (op.SentKey != "" && md[op.SentKey] != "false") {
						t.Errorf("JSON as %s: got %s; want POLICY_DENIED, saying nothing was sent", who, body)
					}
				}
				if resp.StatusCode != wantHTTP {
					t.Errorf("JSON as %s: got %d %s; want %d", who, resp.StatusCode, body, wantHTTP)
				}
				if got := resp.Header.Get("X-Request-Id"); got != rid {
					t.Errorf("JSON as %s: the answer's request id %q; want %q", who, got, rid)
				}
				checkAuditLine(t, f, full, rid, who, "walk-agent/1", who == allowedID)
			}
			metrics := scrape(t, clients[allowedID], httpsURL+"/metrics")
			for _, want := range []struct {
				name   string
				labels []string
			}{
				{"grpc_server_handled_total", []string{`grpc_method="` + name + `"`, `grpc_code="OK"`}},
				{"grpc_server_handled_total", []string{`grpc_method="` + name + `"`, `grpc_code="PermissionDenied"`}},
				{"dintero_facade_credential_decisions_total", []string{`operation="` + name + `"`, `decision="allowed"`}},
				{"dintero_facade_credential_decisions_total", []string{`operation="` + name + `"`, `decision="denied"`}},
			} {
				if got := metric(t, metrics, want.name, want.labels...); got != 2 {
					t.Errorf("%s%v = %v; want 2, one a face", want.name, want.labels, got)
				}
			}
			if got := metric(t, metrics, "dintero_upstream_requests_total", `operation="`+op.Upstream.Name()+`"`); got < 2 {
				t.Errorf("dintero_upstream_requests_total{operation=%q} = %v; want the two allowed calls", op.Upstream.Name(), got)
			}
			if got := fake.Count(op.Upstream.OperationID()) - reached; got != 2 {
				t.Errorf("Dintero's %s got %d requests; want the two allowed calls", op.Upstream.OperationID(), got)
			}
		})
	}
}

// checkAuditLine finds the audit line of the call with request id rid and
// checks that it names method, the caller's identity, address and user
// agent (agent, a prefix), and the decision.
func checkAuditLine(t *testing.T, f *facade, method, rid, identity, agent string, allowed bool) {
	t.Helper()
	decision := "denied"
	if allowed {
		decision = "allowed"
	}
	for _, l := range f.log.Lines(t, "audit") {
		if l["request_id"] != rid {
			continue
		}
		caller, _ := l["caller"].(map[string]any)
		ua, _ := caller["user_agent"].(string)
		if l["method"] != method || l["credentials"] != decision || caller["identity"] != identity || caller["addr"] == "" || !strings.HasPrefix(ua, agent) {
			t.Errorf("audit line %v; want method %s, credentials %s and caller %s", l, method, decision, identity)
		}
		return
	}
	t.Errorf("no audit line of request %s (%s as %s):\n%s", rid, method, identity, f.log.String())
}
