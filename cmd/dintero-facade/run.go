package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/textproto"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/protobuf/encoding/protojson"

	authv1 "github.com/dintero-facade/dintero-facade/gen/dintero/auth/v1"
	"github.com/dintero-facade/dintero-facade/gen/openapiv2"
	"github.com/dintero-facade/dintero-facade/service"
	"github.com/dintero-facade/dintero-facade/upstream"
)

// errGraceExpired means calls were still running when the shutdown grace
// ran out, and were cut.
var errGraceExpired = errors.New("shutdown grace expired: calls in flight were cut")

// listeners are the bound addresses, reported once both servers accept.
type listeners struct {
	GRPC, HTTP net.Addr
}

// Run serves the facade until ctx ends, then shuts down in stages: health
// turns NOT_SERVING at once, the listeners keep accepting for
// cfg.ShutdownDelay, then stop, and calls in flight get cfg.ShutdownGrace to
// finish. It returns nil when every call finished. ready, when not nil, is
// told the bound addresses.
func Run(ctx context.Context, cfg Config, log *slog.Logger, version string, ready func(listeners)) error {
	client, err := upstream.New(upstream.Options{
		BaseURL:       cfg.DinteroURL,
		Credentials:   cfg.Credentials,
		Timeout:       cfg.DinteroTimeout,
		MaxConcurrent: cfg.MaxConcurrent,
		UserAgent:     "dintero-facade/" + version,
	})
	if err != nil {
		return err
	}
	defer client.CloseIdleConnections()
	svc := service.New(client)
	interceptor := service.Interceptor(log)

	var lc net.ListenConfig
	gl, err := lc.Listen(ctx, "tcp", cfg.GRPCAddr)
	if err != nil {
		return fmt.Errorf("gRPC listener: %w", err)
	}
	hl, err := lc.Listen(ctx, "tcp", cfg.HTTPAddr)
	if err != nil {
		gl.Close()
		return fmt.Errorf("HTTP listener: %w", err)
	}

	gs := grpc.NewServer(
		grpc.ChainUnaryInterceptor(interceptor),
		grpc.MaxRecvMsgSize(cfg.MaxRecvMsgBytes),
	)
	authv1.RegisterAuthServiceServer(gs, svc)
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus(authv1.AuthService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(gs, hs)
	reflection.Register(gs)

	var serving atomic.Bool
	serving.Store(true)
	handler, err := httpHandler(ctx, service.Intercepted(svc, interceptor), &serving)
	if err != nil {
		gl.Close()
		hl.Close()
		return err
	}
	httpSrv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		// A call may take the Dintero timeout for a token fetch and again
		// for the call itself, with retries inside the latter.
		WriteTimeout:   2*cfg.DinteroTimeout + 5*time.Second,
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 32 << 10,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}

	log.Info("dintero-facade starting", "version", version, "config", cfg, "grpc_addr", gl.Addr().String(), "http_addr", hl.Addr().String())
	errc := make(chan error, 2)
	go func() { errc <- gs.Serve(gl) }()
	go func() { errc <- httpSrv.Serve(hl) }()
	if ready != nil {
		ready(listeners{GRPC: gl.Addr(), HTTP: hl.Addr()})
	}

	select {
	case err := <-errc:
		// A server failed on its own: stop the other and report it.
		gs.Stop()
		_ = httpSrv.Close()
		return fmt.Errorf("server failed: %w", err)
	case <-ctx.Done():
	}

	log.Info("shutting down: reporting NOT_SERVING", "delay", cfg.ShutdownDelay, "grace", cfg.ShutdownGrace)
	serving.Store(false)
	hs.Shutdown()
	if cfg.ShutdownDelay > 0 {
		time.Sleep(cfg.ShutdownDelay)
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

// httpHandler serves the JSON gateway under /v1/, /healthz and the OpenAPI
// document. The gateway calls srv in process, which is about twice as fast
// as a loopback gRPC connection; srv must therefore carry the interceptors.
func httpHandler(ctx context.Context, srv authv1.AuthServiceServer, serving *atomic.Bool) (http.Handler, error) {
	gw := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.JSONPb{
			// Dintero's own field names, so a grant has Dintero's shape.
			MarshalOptions:   protojson.MarshalOptions{UseProtoNames: true},
			UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: true},
		}),
		runtime.WithIncomingHeaderMatcher(incomingHeader),
		runtime.WithOutgoingHeaderMatcher(outgoingHeader),
	)
	if err := authv1.RegisterAuthServiceHandlerServer(ctx, gw, srv); err != nil {
		return nil, fmt.Errorf("registering the gateway: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/", gw)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !serving.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("shutting down\n"))
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /openapi.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(openapiv2.JSON)
	})
	return mux, nil
}

// incomingHeader admits X-Request-Id to the call's metadata, besides what
// grpc-gateway admits by default (Authorization among them).
func incomingHeader(key string) (string, bool) {
	if textproto.CanonicalMIMEHeaderKey(key) == "X-Request-Id" {
		return service.RequestIDKey, true
	}
	return runtime.DefaultHeaderMatcher(key)
}

// outgoingHeader returns the request id as X-Request-Id; other header
// metadata keeps grpc-gateway's Grpc-Metadata- prefix.
func outgoingHeader(key string) (string, bool) {
	if strings.EqualFold(key, service.RequestIDKey) {
		return "X-Request-Id", true
	}
	return runtime.MetadataHeaderPrefix + key, true
}
