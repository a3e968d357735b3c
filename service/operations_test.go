package service_test

import (
	"fmt"
	"strings"
	"testing"

	authv1 "github.com/dintero-facade/dintero-facade/gen/dintero/auth/v1"
	"github.com/dintero-facade/dintero-facade/service"
	"github.com/dintero-facade/dintero-facade/upstream"
)

// TestOperations: the table has every method of the ServiceDesc, in its
// order, with the name and idempotence its descriptor gives, and what the
// table adds, the Dintero operation it calls among it; a policy names
// operations by it.
func TestOperations(t *testing.T) {
	ops := service.Operations()
	if len(ops) != len(authv1.AuthService_ServiceDesc.Methods) {
		t.Fatalf("got %d operations; want one per method (%d)", len(ops), len(authv1.AuthService_ServiceDesc.Methods))
	}
	for i, m := range authv1.AuthService_ServiceDesc.Methods {
		if want := "/" + authv1.AuthService_ServiceDesc.ServiceName + "/" + m.MethodName; ops[i].Method != want || ops[i].Name != m.MethodName {
			t.Errorf("operation %d: got %s (%s); want %s", i, ops[i].Method, ops[i].Name, want)
		}
	}
	for _, tc := range []struct {
		method string
		want   service.Operation
	}{
		{authv1.AuthService_DeleteClientGrant_FullMethodName, service.Operation{Method: authv1.AuthService_DeleteClientGrant_FullMethodName, Name: "DeleteClientGrant", Idempotent: true, Audited: true, Upstream: upstream.OpDeleteClientGrant}},
		{authv1.AuthService_Authorize_FullMethodName, service.Operation{Method: authv1.AuthService_Authorize_FullMethodName, Name: "Authorize", SentKey: "verificationCodeSent", Upstream: upstream.OpAuthorize}},
	} {
		if got, ok := service.OperationOf(tc.method); !ok || got != tc.want {
			t.Errorf("OperationOf(%s) = %+v, %v; want %+v", tc.method, got, ok, tc.want)
		}
	}
	for _, m := range []string{"/dintero.auth.v1.AuthService/Nothing", "/other.Service/DeleteClientGrant", "DeleteClientGrant", ""} {
		if op, ok := service.OperationOf(m); ok {
			t.Errorf("OperationOf(%q) = %+v; want none", m, op)
		}
	}
	var names []string
	for _, op := range ops {
		names = append(names, op.Name)
	}
	if _, err := service.ParsePolicy(fmt.Appendf(nil, "rules: [{identity: x, accounts: [T1], operations: [%s]}]", strings.Join(names, ", "))); err != nil {
		t.Errorf("a policy naming every operation: %v", err)
	}
	_, err := service.ParsePolicy([]byte("rules: [{identity: x, accounts: [T1], operations: [Refund]}]"))
	if err == nil || !strings.Contains(err.Error(), strings.Join(names, ", ")) {
		t.Errorf("an unknown operation: got %v; want an error listing %v", err, names)
	}
}
