package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"

	authv1 "github.com/dintero-facade/dintero-facade/gen/dintero/auth/v1"
	"github.com/dintero-facade/dintero-facade/internal/h2transport"
	"github.com/dintero-facade/dintero-facade/internal/probe"
	"github.com/dintero-facade/dintero-facade/internal/reload"
	"github.com/dintero-facade/dintero-facade/internal/serve"
	"github.com/dintero-facade/dintero-facade/internal/telemetry"
	"github.com/dintero-facade/dintero-facade/internal/warmup"
	"github.com/dintero-facade/dintero-facade/service"
	"github.com/dintero-facade/dintero-facade/upstream"
)

// errGraceExpired means calls were still running when the shutdown grace
// ran out, and were cut.
var errGraceExpired = errors.New("shutdown grace expired: calls in flight were cut")

// listeners are the bound addresses, reported once the servers accept.
type listeners struct {
	GRPC, HTTP, Health, Metrics, Pprof net.Addr
}

// Options are what Run needs besides the configuration.
type Options struct {
	Config Config
	// Log takes the structured logs; Audit the audit lines, which the log
	// level must not silence. Both are required.
	Log, Audit *slog.Logger
	// Version names the build in the User-Agent and the startup line.
	Version string
	// Ready, when set, is told the bound addresses.
	Ready func(listeners)
	// TracerProvider replaces the OTLP exporter the configuration asks for
	// (tests record spans in memory with it).
	TracerProvider trace.TracerProvider
	// Reload, when it fires, reloads --credentials-file, the TLS files and
	// --policy-file (main sends SIGHUP here).
	Reload <-chan struct{}
	// wrap, when set, wraps the service inside the interceptors; tests
	// inject faults, such as a panic, with it.
	wrap func(authv1.AuthServiceServer) authv1.AuthServiceServer
}

// Run serves the facade until ctx ends, then shuts down in stages: health
// turns NOT_SERVING at once, the listeners keep accepting for
// ShutdownDelay, then stop, and calls in flight get ShutdownGrace to finish.
// It returns nil when every call finished.
func Run(ctx context.Context, o Options) error {
	// The audit logger is required too: the interceptor, which owns that
	// rule, refuses to be built without one.
	if o.Log == nil {
		return errors.New("Run needs a log")
	}
	f, err := build(ctx, o)
	if err != nil {
		return err
	}
	defer f.close()
	if err := f.group.Listen(ctx); err != nil {
		return listenError(err)
	}
	a := f.group.Serve()
	addrs := listeners{GRPC: a["gRPC"], HTTP: a["HTTP"], Health: a["health"], Metrics: a["metrics"], Pprof: a["pprof"]}
	f.logStart(addrs)
	// Health reports NOT_SERVING during the warm-up; calls are served.
	f.onClose(warmup.Run(ctx, f.client, f.cfg.WarmTimeout, f.log))
	f.probes.Serve()
	if o.Ready != nil {
		o.Ready(addrs)
	}
	select {
	case err := <-f.group.Failed():
		// A server failed on its own: stop the others and report it.
		f.group.Stop()
		return fmt.Errorf("server failed: %w", err)
	case <-ctx.Done():
	}
	return f.drain()
}

// listenError says which flag to change when a listener cannot be bound:
// "--grpc-addr 127.0.0.1:9090: address already in use; choose another
// with --grpc-addr or DINTERO_FACADE_GRPC_ADDR". An operator who gets
// "bind: address already in use" alone has to guess which of up to five
// addresses it was.
func listenError(err error) error {
	var le *serve.ListenError
	if !errors.As(err, &le) {
		return err
	}
	flag := listenFlag(le.Name)
	if flag == "" {
		return err
	}
	// The innermost error (address already in use, permission denied, a
	// malformed address) without net's "listen tcp ADDR: bind:" around it:
	// the message names the address itself.
	why := le.Err
	var op *net.OpError
	if errors.As(why, &op) {
		why = op.Err
	}
	var sc *os.SyscallError
	if errors.As(why, &sc) {
		why = sc.Err
	}
	return fmt.Errorf("--%s %s: %w; choose another with --%s or %s", flag, le.Addr, why, flag, envName(flag))
}

// listenFlag is the flag that sets the address of the server the group
// calls name, "" for a name it does not know.
func listenFlag(name string) string {
	switch name {
	case "gRPC":
		return "grpc-addr"
	case "HTTP":
		return "http-addr"
	case "health":
		return "health-addr"
	case "metrics":
		return "metrics-addr"
	case "pprof":
		return "pprof-addr"
	}
	return ""
}

// instance is the running facade: its servers, their listeners, and what
// must be closed when it stops.
type instance struct {
	cfg     Config
	log     *slog.Logger
	version string

	group   *serve.Group
	probes  *probe.State
	client  *upstream.Client
	closers []func() // run in reverse by close
}

// onClose adds a step to close.
func (f *instance) onClose(fn func()) { f.closers = append(f.closers, fn) }

// close undoes build, in reverse.
func (f *instance) close() {
	for i := len(f.closers) - 1; i >= 0; i-- {
		f.closers[i]()
	}
}

// build makes every part of the facade, from the telemetry to the servers,
// without binding a port.
func build(ctx context.Context, o Options) (_ *instance, err error) {
	f := &instance{cfg: o.Config, log: o.Log, version: o.Version}
	defer func() {
		if err != nil {
			f.close()
		}
	}()
	tel, err := telemetry.New(ctx, telemetry.Options{Tracing: o.Config.Tracing, TracerProvider: o.TracerProvider, Version: o.Version, Log: o.Log})
	if err != nil {
		return nil, err
	}
	f.onClose(func() { tel.Shutdown(f.log) })
	if f.cfg.Mock {
		stop, err := startMock(&f.cfg, f.log)
		if err != nil {
			return nil, err
		}
		f.onClose(stop)
	}
	transport := tel.Transport(h2transport.New(f.cfg.DinteroTimeout))
	if f.cfg.Mock {
		// Faults callers ask for go to the mock, and only to it.
		transport = mockFaults{next: transport}
	}
	client, err := upstream.New(upstream.Options{
		BaseURL:       f.cfg.DinteroURL,
		Credentials:   f.cfg.Credentials,
		Timeout:       f.cfg.DinteroTimeout,
		MaxConcurrent: f.cfg.MaxConcurrent,
		UserAgent:     "dintero-facade/" + o.Version,
		Transport:     transport,
		Observer:      tel.Upstream,
		IDToken:       upstream.IDTokenOptions{Issuer: f.cfg.IDTokenIssuer, MaxAccounts: f.cfg.KeysAccounts},
	})
	if err != nil {
		return nil, err
	}
	f.onClose(client.CloseIdleConnections)
	f.client = client
	// The watchers stop when the facade stops, for whatever reason.
	wctx, stopWatching := context.WithCancel(ctx)
	f.onClose(stopWatching)
	// One SIGHUP reloads every file the facade reads: the credentials, the
	// TLS files and the policy.
	signals := reload.Fanout(wctx, o.Reload, 3)
	watching := func(i int) reload.Options {
		return reload.Options{Log: f.log, Signal: signals[i], Metrics: tel.Reload}
	}
	if f.cfg.CredentialsFile != "" {
		if err := reload.WatchCredentials(wctx, f.cfg.CredentialsFile, f.cfg.EnvCredentials, client, watching(0)); err != nil {
			return nil, err
		}
	}
	tlsFiles, err := reload.NewTLSFiles(f.cfg.TLSCert, f.cfg.TLSKey, f.cfg.ClientCA)
	if err != nil {
		return nil, err
	}
	if tlsFiles != nil {
		if err := tlsFiles.Watch(wctx, watching(1)); err != nil {
			return nil, err
		}
	}
	srv := service.New(client, service.Options{Policy: f.cfg.Policy, Counters: tel.Service, IDTokenIssuer: f.cfg.IDTokenIssuer, ReturnOIDCClientSecret: f.cfg.ReturnOIDCClientSecret})
	if f.cfg.PolicyFile != "" {
		if err := reload.WatchPolicy(wctx, f.cfg.PolicyFile, srv, watching(2)); err != nil {
			return nil, err
		}
	}
	var svc authv1.AuthServiceServer = srv
	if o.wrap != nil {
		svc = o.wrap(svc)
	}
	// One registration and one interceptor for both faces: a JSON call
	// takes the very path of a gRPC call.
	register := func(r grpc.ServiceRegistrar) { authv1.RegisterAuthServiceServer(r, svc) }
	interceptor, err := service.Interceptor(service.InterceptorOptions{
		Log:             f.log,
		Audit:           o.Audit,
		Inner:           []grpc.UnaryServerInterceptor{tel.GRPC.UnaryServerInterceptor()},
		DefaultDeadline: f.cfg.DinteroTimeout,
		MaxDeadline:     f.cfg.MaxDeadline,
	})
	if err != nil {
		return nil, err
	}
	f.probes = probe.New(authv1.AuthService_ServiceDesc.ServiceName)
	gs := newGRPCServer(f.cfg, register, interceptor, tlsFiles, tel, f.probes)
	// Its stream workers run from the start, whether it serves or not.
	f.onClose(gs.Stop)
	// The group is made below; the gateway asks it for the gRPC address
	// only when a gRPC call comes, once the servers listen.
	gw, err := newGatewayServer(ctx, f.cfg, register, interceptor, tlsFiles, tel, f.probes, f.log, func() net.Addr { return f.group.GRPCAddr() })
	if err != nil {
		return nil, err
	}
	side, stopSide := sideServers(f.cfg, tel, f.probes, f.log)
	f.onClose(stopSide)
	f.group = serve.New(gs, f.cfg.GRPCAddr, append([]*serve.HTTP{gw}, side...)...)
	return f, nil
}

// drain shuts down in stages: NOT_SERVING at once, accepting for
// ShutdownDelay, then the side servers closed and the calls in flight given
// ShutdownGrace.
func (f *instance) drain() error {
	cfg := f.cfg
	f.log.Info("shutting down: reporting NOT_SERVING", "delay", cfg.ShutdownDelay, "grace", cfg.ShutdownGrace)
	f.probes.Shutdown()
	if cfg.ShutdownDelay > 0 {
		time.Sleep(cfg.ShutdownDelay)
	}
	// A scrape or a profile under way cannot hold up the exit or count as
	// a cut call.
	f.group.CloseSide()
	if f.group.Drain(cfg.ShutdownGrace) {
		f.log.Error("shutdown grace expired: calls in flight were cut", "grace", cfg.ShutdownGrace)
		return errGraceExpired
	}
	f.log.Info("shut down: every call finished")
	return nil
}

// logStart writes the startup line, with the configuration (secrets
// masked), and warns of what an operator should know.
func (f *instance) logStart(l listeners) {
	cfg := f.cfg
	f.log.Info("dintero-facade starting", "version", f.version, "config", cfg,
		"grpc_addr", l.GRPC.String(), "http_addr", l.HTTP.String())
	if cfg.ShutdownGrace < cfg.MaxDeadline {
		f.log.Warn("--shutdown-grace is shorter than --max-deadline: calls in flight at shutdown may be cut", "shutdown_grace", cfg.ShutdownGrace, "max_deadline", cfg.MaxDeadline)
	}
	if cfg.CredentialsFile != "" && len(cfg.Credentials) == len(cfg.EnvCredentials) {
		f.log.Warn("--credentials-file holds no credentials: a call that brings no token of its own is refused (NO_CREDENTIALS) until it does; it is read again on SIGHUP and whenever it changes",
			"credentials_file", cfg.CredentialsFile)
	}
	if cfg.MaxConnectionAge > 0 && cfg.MaxConnectionAgeGrace < cfg.MaxDeadline {
		f.log.Warn("--grpc-max-connection-age-grace is shorter than --max-deadline: calls on a connection that reaches --grpc-max-connection-age may be cut", "grpc_max_connection_age_grace", cfg.MaxConnectionAgeGrace.String(), "max_deadline", cfg.MaxDeadline.String())
	}
	if len(cfg.Credentials) > 0 || cfg.CredentialsFile != "" {
		holds, once := "the facade holds Dintero client credentials and has ", ""
		if len(cfg.Credentials) == 0 {
			holds, once = "the facade has ", "once --credentials-file holds Dintero client credentials, "
		}
		switch {
		case cfg.Policy == nil && cfg.ClientCA == "":
			f.log.Warn(holds + "neither --policy-file nor mutual TLS: " + once + "every caller that can reach it can act with them")
		case cfg.Policy == nil:
			f.log.Warn(holds + "no --policy-file: " + once + "every caller with a client certificate can act with them")
		}
	}
}
