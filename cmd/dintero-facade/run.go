package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	sdkresource "go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	authv1 "github.com/dintero-facade/dintero-facade/gen/dintero/auth/v1"
	"github.com/dintero-facade/dintero-facade/gen/openapiv2"
	"github.com/dintero-facade/dintero-facade/internal/dinteromock"
	"github.com/dintero-facade/dintero-facade/service"
	"github.com/dintero-facade/dintero-facade/upstream"
)

// errGraceExpired means calls were still running when the shutdown grace
// ran out, and were cut.
var errGraceExpired = errors.New("shutdown grace expired: calls in flight were cut")

// streamWorkers is how many goroutines serve gRPC calls; a call that finds
// them all busy gets a goroutine of its own.
const streamWorkers = 128

// listeners are the bound addresses, reported once the servers accept.
type listeners struct {
	GRPC, HTTP, Health, Metrics, Pprof net.Addr
}

// Options are what Run needs besides the configuration.
type Options struct {
	Config Config
	// Log takes the structured logs; Audit the audit lines, which the log
	// level must not silence (nil: a JSON logger on stderr at info).
	Log, Audit *slog.Logger
	// Version names the build in the User-Agent and the startup line.
	Version string
	// Ready, when set, is told the bound addresses.
	Ready func(listeners)
	// TracerProvider replaces the OTLP exporter the configuration asks for
	// (tests record spans in memory with it).
	TracerProvider trace.TracerProvider
	// Reload, when it fires, reloads --credentials-file (main sends
	// SIGHUP here).
	Reload <-chan struct{}
	// wrap, when set, wraps the service inside the interceptors; tests
	// inject faults, such as a panic, with it.
	wrap func(authv1.AuthServiceServer) authv1.AuthServiceServer
}

// Run serves the facade until ctx ends, then shuts down in stages: health
// turns NOT_SERVING at once, the listeners keep accepting for
// ShutdownDelay, then stop, and calls in flight get ShutdownGrace to finish.
// It returns nil when every call finished.
func Run(ctx context.Context, o Options) (err error) {
	cfg, log := o.Config, o.Log
	audit := o.Audit
	if audit == nil {
		audit = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}

	tp, prop, stopTracing, err := tracing(ctx, o)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if serr := stopTracing(sctx); serr != nil {
			log.Warn("flushing traces", "error", serr.Error())
		}
	}()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	upMetrics, err := upstream.NewMetrics(reg)
	if err != nil {
		return err
	}
	srvMetrics := grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram())
	reg.MustRegister(srvMetrics)

	if cfg.Mock {
		stopMock, err := startMock(&cfg, log)
		if err != nil {
			return err
		}
		defer stopMock()
	}

	var transport http.RoundTripper = upstream.NewTransport(cfg.DinteroTimeout)
	if tp != nil {
		transport = upstream.TracingTransport(transport, tp, prop)
	}
	client, err := upstream.New(upstream.Options{
		BaseURL:       cfg.DinteroURL,
		Credentials:   cfg.Credentials,
		Timeout:       cfg.DinteroTimeout,
		MaxConcurrent: cfg.MaxConcurrent,
		UserAgent:     "dintero-facade/" + o.Version,
		Transport:     transport,
		Observer:      upMetrics,
	})
	if err != nil {
		return err
	}
	defer client.CloseIdleConnections()
	if cfg.CredentialsFile != "" {
		// The watcher stops when Run returns, for whatever reason.
		wctx, stopWatching := context.WithCancel(ctx)
		defer stopWatching()
		if err := watchCredentials(wctx, cfg.CredentialsFile, cfg.EnvCredentials, o.Reload, client, log); err != nil {
			return err
		}
	}
	svcMetrics, err := service.NewMetrics(reg)
	if err != nil {
		return err
	}
	var svc authv1.AuthServiceServer = service.New(client, service.Options{Policy: cfg.Policy, Metrics: svcMetrics})
	if o.wrap != nil {
		svc = o.wrap(svc)
	}
	interceptor, err := service.Interceptor(service.InterceptorOptions{
		Log:             log,
		Audit:           audit,
		Inner:           []grpc.UnaryServerInterceptor{srvMetrics.UnaryServerInterceptor()},
		DefaultDeadline: cfg.DinteroTimeout,
		MaxDeadline:     cfg.MaxDeadline,
	})
	if err != nil {
		return err
	}

	tlsFiles, err := newTLSFiles(cfg)
	if err != nil {
		return err
	}
	if tlsFiles != nil {
		// The watcher stops when Run returns, for whatever reason.
		wctx, stopWatching := context.WithCancel(ctx)
		defer stopWatching()
		if err := tlsFiles.watch(wctx, log); err != nil {
			return err
		}
	}

	var lc net.ListenConfig
	var ls []net.Listener
	defer func() {
		if err != nil {
			for _, l := range ls {
				l.Close()
			}
		}
	}()
	listen := func(what, addr string) (net.Listener, error) {
		l, err := lc.Listen(ctx, "tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("%s listener: %w", what, err)
		}
		ls = append(ls, l)
		return l, nil
	}
	gl, err := listen("gRPC", cfg.GRPCAddr)
	if err != nil {
		return err
	}
	hl, err := listen("HTTP", cfg.HTTPAddr)
	if err != nil {
		return err
	}
	var ml, pl, probes net.Listener
	if cfg.HealthAddr != "" {
		if probes, err = listen("health", cfg.HealthAddr); err != nil {
			return err
		}
	}
	if cfg.MetricsAddr != "" {
		if ml, err = listen("metrics", cfg.MetricsAddr); err != nil {
			return err
		}
	}
	if cfg.PprofAddr != "" {
		if pl, err = listen("pprof", cfg.PprofAddr); err != nil {
			return err
		}
	}

	gopts := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(interceptor),
		grpc.MaxRecvMsgSize(cfg.MaxRecvMsgBytes),
		// Metadata is bounded like a message: a caller's megabyte user
		// agent must not become a megabyte log line.
		grpc.MaxHeaderListSize(uint32(cfg.MaxRecvMsgBytes)),
		// Reused workers keep the stacks a call has grown; a goroutine per
		// call would grow (copy) its stack on every call.
		grpc.NumStreamWorkers(streamWorkers),
	}
	if tlsFiles != nil {
		gopts = append(gopts, grpc.Creds(credentials.NewTLS(tlsFiles.config("h2"))))
	}
	if tp != nil {
		gopts = append(gopts, grpc.StatsHandler(otelgrpc.NewServerHandler(otelgrpc.WithTracerProvider(tp), otelgrpc.WithPropagators(prop))))
	}
	gs := grpc.NewServer(gopts...)
	authv1.RegisterAuthServiceServer(gs, svc)
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus(authv1.AuthService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(gs, hs)
	reflection.Register(gs)
	srvMetrics.InitializeMetrics(gs)

	var serving atomic.Bool
	serving.Store(true)
	gw, err := gateway(ctx, service.Intercepted(strictQuery{srv: svc}, interceptor), cfg.MaxRecvMsgBytes)
	if err != nil {
		return err
	}
	if tp != nil {
		gw = otelhttp.NewHandler(gw, "gateway", otelhttp.WithTracerProvider(tp), otelhttp.WithPropagators(prop),
			otelhttp.WithSpanNameFormatter(func(op string, r *http.Request) string { return op + " " + r.Method }))
	}
	metricsHandler := promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
	mux := httpMux(gw, &serving)
	if ml == nil {
		mux.Handle("GET /metrics", metricsHandler)
	}
	var httpTLS *tls.Config
	if tlsFiles != nil {
		httpTLS = tlsFiles.config("h2", "http/1.1")
	}
	httpSrv := newHTTPServer(mux, cfg, log, httpTLS)
	var metricsSrv, pprofSrv, probeSrv *http.Server
	if probes != nil {
		var stopProbeGRPC func()
		probeSrv, stopProbeGRPC = newProbeServer(hs, &serving, cfg, log)
		defer stopProbeGRPC()
	}
	if ml != nil {
		mm := http.NewServeMux()
		mm.Handle("GET /metrics", metricsHandler)
		metricsSrv = newHTTPServer(mm, cfg, log, nil)
	}
	if pl != nil {
		pm := http.NewServeMux()
		pm.HandleFunc("/debug/pprof/", pprof.Index)
		pm.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		pm.HandleFunc("/debug/pprof/profile", pprof.Profile)
		pm.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		pm.HandleFunc("/debug/pprof/trace", pprof.Trace)
		pprofSrv = newHTTPServer(pm, cfg, log, nil)
		// A CPU profile runs for its whole ?seconds=.
		pprofSrv.WriteTimeout = 0
	}

	log.Info("dintero-facade starting", "version", o.Version, "config", cfg,
		"grpc_addr", gl.Addr().String(), "http_addr", hl.Addr().String())
	if cfg.ShutdownGrace < cfg.MaxDeadline {
		log.Warn("--shutdown-grace is shorter than --max-deadline: calls in flight at shutdown may be cut", "shutdown_grace", cfg.ShutdownGrace, "max_deadline", cfg.MaxDeadline)
	}
	if len(cfg.Credentials) > 0 || cfg.CredentialsFile != "" {
		switch {
		case cfg.Policy == nil && cfg.ClientCA == "":
			log.Warn("the facade holds Dintero client credentials and has neither --policy-file nor mutual TLS: every caller that can reach it can act with them")
		case cfg.Policy == nil:
			log.Warn("the facade holds Dintero client credentials and has no --policy-file: every caller with a client certificate can act with them")
		}
	}
	errc := make(chan error, 5)
	go func() { errc <- gs.Serve(gl) }()
	go func() { errc <- serveHTTP(httpSrv, hl) }()
	if probeSrv != nil {
		go func() { errc <- probeSrv.Serve(probes) }()
	}
	if metricsSrv != nil {
		go func() { errc <- metricsSrv.Serve(ml) }()
	}
	if pprofSrv != nil {
		go func() { errc <- pprofSrv.Serve(pl) }()
	}
	if o.Ready != nil {
		l := listeners{GRPC: gl.Addr(), HTTP: hl.Addr()}
		if probes != nil {
			l.Health = probes.Addr()
		}
		if ml != nil {
			l.Metrics = ml.Addr()
		}
		if pl != nil {
			l.Pprof = pl.Addr()
		}
		o.Ready(l)
	}

	select {
	case err := <-errc:
		// A server failed on its own: stop the others and report it.
		gs.Stop()
		for _, srv := range []*http.Server{httpSrv, metricsSrv, pprofSrv, probeSrv} {
			if srv != nil {
				_ = srv.Close()
			}
		}
		return fmt.Errorf("server failed: %w", err)
	case <-ctx.Done():
	}

	log.Info("shutting down: reporting NOT_SERVING", "delay", cfg.ShutdownDelay, "grace", cfg.ShutdownGrace)
	serving.Store(false)
	hs.Shutdown()
	if cfg.ShutdownDelay > 0 {
		time.Sleep(cfg.ShutdownDelay)
	}

	// The metrics, pprof and probe servers serve no calls: close them, so
	// that a scrape or a profile under way cannot hold up the exit or count
	// as a cut call.
	for _, srv := range []*http.Server{metricsSrv, pprofSrv, probeSrv} {
		if srv != nil {
			_ = srv.Close()
		}
	}
	graceCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownGrace)
	defer cancel()
	var wg sync.WaitGroup
	var cut atomic.Bool
	wg.Go(func() {
		done := make(chan struct{})
		go func() { gs.GracefulStop(); close(done) }()
		select {
		case <-done:
		case <-graceCtx.Done():
			cut.Store(true)
			gs.Stop()
			<-done
		}
	})
	wg.Go(func() {
		if err := httpSrv.Shutdown(graceCtx); err != nil {
			cut.Store(true)
			_ = httpSrv.Close()
		}
	})
	wg.Wait()
	if cut.Load() {
		log.Error("shutdown grace expired: calls in flight were cut", "grace", cfg.ShutdownGrace)
		return errGraceExpired
	}
	log.Info("shut down: every call finished")
	return nil
}

// tracing returns the tracer provider and propagator, or a nil provider
// when tracing is off. stop flushes and ends the exporter.
func tracing(ctx context.Context, o Options) (trace.TracerProvider, propagation.TextMapPropagator, func(context.Context) error, error) {
	prop := propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	nothing := func(context.Context) error { return nil }
	if o.TracerProvider != nil {
		return o.TracerProvider, prop, nothing, nil
	}
	if !o.Config.Tracing {
		return nil, prop, nothing, nil
	}
	exp, err := otlptracegrpc.New(ctx)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("OTLP trace exporter: %w", err)
	}
	res, err := sdkresource.Merge(sdkresource.Default(), sdkresource.NewSchemaless(
		semconv.ServiceName("dintero-facade"), semconv.ServiceVersion(o.Version)))
	if err != nil {
		return nil, nil, nil, err
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	return tp, prop, tp.Shutdown, nil
}

// newHTTPServer returns an HTTP server for h with explicit timeouts. The
// write timeout lies above the longest a call may take (--max-deadline,
// which the interceptor enforces), so that every answer reaches its caller.
func newHTTPServer(h http.Handler, cfg Config, log *slog.Logger, tc *tls.Config) *http.Server {
	return &http.Server{
		Handler:           h,
		TLSConfig:         tc,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      cfg.MaxDeadline + 5*time.Second,
		IdleTimeout:       2 * time.Minute,
		// Headers, the query among them, are bounded like a gRPC request.
		MaxHeaderBytes: cfg.MaxRecvMsgBytes,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

func serveHTTP(srv *http.Server, l net.Listener) error {
	if srv.TLSConfig != nil {
		return srv.ServeTLS(l, "", "")
	}
	return srv.Serve(l)
}

// httpMux serves the gateway under /v1/, /healthz and the OpenAPI document.
func httpMux(gw http.Handler, serving *atomic.Bool) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/v1/", gw)
	mux.Handle("GET /healthz", healthz(serving))
	mux.HandleFunc("GET /openapi.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(openapiv2.JSON)
	})
	return mux
}

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

// healthz answers 200 while serving, 503 once shutdown has begun.
func healthz(serving *atomic.Bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !serving.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("shutting down\n"))
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
}

// newProbeServer serves the probes on a plain listener of their own: gRPC
// health (the kubelet's gRPC probe speaks HTTP/2 without TLS) and GET
// /healthz. Under mutual TLS the kubelet, which has no client certificate,
// could reach neither on the service's listeners.
func newProbeServer(hs *health.Server, serving *atomic.Bool, cfg Config, log *slog.Logger) (*http.Server, func()) {
	gs := grpc.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	mux := http.NewServeMux()
	mux.Handle("GET /healthz", healthz(serving))
	srv := newHTTPServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
			gs.ServeHTTP(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	}), cfg, log, nil)
	srv.Protocols = new(http.Protocols)
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(true)
	// The gRPC server behind ServeHTTP has no listener of its own; it
	// stops with the HTTP server, whichever way that stops.
	srv.RegisterOnShutdown(gs.Stop)
	return srv, gs.Stop
}
