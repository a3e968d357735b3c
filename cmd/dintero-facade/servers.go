package main

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"

	"github.com/dintero-facade/dintero-facade/gen/openapiv2"
	"github.com/dintero-facade/dintero-facade/internal/gateway"
	"github.com/dintero-facade/dintero-facade/internal/probe"
	"github.com/dintero-facade/dintero-facade/internal/reload"
	"github.com/dintero-facade/dintero-facade/internal/serve"
	"github.com/dintero-facade/dintero-facade/internal/telemetry"
)

// streamWorkers is how many goroutines serve gRPC calls: one for every call
// that may be in flight to Dintero, within bounds. A worker keeps the stack
// a call has grown; a call that finds every worker busy gets a fresh
// goroutine, whose stack is grown (copied) anew on every call.
func streamWorkers(cfg Config) uint32 {
	return uint32(min(max(cfg.MaxConcurrent, minStreamWorkers), maxStreamWorkers))
}

// minStreamWorkers and maxStreamWorkers bound streamWorkers: idle workers
// cost only their stacks, which they keep (internal/gctune turns the
// collector's stack shrinking off), so the bound caps that memory.
const (
	minStreamWorkers = 64
	maxStreamWorkers = 4096
)

// newGRPCServer serves what register registers over gRPC through
// interceptor, with health and reflection.
func newGRPCServer(cfg Config, register func(grpc.ServiceRegistrar), interceptor grpc.UnaryServerInterceptor, tf *reload.TLSFiles, tel *telemetry.Telemetry, probes *probe.State) *grpc.Server {
	opts := []grpc.ServerOption{
		grpc.UnaryInterceptor(interceptor),
		grpc.MaxRecvMsgSize(cfg.MaxRecvMsgBytes),
		// Metadata is bounded like a message: a caller's megabyte user
		// agent must not become a megabyte log line.
		grpc.MaxHeaderListSize(uint32(cfg.MaxRecvMsgBytes)),
		grpc.NumStreamWorkers(streamWorkers(cfg)),
		// A caller may ping to keep its connection (through a proxy, say)
		// no more often than this; more often is answered with GOAWAY.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: cfg.KeepaliveMinTime, PermitWithoutStream: true}),
	}
	// Behind a Service each caller's connection sticks to one replica: a
	// connection that has lived MaxConnectionAge is asked to go, and its
	// caller reconnects, to whichever replica, new ones included.
	if cfg.MaxConnectionAge > 0 {
		opts = append(opts, grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionAge: cfg.MaxConnectionAge, MaxConnectionAgeGrace: cfg.MaxConnectionAgeGrace}))
	}
	if tf != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(tf.Config("h2"))))
	}
	gs := grpc.NewServer(append(opts, tel.GRPCOptions()...)...)
	register(gs)
	probes.Register(gs)
	reflection.Register(gs)
	tel.GRPC.InitializeMetrics(gs)
	tel.TraceMethodsOf(gs)
	return gs
}

// newGatewayServer serves the JSON gateway under /v1/, /healthz, /livez,
// /openapi.json, and /metrics unless it has a listener of its own. The
// gateway calls what register registers, through interceptor, as the gRPC
// server does. A gRPC call, which only a client pointed at the wrong port
// makes, is answered FailedPrecondition with the gRPC server's address,
// grpcAddr once the servers listen.
func newGatewayServer(ctx context.Context, cfg Config, register func(grpc.ServiceRegistrar), interceptor grpc.UnaryServerInterceptor, tf *reload.TLSFiles, tel *telemetry.Telemetry, probes *probe.State, log *slog.Logger, grpcAddr func() net.Addr) (*serve.HTTP, error) {
	gw, err := gateway.New(ctx, register, interceptor, gateway.Options{MaxQuery: cfg.MaxRecvMsgBytes, MaxHeaderBytes: cfg.MaxRecvMsgBytes})
	if err != nil {
		return nil, err
	}
	paths, err := gateway.NewPaths()
	if err != nil {
		return nil, err
	}
	limit := cfg.MaxRecvMsgBytes
	mux := httpMux(tel.Handler(gw, paths.Of), gateway.LimitHeaders(probes.Healthz(), limit), limit)
	if cfg.MetricsAddr == "" {
		mux.Handle("GET /metrics", gateway.LimitHeaders(tel.MetricsHandler(), limit))
	}
	var tc *tls.Config
	if tf != nil {
		tc = tf.Config("h2", "http/1.1")
	}
	srv := newHTTPServer(gateway.RefuseGRPC(mux, func() string { return wrongPort(grpcAddr()) }), cfg, log, tc)
	// HTTP/2 without TLS too (prior knowledge, as gRPC clients speak it
	// with -plaintext or insecure credentials), so that such a client gets
	// RefuseGRPC's answer at once instead of waiting out its deadline on a
	// connection that never speaks HTTP/2. The same server, so the same
	// bounds: MaxHeaderBytes bounds HTTP/2's header list, ReadTimeout and
	// WriteTimeout each stream, IdleTimeout a connection without streams,
	// and ReadHeaderTimeout the wait for the connection preface.
	srv.Protocols = new(http.Protocols)
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetHTTP2(true)
	srv.Protocols.SetUnencryptedHTTP2(true)
	return &serve.HTTP{Name: "HTTP", Addr: cfg.HTTPAddr, Server: srv}, nil
}

// wrongPort is the message of a gRPC call on the HTTP port: which port
// this is, and the gRPC server's address, grpcAddr (its port alone when it
// listens on every interface).
func wrongPort(grpcAddr net.Addr) string {
	addr := "its port"
	if grpcAddr != nil {
		addr = grpcAddr.String()
		if host, port, err := net.SplitHostPort(addr); err == nil {
			if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
				addr = ":" + port
			}
		}
	}
	return "this is the facade's HTTP/JSON port (--http-addr), which serves no gRPC; gRPC is served on --grpc-addr (" + addr + ")"
}

// httpMux serves /healthz, /livez and the OpenAPI document, and the gateway at
// every other path, so that a path no route takes is answered in
// Dintero's shape too. The gateway bounds its requests' headers itself;
// the OpenAPI document's are bounded to limit.
func httpMux(gw, healthz http.Handler, limit int) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/", gw)
	mux.Handle("GET /healthz", healthz)
	mux.Handle("GET /livez", probe.Livez())
	mux.Handle("GET /openapi.json", gateway.LimitHeaders(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(openapiv2.JSON)
	}), limit))
	return mux
}

// sideServers are the servers that serve no calls, each on a listener of
// its own when configured: the probes, /metrics and pprof. stop stops what
// the HTTP servers do not.
func sideServers(cfg Config, tel *telemetry.Telemetry, probes *probe.State, log *slog.Logger) (_ []*serve.HTTP, stop func()) {
	var out []*serve.HTTP
	stop = func() {}
	if cfg.HealthAddr != "" {
		h, stopGRPC := probes.Handler()
		srv := newHTTPServer(gateway.LimitHeaders(h, cfg.MaxRecvMsgBytes), cfg, log, nil)
		srv.Protocols = new(http.Protocols)
		srv.Protocols.SetHTTP1(true)
		srv.Protocols.SetUnencryptedHTTP2(true)
		out, stop = append(out, &serve.HTTP{Name: "health", Addr: cfg.HealthAddr, Server: srv, Side: true}), stopGRPC
	}
	if cfg.MetricsAddr != "" {
		mm := http.NewServeMux()
		mm.Handle("GET /metrics", tel.MetricsHandler())
		out = append(out, &serve.HTTP{Name: "metrics", Addr: cfg.MetricsAddr, Server: newHTTPServer(gateway.LimitHeaders(mm, cfg.MaxRecvMsgBytes), cfg, log, nil), Side: true})
	}
	if cfg.PprofAddr != "" {
		pm := http.NewServeMux()
		pm.HandleFunc("/debug/pprof/", pprof.Index)
		pm.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		pm.HandleFunc("/debug/pprof/profile", pprof.Profile)
		pm.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		pm.HandleFunc("/debug/pprof/trace", pprof.Trace)
		srv := newHTTPServer(gateway.LimitHeaders(pm, cfg.MaxRecvMsgBytes), cfg, log, nil)
		// A CPU profile runs for its whole ?seconds=.
		srv.WriteTimeout = 0
		out = append(out, &serve.HTTP{Name: "pprof", Addr: cfg.PprofAddr, Server: srv, Side: true})
	}
	return out, stop
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
		// Headers, the query among them, are bounded like a gRPC request:
		// by the gateway and LimitHeaders, exactly, in front of h; the
		// server reads a little more, so that they can.
		MaxHeaderBytes: gateway.ServerMaxHeaderBytes(cfg.MaxRecvMsgBytes),
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}
