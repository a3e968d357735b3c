package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/dintero-facade/dintero-facade/internal/dinteromock"
	"github.com/dintero-facade/dintero-facade/upstream"
)

// startMock serves the mock Dintero on a loopback port and points cfg at
// it, with the mock's client credentials unless cfg has its own.
func startMock(cfg *Config, log *slog.Logger) (stop func(), err error) {
	m, err := dinteromock.New(dinteromock.Options{})
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("mock listener: %w", err)
	}
	srv := &http.Server{Handler: m, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	cfg.DinteroURL = "http://" + l.Addr().String() + "/v1"
	if len(cfg.Credentials) == 0 {
		cfg.Credentials = []upstream.Credentials{{AccountID: dinteromock.DefaultAccount, ClientID: dinteromock.DefaultClientID, ClientSecret: dinteromock.DefaultClientSecret}}
	}
	d := dinteromock.Defaults()
	ids := make([]string, 0, len(d.Grants[dinteromock.DefaultAccount]))
	for _, g := range d.Grants[dinteromock.DefaultAccount] {
		ids = append(ids, g.ID)
	}
	codes := make([]string, 0, len(d.Codes))
	for _, c := range d.Codes {
		codes = append(codes, c.Value)
	}
	log.Warn("--mock: calling a local mock Dintero, not Dintero", "dintero_url", cfg.DinteroURL,
		"account", dinteromock.DefaultAccount, "grant_ids", ids, "client_id", dinteromock.DefaultApp,
		"redirect_uri", dinteromock.DefaultCallback, "verification_codes", codes)
	return func() { _ = srv.Close() }, nil
}
