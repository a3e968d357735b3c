// Command dintero-mock serves a local, stateful Dintero auth API on
// loopback: client-grant deletion, authorize with one-time verification
// codes, client-credentials tokens and id_tokens (RS256) and the accounts'
// signing keys. At start it prints its PID, its client credentials and
// the facade command that uses them. POST /_mock/rotate-keys (from
// loopback) or SIGUSR1 rotates the signing key, as Dintero may, so that a
// client's handling of a rotation can be tried. Every flag has a variable,
// DINTERO_MOCK_<FLAG>.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/dintero-facade/dintero-facade/internal/dinteromock"
	"github.com/dintero-facade/dintero-facade/internal/flagenv"
)

func main() {
	err := run(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "dintero-mock: %v\nRun dintero-mock --help for every flag and its variable.\n", err)
		os.Exit(2)
	}
}

// envPrefix prefixes the variable of every flag.
const envPrefix = "DINTERO_MOCK_"

// options are the mock's settings.
type options struct {
	addr, grants, clients, codes, authorize string
	latency                                 time.Duration
	fail, rateLimit                         float64
	retryAfter                              int
}

func (o *options) table() []flagenv.Option {
	return []flagenv.Option{
		{Name: "addr", Field: &o.addr, Default: "127.0.0.1:8000", Help: "listen address (keep it on loopback)"},
		{Name: "grants", Field: &o.grants, Default: "", Help: `JSON file of grants by account, {"T12345678": [{"id": …}, …]}; empty: a built-in set`},
		{Name: "clients", Field: &o.clients, Default: "", Help: `JSON file of API clients and applications, [{"client_id", "client_secret", "accounts": ["T12345678"], "scopes": ["admin:accounts"], "callbacks": ["https://…"]}]; empty: mock-client/mock-client-secret with admin:accounts on T12345678, and the application my-client with the callback https://app.example.com/cb`},
		{Name: "codes", Field: &o.codes, Default: "", Help: "comma-separated one-time verification codes, sent for the application my-client on account T12345678; empty: 123456,234567,345678"},
		{Name: "authorize-answer", Field: &o.authorize, Default: "query", Help: "how authorize answers: query (302, tokens in the Location's query), fragment (302, in its fragment) or json (200 {\"redirect_uri\"} to Accept: application/json)"},
		{Name: "latency", Field: &o.latency, Default: time.Duration(0), Help: "fault: latency added to every answer"},
		{Name: "failure-rate", Field: &o.fail, Default: 0.0, Help: "fault: share of calls answered 503, 0 to 1"},
		{Name: "rate-limit-rate", Field: &o.rateLimit, Default: 0.0, Help: "fault: share of calls answered 429, 0 to 1"},
		{Name: "retry-after", Field: &o.retryAfter, Default: 1, Help: "fault: Retry-After seconds of the 429s"},
	}
}

// run serves the mock until SIGINT or SIGTERM, printing to out what a
// caller needs to use it.
func run(args []string, getenv func(string) string, out io.Writer) error {
	var o options
	fs := flag.NewFlagSet("dintero-mock", flag.ContinueOnError)
	flagenv.Register(fs, envPrefix, o.table())
	if _, err := flagenv.Parse(fs, envPrefix, args, getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(out, "Usage of dintero-mock:\n")
			fs.SetOutput(out)
			fs.PrintDefaults()
		}
		return err
	}
	mo, err := mockOptions(o)
	if err != nil {
		return err
	}
	m, err := dinteromock.New(mo)
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", o.addr)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(out, nil))
	srv := &http.Server{Handler: m.WithAdmin(), ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// SIGUSR1 is caught before the banner offers it: sent at once on
	// reading the pid, it would otherwise kill the mock (its default).
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	defer signal.Stop(usr1)
	go rotateOn(ctx, usr1, m, log)
	fmt.Fprint(out, banner(os.Getpid(), "http://"+l.Addr().String(), mo))
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// mockOptions turns the settings into the mock's options.
func mockOptions(o options) (dinteromock.Options, error) {
	mo := dinteromock.Options{Behaviour: dinteromock.Behaviour{
		Faults:    dinteromock.Faults{Latency: o.latency, FailureRate: o.fail, RateLimitRate: o.rateLimit, RetryAfter: o.retryAfter},
		Authorize: dinteromock.AuthorizeAnswer(o.authorize),
	}}
	switch mo.Behaviour.Authorize {
	case dinteromock.AnswerQuery, dinteromock.AnswerFragment, dinteromock.AnswerJSON:
	default:
		return mo, fmt.Errorf("--authorize-answer %q: want query, fragment or json", o.authorize)
	}
	if o.grants != "" {
		g, err := dinteromock.LoadGrants(o.grants)
		if err != nil {
			return mo, err
		}
		mo.Grants = g
	}
	if o.clients != "" {
		c, err := dinteromock.LoadClients(o.clients)
		if err != nil {
			return mo, err
		}
		mo.Clients = c
	}
	if o.codes != "" {
		for i, v := range strings.Split(o.codes, ",") {
			mo.Codes = append(mo.Codes, dinteromock.Code{Value: v, ClientID: dinteromock.DefaultApp, Account: dinteromock.DefaultAccount,
				Subject: fmt.Sprintf("user-%d", i+1), Email: fmt.Sprintf("user%d@example.com", i+1), Name: fmt.Sprintf("Mock User %d", i+1)})
		}
	}
	return mo, nil
}

// banner is what the mock prints at start: its PID, where it serves, the
// client credentials it accepts and the facade command that uses them,
// its data, and how to rotate its signing key.
func banner(pid int, root string, o dinteromock.Options) string {
	d := dinteromock.Defaults()
	clients, grants, codes := slices.Clone(o.Clients), o.Grants, o.Codes
	if len(clients) == 0 {
		clients = d.Clients
	}
	if grants == nil {
		grants = d.Grants
	}
	if codes == nil {
		codes = d.Codes
	}
	var b strings.Builder
	fmt.Fprintf(&b, "dintero-mock (pid %d) serves Dintero's auth API at %s/v1\n", pid, root)
	// The facade's credentials are an API client's, not an application's
	// (which has callbacks): the first such client, else any.
	slices.SortStableFunc(clients, func(a, b dinteromock.Client) int { return cmp.Compare(len(a.Callbacks), len(b.Callbacks)) })
	for _, c := range clients {
		if len(c.Accounts) == 0 {
			continue
		}
		account := c.Accounts[0]
		fmt.Fprintf(&b, "  client credentials (the mock's own, not secrets): account %s, client id %s, client secret %s\n", account, c.ID, c.Secret)
		fmt.Fprintf(&b, "  the facade with them, run from the repository's root:\n")
		fmt.Fprintf(&b, "    DINTERO_ACCOUNT_ID=%s DINTERO_CLIENT_ID=%s DINTERO_CLIENT_SECRET=%s go run ./cmd/dintero-facade --dintero-url %s/v1\n", account, c.ID, c.Secret, root)
		var ids []string
		for _, g := range grants[account] {
			ids = append(ids, g.ID)
		}
		fmt.Fprintf(&b, "  grants of %s: %s\n", account, strings.Join(ids, ", "))
		break
	}
	var values []string
	for _, c := range codes {
		values = append(values, c.Value)
	}
	fmt.Fprintf(&b, "  verification codes of the application %s (callback %s): %s\n", dinteromock.DefaultApp, dinteromock.DefaultCallback, strings.Join(values, ", "))
	fmt.Fprintf(&b, "  rotate the signing key: curl -X POST %s%s (or kill -USR1 %d)\n", root, dinteromock.RotateKeysPath, pid)
	return b.String()
}

// rotateOn rotates m's signing key each time a signal arrives, until ctx
// ends: the keys endpoint then lists the new key alone.
func rotateOn(ctx context.Context, sig <-chan os.Signal, m *dinteromock.Mock, log *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-sig:
			if err := m.RotateKey(nil, false); err != nil {
				log.Error("rotating the signing key", "error", err.Error())
				continue
			}
			log.Info("signing key rotated", "kid", m.KeyID())
		}
	}
}
