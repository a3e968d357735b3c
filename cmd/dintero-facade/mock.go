package main

import (
	"context"
	"log/slog"
	"net/http"

	"google.golang.org/grpc/metadata"

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

// mockFaultKey is the metadata key by which a call asks the mock for a
// fault: the gateway passes the Dintero-Mock-Fault header under it.
const mockFaultKey = "dintero-mock-fault"

// mockFaults sends a call's dintero-mock-fault metadata on to the mock, as
// the Dintero-Mock-Fault header of every request the call makes. Only a
// facade serving --mock puts it in front of its transport, so a fault a
// caller asks for never reaches a real Dintero.
type mockFaults struct{ next http.RoundTripper }

func (m mockFaults) RoundTrip(r *http.Request) (*http.Response, error) {
	if v := metadata.ValueFromIncomingContext(r.Context(), mockFaultKey); len(v) > 0 {
		r = r.Clone(r.Context())
		r.Header.Set("Dintero-Mock-Fault", v[0])
	}
	return m.next.RoundTrip(r)
}

// CloseIdleConnections and Warm pass on to the transport underneath.
func (m mockFaults) CloseIdleConnections() {
	if c, ok := m.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

func (m mockFaults) Warm(ctx context.Context, rawURL string) error {
	if w, ok := m.next.(interface {
		Warm(context.Context, string) error
	}); ok {
		return w.Warm(ctx, rawURL)
	}
	return nil
}
