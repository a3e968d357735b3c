package service_test

import (
	"strings"
	"testing"

	"github.com/dintero-facade/dintero-facade/service"
)

const policyYAML = `
rules:
  - identity: spiffe://example.org/ns/payments/sa/refunds
    accounts: ["T*", "P00000001"]
    operations: [DeleteClientGrant]
  - identity: "spiffe://example.org/ns/login/sa/*"
    accounts: ["P*"]
    operations: [Authorize]
`

func TestPolicyAllows(t *testing.T) {
	p, err := service.ParsePolicy([]byte(policyYAML))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		identity, account, op string
		want                  bool
	}{
		{"spiffe://example.org/ns/payments/sa/refunds", "T12345678", "DeleteClientGrant", true},
		{"spiffe://example.org/ns/payments/sa/refunds", "P00000001", "DeleteClientGrant", true},
		{"spiffe://example.org/ns/payments/sa/refunds", "P00000002", "DeleteClientGrant", false}, // account
		{"spiffe://example.org/ns/payments/sa/refunds", "T12345678", "Authorize", false},         // operation
		{"spiffe://example.org/ns/login/sa/web", "P00000002", "Authorize", true},
		{"spiffe://example.org/ns/login/sa/web/extra", "P00000002", "Authorize", false}, // * stops at /
		{"spiffe://example.org/ns/other/sa/x", "T123", "DeleteClientGrant", false},
		{"", "T123", "DeleteClientGrant", false},
	} {
		if got := p.Allows(tc.identity, tc.account, tc.op); got != tc.want {
			t.Errorf("Allows(%q, %q, %q) = %v; want %v", tc.identity, tc.account, tc.op, got, tc.want)
		}
	}
}

func TestParsePolicyRefuses(t *testing.T) {
	for _, tc := range []struct{ name, doc, want string }{
		{"no rules", `rules: []`, "no rules"},
		{"unknown operation", `rules: [{identity: a, accounts: ["T*"], operations: [ListGrants]}]`, "unknown operation"},
		{"missing accounts", `rules: [{identity: a, operations: [Authorize]}]`, "needs an identity, accounts and operations"},
		{"bad pattern", `rules: [{identity: "a[", accounts: ["T*"], operations: [Authorize]}]`, "pattern"},
		{"unknown field", `rules: [{identity: a, accounts: ["T*"], operations: [Authorize], allow: all}]`, "unknown field"},
		{"not YAML", `rules: [`, "yaml"},
	} {
		_, err := service.ParsePolicy([]byte(tc.doc))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v; want an error containing %q", tc.name, err, tc.want)
		}
	}
}
