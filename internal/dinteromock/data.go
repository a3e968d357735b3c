package dinteromock

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"time"
)

// audiencePrefix is the start of every Dintero audience: the API of an
// account is identified as audiencePrefix + account id, whatever host the
// mock is reached at.
const audiencePrefix = "https://api.dintero.com/v1/accounts/"

// Audience returns the audience that identifies account's API.
func Audience(account string) string { return audiencePrefix + account }

// accountPattern is Dintero's account id pattern
// ^[PT]{1}(?=(?:.{3}|.{8})$)[0-9]*$ in RE2: P or T, then 3 or 8 digits.
var accountPattern = regexp.MustCompile(`^[PT](?:[0-9]{3}|[0-9]{8})$`)

// Client is an API client of Dintero: it gets tokens with its secret at the
// token endpoint of the accounts it belongs to, and is the application an
// authorize call names in client_id.
type Client struct {
	ID     string `json:"client_id"`
	Secret string `json:"client_secret"`
	// Accounts are the accounts the client has grants for: it gets tokens
	// for their audiences, at their token endpoints.
	Accounts []string `json:"accounts"`
	// Scopes are the scopes of its tokens.
	Scopes []string `json:"scopes"`
	// Callbacks are the redirect URIs registered for the client; authorize
	// redirects only to one of them, the first when the call names none.
	Callbacks []string `json:"callbacks,omitempty"`
}

// Grant is a client grant. The mock writes it in Dintero's JSON shape on its
// own (see grantJSON); these tags only read the --grants file.
type Grant struct {
	ID        string    `json:"id"`
	ClientID  string    `json:"client_id"`
	Audience  string    `json:"audience"`
	Scope     []string  `json:"scope"`
	Type      string    `json:"type,omitempty"`
	OIDC      *OIDC     `json:"oidc,omitempty"`
	CreatedAt time.Time `json:"created_at,omitzero"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
	DeletedAt time.Time `json:"deleted_at,omitzero"`
	CreatedBy string    `json:"created_by,omitempty"`
	DeletedBy string    `json:"deleted_by,omitempty"`
}

// OIDC is a grant's OpenID Connect configuration.
type OIDC struct {
	ClientID     string `json:"client_id,omitempty"`
	ClientSecret string `json:"client_secret,omitempty"`
	Authority    string `json:"authority,omitempty"`
}

// Code is a one-time Passwordless verification code, as Dintero sends it to
// a user for one application (ClientID) of one account.
type Code struct {
	Value    string
	ClientID string
	Account  string
	// Subject, Email and Name are the user's claims in the id_token; Extra
	// are custom claims, which the id_token carries prefixed with ext_.
	Subject string
	Email   string
	Name    string
	Extra   map[string]any
}

// The defaults: an API client allowed to administer the default account,
// an application with a registered callback, three grants and three
// verification codes for that application.
const (
	DefaultClientID     = "mock-client"
	DefaultClientSecret = "mock-client-secret"
	DefaultAccount      = "T12345678"
	// DefaultApp is the application the default codes were sent for.
	DefaultApp = "my-client"
	// DefaultCallback is the application's registered redirect URI.
	DefaultCallback = "https://app.example.com/cb"
)

// Defaults returns the built-in data set.
func Defaults() Options {
	created := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	aud := Audience(DefaultAccount)
	codes := make([]Code, 0, 3)
	for i, v := range []string{"123456", "234567", "345678"} {
		codes = append(codes, Code{Value: v, ClientID: DefaultApp, Account: DefaultAccount,
			Subject: fmt.Sprintf("user-%d", i+1), Email: fmt.Sprintf("user%d@example.com", i+1), Name: fmt.Sprintf("Mock User %d", i+1)})
	}
	return Options{
		Issuer: "https://dintero-mock.local",
		Clients: []Client{
			{ID: DefaultClientID, Secret: DefaultClientSecret, Accounts: []string{DefaultAccount}, Scopes: []string{"admin:accounts"}},
			{ID: DefaultApp, Secret: "my-client-secret", Accounts: []string{DefaultAccount}, Scopes: []string{"openid"}, Callbacks: []string{DefaultCallback, "http://localhost:3000/cb"}},
		},
		Codes:    codes,
		TokenTTL: time.Hour,
		Grants: map[string][]Grant{DefaultAccount: {
			{ID: "2f3c9c1e-6f1a-4f0e-9a53-6f2d0b1c4a01", ClientID: "checkout-client", Audience: aud, Scope: []string{"write:checkout"}, Type: "client_credentials", CreatedAt: created, CreatedBy: "mock-admin"},
			{ID: "7e0e7d2c-1f4a-4b8e-9d55-1f2f9a3c0c11", ClientID: "portal-client", Audience: aud, Scope: []string{"read:accounts"}, Type: "authorization_code", CreatedAt: created, CreatedBy: "mock-admin",
				OIDC: &OIDC{ClientID: "portal-oidc", ClientSecret: "mock-oidc-secret", Authority: "https://identityserver.example.com/access"}},
			{ID: "b5d7c1a8-3e2f-4c6d-8a9b-0c1d2e3f4a5b", ClientID: "reports-client", Audience: aud, Scope: []string{"read:reports"}, CreatedAt: created, CreatedBy: "mock-admin"},
		}},
	}
}

// LoadClients reads API clients from a JSON file:
// [{"client_id", "client_secret", "accounts": […], "scopes": […], "callbacks": […]}, …].
func LoadClients(path string) ([]Client, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var cs []Client
	if err := json.Unmarshal(b, &cs); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for i, c := range cs {
		if err := c.check(); err != nil {
			return nil, fmt.Errorf("%s: client %d: %w", path, i+1, err)
		}
	}
	return cs, nil
}

func (c Client) check() error {
	if c.ID == "" || c.Secret == "" {
		return fmt.Errorf("needs client_id and client_secret")
	}
	for _, a := range c.Accounts {
		if !accountPattern.MatchString(a) {
			return fmt.Errorf("account %q is not a Dintero account id", a)
		}
	}
	return nil
}

// LoadGrants reads grants from a JSON file: {"<account id>": [<grant>, …]}.
func LoadGrants(path string) (map[string][]Grant, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var g map[string][]Grant
	if err := json.Unmarshal(b, &g); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for oid, gs := range g {
		if !accountPattern.MatchString(oid) {
			return nil, fmt.Errorf("%s: %q is not a Dintero account id", path, oid)
		}
		for i, gr := range gs {
			if gr.ID == "" {
				return nil, fmt.Errorf("%s: grant %d of %s has no id", path, i, oid)
			}
		}
	}
	return g, nil
}
