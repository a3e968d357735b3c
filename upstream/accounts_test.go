package upstream_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/dintero-facade/dintero-facade/internal/dinteromock"
	"github.com/dintero-facade/dintero-facade/internal/dinterotest"
	"github.com/dintero-facade/dintero-facade/upstream"
)

// twoClients are a client of each of two accounts, at Dintero.
func twoClients(secretB string) []dinteromock.Client {
	return append(dinterotest.Clients(),
		dinteromock.Client{ID: "client-a", Secret: "secret-a-0001", Accounts: []string{"T111"}, Scopes: []string{"admin:accounts"}},
		dinteromock.Client{ID: "client-b", Secret: secretB, Accounts: []string{"P22222222"}, Scopes: []string{"admin:accounts"}})
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
	fake := dinterotest.New(t, dinterotest.Options{Mock: dinteromock.Options{Clients: twoClients("secret-b-0002")}})
	c := newClient(t, fake.URL, func(o *upstream.Options) { o.Credentials = twoCredentials() })
	for i := range 100 {
		fake.AddGrants([]string{"T111", "P22222222"}[i%2], fmt.Sprint("g", i))
	}
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 100 {
		account := []string{"T111", "P22222222"}[i%2]
		wg.Go(func() {
			if _, _, err := c.DeleteClientGrant(context.Background(), facade(c, account), account, fmt.Sprint("g", i)); err != nil {
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
		if n := len(fake.Mock.IssuedTokens(a)); n != 1 {
			t.Errorf("account %s: %d token fetches; want 1", a, n)
		}
	}
	for _, r := range fake.Requests() {
		if r.Op == dinterotest.OpDelete && r.Header.Get("Authorization") != "Bearer "+fake.Mock.IssuedTokens(r.PathParams["oid"])[0] {
			t.Errorf("a delete for %s carried %q", r.PathParams["oid"], r.Header.Get("Authorization"))
		}
	}
	_, _, err := c.DeleteClientGrant(context.Background(), facade(c, "T999"), "T999", "g")
	if !errors.Is(err, upstream.ErrNoCredentials) || !strings.Contains(err.Error(), "T999") {
		t.Errorf("an account without credentials: got %v; want ErrNoCredentials naming T999", err)
	}
}

// TestSetCredentials: a replacement keeps the tokens of unchanged accounts,
// drops those of changed ones, and a bad set changes nothing.
func TestSetCredentials(t *testing.T) {
	fake := dinterotest.New(t, dinterotest.Options{Mock: dinteromock.Options{Clients: twoClients("secret-b-0002")}})
	c := newClient(t, fake.URL, func(o *upstream.Options) { o.Credentials = twoCredentials() })
	n := 0
	call := func(account string) {
		t.Helper()
		n++
		id := fmt.Sprint("g", n)
		fake.AddGrants(account, id)
		if _, _, err := c.DeleteClientGrant(context.Background(), facade(c, account), account, id); err != nil {
			t.Fatalf("%s: %v", account, err)
		}
	}
	call("T111")
	call("P22222222")

	// Rotate account B's secret at Dintero and in the facade.
	if err := fake.Mock.SetClients(twoClients("secret-b-0003")); err != nil {
		t.Fatal(err)
	}
	creds := twoCredentials()
	creds[1].ClientSecret = "secret-b-0003"
	if err := c.SetCredentials(creds); err != nil {
		t.Fatal(err)
	}
	call("T111")
	call("P22222222")
	if a, b := len(fake.Mock.IssuedTokens("T111")), len(fake.Mock.IssuedTokens("P22222222")); a != 1 || b != 2 {
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
	if b := len(fake.Mock.IssuedTokens("P22222222")); b != 2 {
		t.Errorf("a refused set dropped a token: %d fetches", b)
	}
	if err := c.SetCredentials(creds[:1]); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.DeleteClientGrant(context.Background(), facade(c, "P22222222"), "P22222222", "g"); !errors.Is(err, upstream.ErrNoCredentials) {
		t.Errorf("a removed account: got %v; want ErrNoCredentials", err)
	}
}

// TestASnapshotIsKept: a call uses the credentials it was given, whatever a
// reload does meanwhile: removing the account does not make it fail, and
// adding one does not give a call without credentials any.
func TestASnapshotIsKept(t *testing.T) {
	fake := dinterotest.New(t, dinterotest.Options{Mock: dinteromock.Options{Clients: twoClients("secret-b-0002")}})
	fake.AddGrants("T111", "g1")
	fake.AddGrants("P22222222", "g2")
	c := newClient(t, fake.URL, func(o *upstream.Options) { o.Credentials = twoCredentials()[:1] })
	held := facade(c, "T111")
	none := facade(c, "P22222222")
	if err := c.SetCredentials(twoCredentials()[1:]); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.DeleteClientGrant(context.Background(), held, "T111", "g1"); err != nil {
		t.Errorf("credentials taken before their removal: got %v; want them used", err)
	}
	if _, _, err := c.DeleteClientGrant(context.Background(), none, "P22222222", "g2"); !errors.Is(err, upstream.ErrNoCredentials) {
		t.Errorf("a call decided without credentials: got %v; want ErrNoCredentials though some were added since", err)
	}
	if n := len(fake.Mock.IssuedTokens("P22222222")); n != 0 {
		t.Errorf("%d tokens fetched for the added account; want none", n)
	}
}
