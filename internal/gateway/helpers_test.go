package gateway_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"

	authv1 "github.com/dintero-facade/dintero-facade/gen/dintero/auth/v1"
	"github.com/dintero-facade/dintero-facade/internal/dinterotest"
	"github.com/dintero-facade/dintero-facade/internal/gateway"
	"github.com/dintero-facade/dintero-facade/internal/h2transport"
	"github.com/dintero-facade/dintero-facade/service"
	"github.com/dintero-facade/dintero-facade/upstream"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, dinterotest.LeakOptions()...)
}

// env is the gateway over the real service, which calls the fake Dintero
// through the real upstream client, served on a loopback HTTP server.
type env struct {
	fake *dinterotest.Server
	url  string
	log  *dinterotest.LogBuffer
}

// setup serves the gateway over srv, or over the real service when srv is
// nil.
func setup(t *testing.T, srv authv1.AuthServiceServer) *env {
	t.Helper()
	fake := dinterotest.New(t)
	tr := h2transport.New(5 * time.Second)
	t.Cleanup(tr.CloseIdleConnections)
	up, err := upstream.New(upstream.Options{BaseURL: fake.URL, BackoffBase: time.Millisecond, BackoffMax: 2 * time.Millisecond, Transport: tr})
	if err != nil {
		t.Fatal(err)
	}
	if srv == nil {
		srv = service.New(up, service.Options{})
	}
	logs := &dinterotest.LogBuffer{}
	h := handler(t, srv, slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	hs := httptest.NewServer(h)
	t.Cleanup(func() {
		hs.Close()
		http.DefaultClient.CloseIdleConnections()
	})
	return &env{fake: fake, url: hs.URL, log: logs}
}

// handler is the gateway over srv, through the service's interceptor
// logging to log.
func handler(tb testing.TB, srv authv1.AuthServiceServer, log *slog.Logger) http.Handler {
	tb.Helper()
	ic, err := service.Interceptor(service.InterceptorOptions{Log: log, Audit: log})
	if err != nil {
		tb.Fatal(err)
	}
	h, err := gateway.New(context.Background(), func(r grpc.ServiceRegistrar) { authv1.RegisterAuthServiceServer(r, srv) }, ic, gateway.Options{MaxQuery: 16 << 10, MaxHeaderBytes: 16 << 10})
	if err != nil {
		tb.Fatal(err)
	}
	return h
}

// do sends an HTTP request to the gateway and returns status, headers and
// body.
func (e *env) do(t *testing.T, method, path string, header map[string]string) (int, http.Header, []byte) {
	t.Helper()
	return dinterotest.Do(t, http.DefaultClient, method, e.url+path, header)
}

// bearer is the Authorization header of a caller that brings its own
// token for account.
func (e *env) bearer(account string) map[string]string {
	return map[string]string{"Authorization": e.fake.Bearer(account)}
}
