package upstream_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dintero-facade/dintero-facade/internal/dinterotest"
	"github.com/dintero-facade/dintero-facade/upstream"
)

func TestCredentials(t *testing.T) {
	t.Run("no token and no credentials", func(t *testing.T) {
		fake := dinterotest.New(t)
		c := newClient(t, fake.URL)
		if _, meta, err := c.DeleteClientGrant(context.Background(), upstream.Call{}, "T123", "g"); !errors.Is(err, upstream.ErrNoCredentials) || meta.Sent {
			t.Errorf("got %v, sent %v; want ErrNoCredentials, not sent", err, meta.Sent)
		}
		if c.TokenSource("T123") != nil {
			t.Error("TokenSource found credentials the client does not hold")
		}
		if n := len(fake.Requests()); n != 0 {
			t.Errorf("got %d requests; want none", n)
		}
	})
	t.Run("caller token wins", func(t *testing.T) {
		fake := dinterotest.New(t)
		fake.AddGrants("T123", "g")
		c := newClient(t, fake.URL, withCredentials)
		call := caller(fake)
		call.TokenSource = c.TokenSource("T123")
		if _, _, err := c.DeleteClientGrant(context.Background(), call, "T123", "g"); err != nil {
			t.Fatal(err)
		}
		if n := fake.Count(dinterotest.OpToken); n != 0 {
			t.Errorf("got %d token fetches; want none", n)
		}
	})
	t.Run("token request", func(t *testing.T) {
		fake := dinterotest.New(t)
		fake.AddGrants("T123", "g")
		c := newClient(t, fake.URL, withCredentials)
		if _, _, err := c.DeleteClientGrant(context.Background(), facade(c, "T123"), "T123", "g"); err != nil {
			t.Fatal(err)
		}
		reqs := fake.Requests()
		if len(reqs) != 2 || reqs[0].Op != dinterotest.OpToken || reqs[1].Op != dinterotest.OpDelete {
			t.Fatalf("got %v; want a token fetch then the delete", reqs)
		}
		tok := reqs[0]
		if got, want := tok.Header.Get("Authorization"), dinterotest.BasicAuth(dinterotest.ClientID, dinterotest.ClientSecret); got != want {
			t.Errorf("token auth: got %q; want %q", got, want)
		}
		// The audience is Dintero's identifier of the account, not built
		// from the URL the client calls (here the fake's).
		if want := `{"grant_type":"client_credentials","audience":"https://api.dintero.com/v1/accounts/T123"}`; string(tok.Body) != want {
			t.Errorf("token body: got %s; want %s", tok.Body, want)
		}
		if tok.EscapedURL != "/v1/accounts/T123/auth/token" {
			t.Errorf("token URL: got %s", tok.EscapedURL)
		}
		if issued := fake.Mock.IssuedTokens("T123"); len(issued) != 1 || reqs[1].Header.Get("Authorization") != "Bearer "+issued[0] {
			t.Errorf("delete auth: got %q; want the issued token", reqs[1].Header.Get("Authorization"))
		}
	})
	t.Run("an audience of the account's own", func(t *testing.T) {
		fake := dinterotest.New(t)
		c := newClient(t, fake.URL, func(o *upstream.Options) {
			o.Credentials = []upstream.Credentials{{AccountID: "T123", ClientID: dinterotest.ClientID, ClientSecret: dinterotest.ClientSecret, Audience: "https://example.com/my-api"}}
		})
		_, _, err := c.DeleteClientGrant(context.Background(), facade(c, "T123"), "T123", "g")
		var e *upstream.Error
		if !errors.Is(err, upstream.ErrTokenFetch) || !errors.As(err, &e) || e.StatusCode != 403 {
			t.Fatalf("got %v; want the mock's 403 to an audience it has no grant for", err)
		}
		if body := string(fake.Requests()[0].Body); !strings.Contains(body, `"audience":"https://example.com/my-api"`) {
			t.Errorf("token body %s; want the configured audience", body)
		}
	})
}

// TestTokenSingleFlight: 100 concurrent callers share one fetch, and the
// caller that started it giving up does not fail the others.
func TestTokenSingleFlight(t *testing.T) {
	fake := dinterotest.New(t)
	fake.AddGrants("T123", "g")
	gate := make(chan struct{})
	var fetches atomic.Int32
	fake.HandleRaw(dinterotest.OpToken, func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		<-gate
		fake.Mock.ServeHTTP(w, r)
	})
	obs := &counter{}
	c := newClient(t, fake.URL, withCredentials, func(o *upstream.Options) { o.Observer = obs })

	const callers = 100
	for i := range callers {
		fake.AddGrants("T123", fmt.Sprint("g", i))
	}
	// The first caller starts the fetch, then gives up while it runs.
	quitter, quit := context.WithCancel(context.Background())
	quitErr := make(chan error, 1)
	go func() {
		_, _, err := c.DeleteClientGrant(quitter, facade(c, "T123"), "T123", "g")
		quitErr <- err
	}()
	for fetches.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for i := range callers {
		wg.Go(func() {
			if _, _, err := c.DeleteClientGrant(context.Background(), facade(c, "T123"), "T123", fmt.Sprint("g", i)); err != nil {
				errs <- err
			}
		})
	}
	time.Sleep(50 * time.Millisecond)
	quit()
	if err := <-quitErr; !errors.Is(err, context.Canceled) {
		t.Errorf("quitter: got %v; want Canceled", err)
	}
	close(gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := fetches.Load(); n != 1 {
		t.Errorf("got %d token fetches; want 1", n)
	}
	if obs.tokens != 1 {
		t.Errorf("observer saw %d token fetches; want 1", obs.tokens)
	}
	issued := fake.Mock.IssuedTokens("T123")
	for _, r := range fake.Requests() {
		if r.Op == dinterotest.OpDelete && r.Header.Get("Authorization") != "Bearer "+issued[0] {
			t.Errorf("delete sent with %q", r.Header.Get("Authorization"))
		}
	}
}

func TestTokenRefreshAfter401(t *testing.T) {
	// refusing answers 401 to the first token the mock issued.
	refusing := func(fake *dinterotest.Server, op string) *atomic.Int32 {
		var n atomic.Int32
		fake.HandleRaw(op, func(w http.ResponseWriter, r *http.Request) {
			if issued := fake.Mock.IssuedTokens("T123"); len(issued) > 0 && r.Header.Get("Authorization") == "Bearer "+issued[0] {
				n.Add(1)
				dinterotest.WriteError(w, 401, "TOKEN_EXPIRED", "token expired")
				return
			}
			fake.Mock.ServeHTTP(w, r)
		})
		return &n
	}
	t.Run("delete is sent again with a new token", func(t *testing.T) {
		fake := dinterotest.New(t)
		fake.AddGrants("T123", "g")
		refused := refusing(fake, dinterotest.OpDelete)
		c := newClient(t, fake.URL, withCredentials)
		_, meta, err := c.DeleteClientGrant(context.Background(), facade(c, "T123"), "T123", "g")
		if err != nil || meta.Attempts != 2 || meta.Uncertain != nil {
			t.Fatalf("got %v after %d attempts (uncertain %q); want success after 2, nothing uncertain", err, meta.Attempts, meta.Uncertain)
		}
		if refused.Load() != 1 || fake.Count(dinterotest.OpToken) != 2 || fake.Count(dinterotest.OpDelete) != 2 {
			t.Errorf("got %d refusals, %d token fetches, %d deletes; want 1, 2, 2", refused.Load(), fake.Count(dinterotest.OpToken), fake.Count(dinterotest.OpDelete))
		}
	})
	t.Run("authorize is not sent again", func(t *testing.T) {
		fake := dinterotest.New(t)
		fake.AddCode("T123", "VC-1")
		refusing(fake, dinterotest.OpAuthorize)
		c := newClient(t, fake.URL, withCredentials)
		p := allParams
		p.OID, p.Audience, p.VerificationCode = "T123", "https://api.dintero.com/v1/accounts/T123", "VC-1"
		_, _, err := c.Authorize(context.Background(), facade(c, "T123"), p)
		var e *upstream.Error
		if !errors.As(err, &e) || e.StatusCode != 401 || fake.Count(dinterotest.OpAuthorize) != 1 {
			t.Fatalf("got %v after %d calls; want the 401 after 1", err, fake.Count(dinterotest.OpAuthorize))
		}
		// The token was dropped: the caller's retry gets a fresh one.
		if _, _, err := c.Authorize(context.Background(), facade(c, "T123"), p); err != nil {
			t.Fatalf("retry: %v", err)
		}
		if n := fake.Count(dinterotest.OpToken); n != 2 {
			t.Errorf("got %d token fetches; want 2", n)
		}
	})
}

func TestTokenExpiry(t *testing.T) {
	fake := dinterotest.New(t)
	var mu sync.Mutex
	now := time.Now()
	c := newClient(t, fake.URL, withCredentials, func(o *upstream.Options) {
		o.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	})
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	// The mock's tokens live 3600 s: refreshed when less than
	// min(5 min, 360 s) = 300 s is left.
	steps := []struct {
		advance    time.Duration
		wantTokens int
	}{
		{0, 1},
		{3299 * time.Second, 1},
		{2 * time.Second, 2},
		{time.Minute, 2},
	}
	for i, s := range steps {
		advance(s.advance)
		id := fmt.Sprintf("g%d", i)
		fake.AddGrants("T123", id)
		if _, _, err := c.DeleteClientGrant(context.Background(), facade(c, "T123"), "T123", id); err != nil {
			t.Fatal(err)
		}
		if got := fake.Count(dinterotest.OpToken); got != s.wantTokens {
			t.Errorf("step %d: got %d token fetches; want %d", i, got, s.wantTokens)
		}
	}
}

func TestTokenFetchErrors(t *testing.T) {
	fake := dinterotest.New(t)
	c := newClient(t, fake.URL, func(o *upstream.Options) {
		o.Credentials = []upstream.Credentials{{AccountID: "T123", ClientID: "wrong", ClientSecret: "wrong-secret-777"}}
	})
	_, meta, err := c.DeleteClientGrant(context.Background(), facade(c, "T123"), "T123", "g")
	var e *upstream.Error
	if !errors.Is(err, upstream.ErrTokenFetch) || !errors.As(err, &e) || e.StatusCode != 401 || e.Code != "INVALID_CLIENT" || meta.Sent {
		t.Fatalf("got %v, sent %v; want ErrTokenFetch with Dintero's 401, the call not sent", err, meta.Sent)
	}
	if strings.Contains(err.Error(), "wrong-secret-777") {
		t.Errorf("error %q holds the client secret", err)
	}
	if n := fake.Count(dinterotest.OpDelete); n != 0 {
		t.Errorf("got %d deletes; want none", n)
	}
}

// TestTokenAnswers: a token answer the facade cannot use is an error, and a
// token without a lifetime is not cached.
func TestTokenAnswers(t *testing.T) {
	for _, tc := range []struct {
		name        string
		body        string
		wantErr     error
		wantFetches int // for two calls
	}{
		{"no access_token", `{"token_type":"Bearer","expires_in":3600}`, upstream.ErrUnexpectedResponse, 0},
		{"not Bearer", `{"access_token":"x","token_type":"MAC","expires_in":3600}`, upstream.ErrUnexpectedResponse, 0},
		{"a line break in the token", `{"access_token":"x\r\nX-Evil: 1","token_type":"Bearer","expires_in":3600}`, upstream.ErrUnexpectedResponse, 0},
		{"not JSON", `<html>`, upstream.ErrDecode, 0},
		{"no lifetime: used once", `{"access_token":"tok-1","token_type":"Bearer"}`, nil, 2},
		{"a negative lifetime: used once", `{"access_token":"tok-1","token_type":"Bearer","expires_in":-5}`, nil, 2},
		{"an absurd lifetime: cached", `{"access_token":"tok-1","token_type":"Bearer","expires_in":9223372036854775807}`, nil, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := dinterotest.New(t)
			fake.HandleRaw(dinterotest.OpToken, dinterotest.Body(200, "application/json", []byte(tc.body)))
			fake.HandleRaw(dinterotest.OpDelete, dinterotest.Body(204, "", nil))
			c := newClient(t, fake.URL, withCredentials)
			for range 2 {
				_, _, err := c.DeleteClientGrant(context.Background(), facade(c, "T123"), "T123", "g")
				if !errors.Is(err, tc.wantErr) || (tc.wantErr != nil && !errors.Is(err, upstream.ErrTokenFetch)) {
					t.Fatalf("got %v; want %v", err, tc.wantErr)
				}
			}
			if tc.wantErr == nil && fake.Count(dinterotest.OpToken) != tc.wantFetches {
				t.Errorf("got %d fetches for two calls; want %d", fake.Count(dinterotest.OpToken), tc.wantFetches)
			}
		})
	}
}

func TestNew(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts upstream.Options
	}{
		{"relative", upstream.Options{BaseURL: "/v1"}},
		{"query", upstream.Options{BaseURL: "https://api.dintero.com/v1?x=1"}},
		{"user", upstream.Options{BaseURL: "https://u:p@api.dintero.com/v1"}},
		{"http to another host", upstream.Options{BaseURL: "http://api.dintero.com/v1"}},
		{"ftp", upstream.Options{BaseURL: "ftp://127.0.0.1/v1"}},
		{"partial credentials", upstream.Options{BaseURL: upstream.DefaultBaseURL, Credentials: []upstream.Credentials{{AccountID: "T123"}}}},
		{"a bad account id", upstream.Options{BaseURL: upstream.DefaultBaseURL, Credentials: []upstream.Credentials{{AccountID: "X1", ClientID: "a", ClientSecret: "s"}}}},
		{"a colon in the client id", upstream.Options{BaseURL: upstream.DefaultBaseURL, Credentials: []upstream.Credentials{{AccountID: "T123", ClientID: "a:b", ClientSecret: "s"}}}},
		{"an account twice", upstream.Options{BaseURL: upstream.DefaultBaseURL, Credentials: []upstream.Credentials{{AccountID: "T123", ClientID: "a", ClientSecret: "s"}, {AccountID: "T123", ClientID: "b", ClientSecret: "t"}}}},
	} {
		if _, err := upstream.New(tc.opts); err == nil {
			t.Errorf("%s: got no error; want one", tc.name)
		} else if strings.Contains(err.Error(), "p@") {
			t.Errorf("%s: error %q quotes the user", tc.name, err)
		}
	}
	for _, ok := range []string{upstream.DefaultBaseURL, "http://127.0.0.1:8000/v1", "http://localhost/v1", "http://[::1]:1/v1"} {
		if _, err := upstream.New(upstream.Options{BaseURL: ok}); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
}

// TestPrintedAudienceIsEffective: the startup line prints the credentials;
// without an audience of their own it must show the default the token is
// fetched for, not an empty field.
func TestPrintedAudienceIsEffective(t *testing.T) {
	const want = "https://api.dintero.com/v1/accounts/T123"
	cr := upstream.Credentials{AccountID: "T123", ClientID: "id", ClientSecret: "s"}
	b, err := cr.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	var buf strings.Builder
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "c", cr)
	for _, s := range []string{fmt.Sprint(cr), string(b), buf.String()} {
		if !strings.Contains(s, want) {
			t.Errorf("printed %q lacks the effective audience %s", s, want)
		}
	}
	own := upstream.Credentials{AccountID: "T123", ClientID: "id", ClientSecret: "s", Audience: "https://example.com/aud"}
	if s := fmt.Sprint(own); !strings.Contains(s, "https://example.com/aud") || strings.Contains(s, want) {
		t.Errorf("printed %q: want the credentials' own audience", s)
	}
}

func TestSecretsAreMasked(t *testing.T) {
	cr := upstream.Credentials{AccountID: "T123", ClientID: "id", ClientSecret: "very-secret-value"}
	o := upstream.OIDC{ClientID: "c", ClientSecret: "oidc-very-secret"}
	b, err := cr.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{fmt.Sprint(cr), fmt.Sprintf("%+v", cr), fmt.Sprintf("%#v", cr), string(b), fmt.Sprint(o), fmt.Sprintf("%#v", o), fmt.Sprintf("%v", &upstream.Grant{OIDC: &o})} {
		if strings.Contains(s, "very-secret") {
			t.Errorf("printed %q holds the secret", s)
		}
	}
}
