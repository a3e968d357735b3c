// Command dintero-mock serves a local, stateful Dintero auth API on
// loopback: client-grant deletion, authorize with one-time verification
// codes, client-credentials tokens and id_tokens (RS256) and the accounts'
// signing keys. Point the facade at it with --dintero-url
// http://127.0.0.1:8000/v1. SIGUSR1 rotates the signing key, as Dintero
// may, so that a client's handling of a rotation can be tried.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/dintero-facade/dintero-facade/internal/dinteromock"
)

func main() {
	if err := run(os.Args[1:]); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "dintero-mock:", err)
		os.Exit(2)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("dintero-mock", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8000", "listen address (keep it on loopback)")
	grants := fs.String("grants", "", `JSON file of grants by account, {"T12345678": [{"id": …}, …]}; empty: a built-in set`)
	clients := fs.String("clients", "", `JSON file of API clients and applications, [{"client_id", "client_secret", "accounts": ["T12345678"], "scopes": ["admin:accounts"], "callbacks": ["https://…"]}]; empty: mock-client/mock-client-secret with admin:accounts on T12345678, and the application my-client with the callback https://app.example.com/cb`)
	codes := fs.String("codes", "", "comma-separated one-time verification codes, sent for the application my-client on account T12345678; empty: 123456,234567,345678")
	authorize := fs.String("authorize-answer", "query", "how authorize answers: query (302, tokens in the Location's query), fragment (302, in its fragment) or json (200 {\"redirect_uri\"} to Accept: application/json)")
	latency := fs.Duration("latency", 0, "fault: latency added to every answer")
	fail := fs.Float64("failure-rate", 0, "fault: share of calls answered 503, 0 to 1")
	rateLimit := fs.Float64("rate-limit-rate", 0, "fault: share of calls answered 429, 0 to 1")
	retryAfter := fs.Int("retry-after", 1, "fault: Retry-After seconds of the 429s")
	if err := fs.Parse(args); err != nil {
		return err
	}
	o := dinteromock.Options{Behaviour: dinteromock.Behaviour{
		Faults:    dinteromock.Faults{Latency: *latency, FailureRate: *fail, RateLimitRate: *rateLimit, RetryAfter: *retryAfter},
		Authorize: dinteromock.AuthorizeAnswer(*authorize),
	}}
	switch o.Behaviour.Authorize {
	case dinteromock.AnswerQuery, dinteromock.AnswerFragment, dinteromock.AnswerJSON:
	default:
		return fmt.Errorf("--authorize-answer %q: want query, fragment or json", *authorize)
	}
	if *grants != "" {
		g, err := dinteromock.LoadGrants(*grants)
		if err != nil {
			return err
		}
		o.Grants = g
	}
	if *clients != "" {
		c, err := dinteromock.LoadClients(*clients)
		if err != nil {
			return err
		}
		o.Clients = c
	}
	if *codes != "" {
		for i, v := range strings.Split(*codes, ",") {
			o.Codes = append(o.Codes, dinteromock.Code{Value: v, ClientID: dinteromock.DefaultApp, Account: dinteromock.DefaultAccount,
				Subject: fmt.Sprintf("user-%d", i+1), Email: fmt.Sprintf("user%d@example.com", i+1), Name: fmt.Sprintf("Mock User %d", i+1)})
		}
	}
	m, err := dinteromock.New(o)
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	log.Info("dintero-mock serving", "url", "http://"+l.Addr().String()+"/v1",
		"client_id", dinteromock.DefaultClientID, "client_secret", dinteromock.DefaultClientSecret,
		"account", dinteromock.DefaultAccount, "note", "test credentials of the mock, not secrets")
	srv := &http.Server{Handler: m, ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	defer signal.Stop(usr1)
	go rotateOn(ctx, usr1, m, log)
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
