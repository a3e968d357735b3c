package main

import (
	"log/slog"

	"github.com/dintero-facade/dintero-facade/internal/dinteromock"
	"github.com/dintero-facade/dintero-facade/upstream"
)

// startMock serves the mock Dintero on a loopback port and points cfg at
// it, with the mock's client credentials unless cfg has its own.
func startMock(cfg *Config, log *slog.Logger) (stop func(), err error) {
	url, stop, err := dinteromock.ServeDemo(log)
	if err != nil {
		return nil, err
	}
	cfg.DinteroURL = url
	if len(cfg.Credentials) == 0 {
		cfg.Credentials = []upstream.Credentials{{AccountID: dinteromock.DefaultAccount, ClientID: dinteromock.DefaultClientID, ClientSecret: dinteromock.DefaultClientSecret}}
	}
	return stop, nil
}
