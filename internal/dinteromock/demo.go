package dinteromock

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// ServeDemo serves a mock with the default data set on a loopback port,
// for a demo that needs no Dintero account, and logs what a caller needs
// to use it: the account, grant ids, application, callback and
// verification codes, and how to rotate its signing key. baseURL is the mock's API root; stop closes it.
func ServeDemo(log *slog.Logger) (baseURL string, stop func(), err error) {
	m, err := New(Options{})
	if err != nil {
		return "", nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("mock listener: %w", err)
	}
	srv := &http.Server{Handler: m.WithAdmin(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	root := "http://" + l.Addr().String()
	baseURL = root + "/v1"
	d := Defaults()
	ids := make([]string, 0, len(d.Grants[DefaultAccount]))
	for _, g := range d.Grants[DefaultAccount] {
		ids = append(ids, g.ID)
	}
	codes := make([]string, 0, len(d.Codes))
	for _, c := range d.Codes {
		codes = append(codes, c.Value)
	}
	log.Warn("--mock: calling a local mock Dintero, not Dintero", "dintero_url", baseURL,
		"account", DefaultAccount, "grant_ids", ids, "client_id", DefaultApp,
		"redirect_uri", DefaultCallback, "verification_codes", codes,
		"rotate_keys", "curl -X POST "+root+RotateKeysPath)
	return baseURL, func() { _ = srv.Close() }, nil
}
