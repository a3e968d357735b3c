package upstream_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/dintero-facade/dintero-facade/internal/dinterotest"
	"github.com/dintero-facade/dintero-facade/upstream"
)

var twoAccounts = map[string][][2]string{
	"T111":      {{"client-a", "secret-a-0001"}},
	"P22222222": {{"client-b", "secret-b-0002"}},
}

func twoCredentials() []upstream.Credentials {
	return []upstream.Credentials{
		{AccountID: "T111", ClientID: "client-a", ClientSecret: "secret-a-0001"},
		{AccountID: "P22222222", ClientID: "client-b", ClientSecret: "secret-b-0002"},
	}
}

// TestTokensPerAccount: 100 concurrent callers over two accounts cause
// exactly one token fetch per account, and each call carries its own
// account's token.
func TestTokensPerAccount(t *testing.T) {
	fake := dinterotest.New(t, dinterotest.Options{Clients: twoAccounts})
	c := newClient(t, fake.URL, func(o *upstream.Options) { o.Credentials = twoCredentials() })
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 100 {
		account := []string{"T111", "P22222222"}[i%2]
		wg.Go(func() {
			if _, _, err := c.DeleteClientGrant(context.Background(), upstream.Call{}, account, "g"); err != nil {
				errs <- fmt.Errorf("%s: %w", account, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, a := range []string{"T111", "P22222222"} {
		if n := fake.TokensIssued(a); n != 1 {
			t.Errorf("account %s: %d token fetches; want 1", a, n)
		}
	}
	for _, r := range fake.Requests() {
		if r.Op == dinterotest.OpDelete && r.Header.Get("Authorization") != "Bearer "+dinterotest.AccountToken(r.PathParams["oid"], 1) {
			t.Errorf("a delete for %s carried %q", r.PathParams["oid"], r.Header.Get("Authorization"))
		}
	}
	_, _, err := c.DeleteClientGrant(context.Background(), upstream.Call{}, "T999", "g")
	if !errors.Is(err, upstream.ErrNoCredentials) || !strings.Contains(err.Error(), "T999") {
		t.Errorf("an account without credentials: got %v; want ErrNoCredentials naming T999", err)
	}
}

// TestSetCredentials: a replacement keeps the tokens of unchanged accounts,
// drops those of changed ones, and a bad set changes nothing.
func TestSetCredentials(t *testing.T) {
	fake := dinterotest.New(t, dinterotest.Options{Clients: twoAccounts})
	c := newClient(t, fake.URL, func(o *upstream.Options) { o.Credentials = twoCredentials() })
	call := func(account string) {
		t.Helper()
		if _, _, err := c.DeleteClientGrant(context.Background(), upstream.Call{}, account, "g"); err != nil {
			t.Fatalf("%s: %v", account, err)
		}
	}
	call("T111")
	call("P22222222")

	// Rotate account B's secret at Dintero and in the facade.
	fake.SetClients(map[string][][2]string{"T111": twoAccounts["T111"], "P22222222": {{"client-b", "secret-b-0003"}}})
	creds := twoCredentials()
	creds[1].ClientSecret = "secret-b-0003"
	if err := c.SetCredentials(creds); err != nil {
		t.Fatal(err)
	}
	call("T111")
	call("P22222222")
	if a, b := fake.TokensIssued("T111"), fake.TokensIssued("P22222222"); a != 1 || b != 2 {
		t.Errorf("got %d and %d token fetches; want 1 (unchanged, kept) and 2 (changed, dropped)", a, b)
	}

	bad := append(creds, upstream.Credentials{AccountID: "T111", ClientID: "dup", ClientSecret: "dup-secret"})
	if err := c.SetCredentials(bad); err == nil {
		t.Fatal("credentials with an account twice were accepted")
	}
	if got := fmt.Sprint(c.Accounts()); got != "[P22222222 T111]" {
		t.Errorf("after a refused set: accounts %s; want the previous ones", got)
	}
	call("P22222222")
	if b := fake.TokensIssued("P22222222"); b != 2 {
		t.Errorf("a refused set dropped a token: %d fetches", b)
	}
	if err := c.SetCredentials(creds[:1]); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.DeleteClientGrant(context.Background(), upstream.Call{}, "P22222222", "g"); !errors.Is(err, upstream.ErrNoCredentials) {
		t.Errorf("a removed account: got %v; want ErrNoCredentials", err)
	}
}
