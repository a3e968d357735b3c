package upstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"

	"github.com/go-json-experiment/json"

	"github.com/dintero-facade/dintero-facade/internal/mask"
	"github.com/dintero-facade/dintero-facade/internal/tokensource"
)

// Credentials are the facade's own Dintero client credentials for one
// account, used for calls to that account that bring no token of their own.
type Credentials struct {
	// AccountID is the account whose token endpoint issues the tokens.
	AccountID string
	// ClientID and ClientSecret authenticate the client (HTTP Basic).
	ClientID     string
	ClientSecret string
	// Audience is the audience the tokens are for; empty means
	// defaultAudience(AccountID).
	Audience string
}

// defaultAudience is the audience of the facade's tokens for account unless
// its credentials name another: Dintero identifies an account's API as
// https://api.dintero.com/v1/accounts/{oid} whatever URL the facade calls
// (a proxy, a mock).
func defaultAudience(account string) string { return "https://api.dintero.com/v1/accounts/" + account }

// audience is the audience the tokens are fetched for: Audience, else the
// account's default. The printed forms show it, so that the startup line
// says what the facade asks Dintero for rather than an empty field.
func (c Credentials) audience() string {
	if c.Audience == "" {
		return defaultAudience(c.AccountID)
	}
	return c.Audience
}

// Check says what is wrong with the credentials, naming fields, never a
// value.
func (c Credentials) Check() error {
	var missing []string
	if c.ClientID == "" {
		missing = append(missing, "client_id")
	}
	if c.ClientSecret == "" {
		missing = append(missing, "client_secret")
	}
	switch {
	case !ValidAccountID(c.AccountID):
		return errors.New("account_id is not a Dintero account id (P or T, then 3 or 8 digits)")
	case len(missing) > 0:
		return fmt.Errorf("account %s needs %s", c.AccountID, strings.Join(missing, " and "))
	case strings.ContainsAny(c.ClientID, ":\r\n"):
		return fmt.Errorf("account %s: client_id must not contain a colon or a line break", c.AccountID)
	}
	return nil
}

// String prints the credentials with the secret masked, so that a
// configuration can be printed whole.
func (c Credentials) String() string {
	return fmt.Sprintf("{AccountID:%s ClientID:%s ClientSecret:%s Audience:%s}", c.AccountID, c.ClientID, mask.Value(c.ClientSecret), c.audience())
}

// GoString is String, so that %#v masks the secret too.
func (c Credentials) GoString() string { return c.String() }

// MarshalJSON encodes the credentials with the secret masked: slog, for
// one, encodes a struct nested in a list as JSON, without its LogValue.
func (c Credentials) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		AccountID    string `json:"account_id"`
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
		Audience     string `json:"audience"`
	}{c.AccountID, c.ClientID, mask.Value(c.ClientSecret), c.audience()})
}

// LogValue logs the credentials with the secret masked.
func (c Credentials) LogValue() slog.Value {
	return slog.GroupValue(slog.String("account_id", c.AccountID), slog.String("client_id", c.ClientID), slog.String("client_secret", mask.Value(c.ClientSecret)), slog.String("audience", c.audience()))
}

// TokenSource is the facade's credentials for one account, and the tokens
// fetched with them, as they were when Client.TokenSource was asked: a
// reload afterwards does not change which credentials a call holding it
// uses.
type TokenSource struct {
	creds  Credentials
	tokens *tokensource.Source
}

// SetCredentials replaces the client credentials, checked whole: on error
// nothing changes. Accounts whose credentials did not change keep their
// cached token; the tokens of the others are dropped. Calls in flight finish
// with the credentials they started with.
func (c *Client) SetCredentials(creds []Credentials) error {
	old := c.tokens.Load()
	next := make(map[string]*TokenSource, len(creds))
	for i, cr := range creds {
		if err := cr.Check(); err != nil {
			return fmt.Errorf("upstream: credentials %d: %w", i+1, err)
		}
		if _, dup := next[cr.AccountID]; dup {
			return fmt.Errorf("upstream: account %s has credentials twice", cr.AccountID)
		}
		if old != nil {
			if ts, ok := (*old)[cr.AccountID]; ok && ts.creds == cr {
				next[cr.AccountID] = ts
				continue
			}
		}
		ts := &TokenSource{creds: cr}
		ts.tokens = tokensource.New(func(ctx context.Context) (tokensource.Token, error) { return c.fetchToken(ctx, &ts.creds) },
			tokensource.Options{Timeout: c.opts.Timeout, Now: c.opts.Now})
		next[cr.AccountID] = ts
	}
	c.tokens.Store(&next)
	return nil
}

// TokenSource returns the facade's credentials for account, nil when it
// holds none.
func (c *Client) TokenSource(account string) *TokenSource {
	if m := c.tokens.Load(); m != nil {
		return (*m)[account]
	}
	return nil
}

// Accounts lists the accounts the client holds credentials for.
func (c *Client) Accounts() []string {
	m := c.tokens.Load()
	if m == nil {
		return nil
	}
	out := make([]string, 0, len(*m))
	for a := range *m {
		out = append(out, a)
	}
	sort.Strings(out)
	return out
}
