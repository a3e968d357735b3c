package upstream_test

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/dintero-facade/dintero-facade/internal/dinterotest"
	"github.com/dintero-facade/dintero-facade/internal/h2transport"
	"github.com/dintero-facade/dintero-facade/upstream"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, dinterotest.LeakOptions()...)
}

// counter is an Observer that counts attempts per operation.
type counter struct {
	mu       sync.Mutex
	attempts map[string]int
	tokens   int
	states   []string
}

func (c *counter) Attempt(op string, _, _ int, _ time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.attempts == nil {
		c.attempts = map[string]int{}
	}
	c.attempts[op]++
}

func (c *counter) TokenFetched() {
	c.mu.Lock()
	c.tokens++
	c.mu.Unlock()
}

func (c *counter) BreakerState(state string) {
	c.mu.Lock()
	c.states = append(c.states, state)
	c.mu.Unlock()
}

func (c *counter) get(op string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.attempts[op]
}

// newClient returns a client for base with fast backoff, closing its idle
// connections when the test ends.
func newClient(t *testing.T, base string, mod ...func(*upstream.Options)) *upstream.Client {
	t.Helper()
	tr := h2transport.New(5 * time.Second)
	t.Cleanup(tr.CloseIdleConnections)
	opts := upstream.Options{BaseURL: base, BackoffBase: time.Millisecond, BackoffMax: 5 * time.Millisecond, Transport: tr, UserAgent: "dintero-facade/test"}
	for _, m := range mod {
		m(&opts)
	}
	c, err := upstream.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// withCredentials gives the client the test client's credentials for
// account T123, the account the tests call.
func withCredentials(o *upstream.Options) {
	o.Credentials = []upstream.Credentials{{AccountID: "T123", ClientID: dinterotest.ClientID, ClientSecret: dinterotest.ClientSecret}}
}

// caller is a call that brings its own token for account T123.
func caller(fake *dinterotest.Server) upstream.Call {
	return upstream.Call{Authorization: fake.Bearer("T123"), RequestID: "req-42"}
}

// callerAt is a call with the caller's own token for account.
func callerAt(fake *dinterotest.Server, account string) upstream.Call {
	return upstream.Call{Authorization: fake.Bearer(account), RequestID: "req-42"}
}

// facade is a call on the facade's own credentials for account.
func facade(c *upstream.Client, account string) upstream.Call {
	return upstream.Call{TokenSource: c.TokenSource(account)}
}

// roundTripFunc is an http.RoundTripper made of a function.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
