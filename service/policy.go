package service

import (
	"fmt"
	"os"
	"path"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"
)

// Policy says which callers may act with the facade's own client
// credentials, on which accounts and with which operations. It binds only
// calls that would use those credentials: a caller who brings its own
// Dintero token is judged by Dintero, not by the policy.
type Policy struct {
	Rules []PolicyRule `json:"rules"`
}

// PolicyRule allows callers whose identity matches Identity to use
// Operations on accounts matching one of Accounts. Identity and accounts are
// path.Match patterns: "spiffe://example.org/ns/payments/sa/*", "T*".
type PolicyRule struct {
	Identity   string   `json:"identity"`
	Accounts   []string `json:"accounts"`
	Operations []string `json:"operations"`
}

// LoadPolicy reads a policy from a YAML or JSON file and checks it whole.
func LoadPolicy(file string) (*Policy, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	p, err := ParsePolicy(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return p, nil
}

// ParsePolicy parses a policy, YAML or JSON, refusing unknown fields,
// unknown operations and malformed patterns.
func ParsePolicy(b []byte) (*Policy, error) {
	var p Policy
	if err := yaml.UnmarshalStrict(b, &p); err != nil {
		return nil, err
	}
	if len(p.Rules) == 0 {
		return nil, fmt.Errorf("the policy has no rules: it would deny every use of the facade's credentials")
	}
	for i, r := range p.Rules {
		if r.Identity == "" || len(r.Accounts) == 0 || len(r.Operations) == 0 {
			return nil, fmt.Errorf("rule %d needs an identity, accounts and operations", i+1)
		}
		for _, pat := range append([]string{r.Identity}, r.Accounts...) {
			if _, err := path.Match(pat, ""); err != nil {
				return nil, fmt.Errorf("rule %d: pattern %q: %w", i+1, pat, err)
			}
		}
		for _, op := range r.Operations {
			if _, ok := byName[op]; !ok {
				return nil, fmt.Errorf("rule %d: unknown operation %q (%s)", i+1, op, strings.Join(names(), ", "))
			}
		}
	}
	return &p, nil
}

// Allows reports whether identity may use operation on account with the
// facade's credentials. An empty identity (no client certificate) matches
// no rule.
func (p *Policy) Allows(identity, account, operation string) bool {
	if identity == "" {
		return false
	}
	for _, r := range p.Rules {
		if ok, _ := path.Match(r.Identity, identity); !ok || !slices.Contains(r.Operations, operation) {
			continue
		}
		for _, a := range r.Accounts {
			if ok, _ := path.Match(a, account); ok {
				return true
			}
		}
	}
	return false
}
