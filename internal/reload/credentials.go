// Package reload keeps the facade's file-based configuration current: the
// credentials file, the TLS files and the policy are read at start and
// again when they change or a signal comes, and a file that does not load
// leaves the previous one in force. The environment's one-account
// credentials are read here too, so that every source of credentials has
// one reader.
package reload

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/dintero-facade/dintero-facade/upstream"
)

// credentialFields are the fields of an entry of --credentials-file.
var credentialFields = []string{"account_id", "client_id", "client_secret", "audience"}

// fieldName matches what may be printed of an unknown key: a field-like
// name, which a secret pasted in the wrong place is unlikely to be.
var fieldName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,31}$`)

// yamlLine finds the line number in a YAML decoder's error.
var yamlLine = regexp.MustCompile(`line (\d+)`)

// LoadCredentials reads --credentials-file (YAML or JSON: a list of
// {account_id, client_id, client_secret, audience?}) and checks it whole,
// adding the entries to base (the environment's one-account shortcut).
// Errors name the entry, the account and the field, never a value: the
// decoders quote values in some of their errors, so their messages are not
// passed on, and an account id is printed only once it is known to be one.
func LoadCredentials(file string, base []upstream.Credentials) ([]upstream.Credentials, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("--credentials-file: %w", err)
	}
	entries, err := parseCredentials(b)
	if err != nil {
		return nil, fmt.Errorf("--credentials-file %s: %w", file, err)
	}
	out := append([]upstream.Credentials(nil), base...)
	seen := map[string]bool{}
	for _, c := range base {
		seen[c.AccountID] = true
	}
	for i, c := range entries {
		if err := c.Check(); err != nil {
			return nil, fmt.Errorf("--credentials-file %s: entry %d: %w", file, i+1, err)
		}
		if seen[c.AccountID] {
			return nil, fmt.Errorf("--credentials-file %s: entry %d: account %s has credentials twice", file, i+1, c.AccountID)
		}
		seen[c.AccountID] = true
		out = append(out, c)
	}
	return out, nil
}

// parseCredentials decodes the file's list, checking its shape itself.
func parseCredentials(b []byte) ([]upstream.Credentials, error) {
	var doc any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		where := ""
		if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
			where = " at line " + m[1]
		}
		return nil, fmt.Errorf("not valid YAML or JSON%s", where)
	}
	list, ok := doc.([]any)
	if !ok && doc != nil {
		return nil, errors.New("not a list of {account_id, client_id, client_secret, audience}")
	}
	out := make([]upstream.Credentials, 0, len(list))
	for i, item := range list {
		m, ok := item.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("entry %d is not a mapping of {account_id, client_id, client_secret, audience}", i+1)
		}
		v := map[string]string{}
		for k, x := range m {
			if !slices.Contains(credentialFields, k) {
				if fieldName.MatchString(k) {
					return nil, fmt.Errorf("entry %d: unknown field %q (%s)", i+1, k, strings.Join(credentialFields, ", "))
				}
				return nil, fmt.Errorf("entry %d: an unknown field (%s)", i+1, strings.Join(credentialFields, ", "))
			}
			s, ok := x.(string)
			if !ok {
				return nil, fmt.Errorf("entry %d: %s must be a string", i+1, k)
			}
			v[k] = s
		}
		out = append(out, upstream.Credentials{AccountID: v["account_id"], ClientID: v["client_id"], ClientSecret: v["client_secret"], Audience: v["audience"]})
	}
	return out, nil
}

// CredentialsTarget takes reloaded credentials: upstream.Client.
type CredentialsTarget interface {
	SetCredentials([]upstream.Credentials) error
	Accounts() []string
}

// WatchCredentials reloads --credentials-file into client when the file
// changes and when o.Signal fires (SIGHUP), until ctx ends. A file that
// does not load is logged and ignored: the previous credentials stay.
func WatchCredentials(ctx context.Context, file string, base []upstream.Credentials, client CredentialsTarget, o Options) error {
	k := kind{label: "credentials", reloaded: "credentials reloaded", refused: "credentials not reloaded: keeping the previous ones"}
	return watch(ctx, k, []string{file}, o, func() ([]any, error) {
		creds, err := LoadCredentials(file, base)
		if err == nil {
			err = client.SetCredentials(creds)
		}
		if err != nil {
			return nil, err
		}
		if len(creds) == len(base) {
			o.Log.Warn("--credentials-file holds no credentials: a call that brings no token of its own is refused (NO_CREDENTIALS) until it does", "credentials_file", file)
		}
		return []any{"accounts", client.Accounts()}, nil
	})
}

// CredentialVars are the environment variables CredentialsFromEnv reads:
// one account's credentials. They are never flags, which ps shows.
var CredentialVars = []struct {
	Name, Help string
	// Secret is never logged.
	Secret bool
}{
	{"DINTERO_ACCOUNT_ID", "the account of the facade's client credentials (with the two below, or none)", false},
	{"DINTERO_CLIENT_ID", "the client id of the facade's client credentials", false},
	{"DINTERO_CLIENT_SECRET", "the client secret of the facade's client credentials", true},
	{"DINTERO_AUDIENCE", "the audience of its tokens; default https://api.dintero.com/v1/accounts/<account id>", false},
}

// CredentialsFromEnv reads the facade's client credentials: all of
// DINTERO_CLIENT_ID, DINTERO_CLIENT_SECRET and DINTERO_ACCOUNT_ID, or none.
func CredentialsFromEnv(getenv func(string) string) (*upstream.Credentials, error) {
	c := upstream.Credentials{
		ClientID:     getenv("DINTERO_CLIENT_ID"),
		ClientSecret: getenv("DINTERO_CLIENT_SECRET"),
		AccountID:    getenv("DINTERO_ACCOUNT_ID"),
		Audience:     getenv("DINTERO_AUDIENCE"),
	}
	var missing []string
	for _, v := range []struct{ name, val string }{{"DINTERO_CLIENT_ID", c.ClientID}, {"DINTERO_CLIENT_SECRET", c.ClientSecret}, {"DINTERO_ACCOUNT_ID", c.AccountID}} {
		if v.val == "" {
			missing = append(missing, v.name)
		}
	}
	switch len(missing) {
	case 3:
		if c.Audience != "" {
			return nil, errors.New("DINTERO_AUDIENCE is set without DINTERO_CLIENT_ID, DINTERO_CLIENT_SECRET and DINTERO_ACCOUNT_ID")
		}
		return nil, nil
	case 0:
		if !upstream.ValidAccountID(c.AccountID) {
			// Not quoted: swapped variables would put the secret there.
			return nil, errors.New("DINTERO_ACCOUNT_ID: want a Dintero account id, P or T then 3 or 8 digits, such as P00000001 or T12345678")
		}
		if err := c.Check(); err != nil {
			return nil, fmt.Errorf("DINTERO_CLIENT_ID, DINTERO_CLIENT_SECRET, DINTERO_ACCOUNT_ID: %w", err)
		}
		return &c, nil
	}
	return nil, fmt.Errorf("client credentials are incomplete: %s not set (set all of DINTERO_CLIENT_ID, DINTERO_CLIENT_SECRET and DINTERO_ACCOUNT_ID, or none)", strings.Join(missing, ", "))
}
