package reload_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dintero-facade/dintero-facade/internal/reload"
	"github.com/dintero-facade/dintero-facade/upstream"
)

func TestLoadCredentials(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.json", `[{"account_id":"T111","client_id":"a","client_secret":"sa-secret"},{"account_id":"P22222222","client_id":"b","client_secret":"sb-secret","audience":"https://api.dintero.com/v1/accounts/P22222222"}]`)
	creds, err := reload.LoadCredentials(good, nil)
	if err != nil || len(creds) != 2 || creds[1].Audience == "" {
		t.Fatalf("JSON file: got %v, %v", creds, err)
	}
	// Errors name the entry and the field, never a value: each case holds
	// a value that must not reach the error.
	for _, tc := range []struct{ name, content, want string }{
		{"bad account", "- {account_id: X1-s3cr3t, client_id: a, client_secret: s3cr3t-1}\n", "entry 1: account_id is not a Dintero account id"},
		{"a secret in the account field", "- {account_id: s3cr3t-LEAK-1, client_id: a, client_secret: b}\n", "entry 1: account_id is not"},
		{"missing secret", "- {account_id: T111, client_id: a}\n", "entry 1: account T111 needs client_secret"},
		{"missing both", "- {account_id: T111}\n", "needs client_id and client_secret"},
		{"twice", "- {account_id: T111, client_id: a, client_secret: s3cr3t-1}\n- {account_id: T111, client_id: b, client_secret: s3cr3t-2}\n", "entry 2: account T111 has credentials twice"},
		{"unknown field", "- {account_id: T111, client_id: a, client_secret: s3cr3t-1, secret: x}\n", `entry 1: unknown field "secret"`},
		{"a secret as a key", "- {account_id: T111, client_id: a, s3cr3t-LEAK-1: x}\n", "entry 1: an unknown field"},
		{"not a list", "account_id: T111\nclient_secret: s3cr3t-1\n", "not a list"},
		{"an entry that is no mapping", "- s3cr3t-LEAK-1\n", "entry 1 is not a mapping"},
		{"a secret of the wrong type", "- {account_id: T111, client_id: a, client_secret: [s3cr3t-LEAK-1]}\n", "entry 1: client_secret must be a string"},
		{"an unterminated quote", "- account_id: T111\n  client_id: a\n  client_secret: \"s3cr3t-LEAK-1\n", "not valid YAML or JSON"},
		{"a broken mapping", "- account_id: T111\n  client_secret: s3cr3t-LEAK-1: x: y\n", "not valid YAML or JSON at line 2"},
		{"a tab", "- account_id: T111\n\tclient_secret: s3cr3t-LEAK-1\n", "not valid YAML or JSON"},
		{"a tag the value does not fit", "- account_id: T111\n  client_id: a\n  client_secret: !!int s3cr3t-LEAK-1\n", "not valid YAML or JSON"},
		{"an alias that names the secret", "- account_id: T111\n  client_id: a\n  client_secret: *s3cr3t-LEAK-1\n", "not valid YAML or JSON"},
		{"JSON with a type error", `[{"account_id":"T111","client_id":"a","client_secret":{"v":"s3cr3t-LEAK-1"}}]`, "client_secret must be a string"},
	} {
		_, err := reload.LoadCredentials(write(strings.ReplaceAll(tc.name, " ", "_")+".yaml", tc.content), nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), "X1") {
			t.Errorf("%s: got %v; want an error containing %q and no value", tc.name, err, tc.want)
		}
	}
	// The environment's account and the file's may not overlap.
	if _, err := reload.LoadCredentials(good, []upstream.Credentials{{AccountID: "T111", ClientID: "env", ClientSecret: "e"}}); err == nil {
		t.Error("an account in both the environment and the file was accepted")
	}
}
