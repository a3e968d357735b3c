// Package telemetry is the facade's metrics registry, with the gRPC,
// upstream and service metrics on it, and its tracing: the OTLP exporter
// when configured, and the wrappers that trace the gRPC server, the JSON
// gateway and the calls to Dintero.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"runtime"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	sdkresource "go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/stats"

	"github.com/dintero-facade/dintero-facade/internal/reload"
	"github.com/dintero-facade/dintero-facade/service"
)

// errorLogEvery is how often one OpenTelemetry error is logged at most.
const errorLogEvery = time.Minute

// Options configure New.
type Options struct {
	// Tracing exports traces over OTLP, configured by the standard OTEL_*
	// variables.
	Tracing bool
	// TracerProvider, when set, is used instead (tests record spans with
	// it).
	TracerProvider trace.TracerProvider
	// Version names the build in the traces' resource.
	Version string
	// Log takes OpenTelemetry's own errors (an export that failed), as
	// JSON; required with Tracing.
	Log *slog.Logger
}

// Telemetry is the facade's metrics and traces.
type Telemetry struct {
	registry *prometheus.Registry
	// GRPC, Upstream and Service are the metrics of the gRPC server, the
	// client of Dintero and the service.
	GRPC     *GRPCMetrics
	Upstream *UpstreamMetrics
	Service  *service.Counters
	// Reload counts the reloads of the files the facade reads, and shows
	// the served certificate's expiry.
	Reload *reload.Metrics
	// tp is nil when tracing is off.
	tp   trace.TracerProvider
	prop propagation.TextMapPropagator
	stop func(context.Context) error
	// methods are the full names of the gRPC server's methods
	// (TraceMethodsOf), written before it serves.
	methods map[string]bool
}

// New registers the metrics and, when o asks for it, sets up tracing.
func New(ctx context.Context, o Options) (*Telemetry, error) {
	t := &Telemetry{
		registry: prometheus.NewRegistry(),
		GRPC:     NewGRPCMetrics(),
		prop:     propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
		stop:     func(context.Context) error { return nil },
		methods:  map[string]bool{},
	}
	// Beside the Go collector's usual figures, the runtime's account of
	// its CPU by class: the collector's share of the CPU is what tells
	// whether the memory limit is too tight for the load.
	goCollector := collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(
		collectors.GoRuntimeMetricsRule{Matcher: regexp.MustCompile(`^/cpu/classes/(gc/total|user|scavenge/total):cpu-seconds$`)}))
	if err := t.registry.Register(goCollector); err != nil {
		return nil, err
	}
	if err := t.registry.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return nil, err
	}
	if err := t.registry.Register(t.GRPC); err != nil {
		return nil, err
	}
	var err error
	if t.Upstream, err = newUpstreamMetrics(t.registry); err != nil {
		return nil, err
	}
	if t.Service, err = service.NewCounters(t.registry); err != nil {
		return nil, err
	}
	if t.Reload, err = reload.NewMetrics(t.registry); err != nil {
		return nil, err
	}
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "dintero_facade_build_info",
		Help:        "Always 1: the facade's version and the Go release it was built with, as labels.",
		ConstLabels: prometheus.Labels{"version": o.Version, "go_version": runtime.Version()},
	})
	buildInfo.Set(1)
	if err := t.registry.Register(buildInfo); err != nil {
		return nil, err
	}
	switch {
	case o.TracerProvider != nil:
		t.tp = o.TracerProvider
	case o.Tracing:
		if o.Log == nil {
			return nil, errors.New("tracing needs a log for OpenTelemetry's errors")
		}
		// OpenTelemetry reports its own errors (an export that failed)
		// through a process-wide handler and logger, which by default
		// write plain lines with Go's log package: they go to the JSON
		// log instead, each distinct error at most once a minute.
		otel.SetErrorHandler(newErrorLog(o.Log, errorLogEvery))
		otel.SetLogger(logr.FromSlogHandler(o.Log.Handler()))
		exp, err := otlptracegrpc.New(ctx)
		if err != nil {
			return nil, fmt.Errorf("OTLP trace exporter: %w", err)
		}
		res, err := sdkresource.Merge(sdkresource.Default(), sdkresource.NewSchemaless(
			semconv.ServiceName("dintero-facade"), semconv.ServiceVersion(o.Version)))
		if err != nil {
			return nil, err
		}
		tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
		t.tp, t.stop = tp, tp.Shutdown
	}
	return t, nil
}

// Shutdown flushes the traces.
func (t *Telemetry) Shutdown(log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := t.stop(ctx); err != nil {
		log.Warn("flushing traces", "error", err.Error())
	}
}

// MetricsHandler serves the registry.
func (t *Telemetry) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(t.registry, promhttp.HandlerOpts{Registry: t.registry})
}

// Transport traces the calls to Dintero, when tracing is on.
func (t *Telemetry) Transport(base http.RoundTripper) http.RoundTripper {
	if t.tp == nil {
		return base
	}
	return tracingTransport(base, t.tp, t.prop)
}

// GRPCOptions traces the gRPC server, when tracing is on. A span names
// its method only when the server has it (TraceMethodsOf): the caller
// chooses the name, and grpc-go tags a call before it looks the method
// up, so a code sent as the name of a method that does not exist would
// be the span's name and rpc.method. Any other is unknownMethod.
func (t *Telemetry) GRPCOptions() []grpc.ServerOption {
	if t.tp == nil {
		return nil
	}
	return []grpc.ServerOption{grpc.StatsHandler(knownMethods{Handler: otelgrpc.NewServerHandler(otelgrpc.WithTracerProvider(t.tp), otelgrpc.WithPropagators(t.prop)), known: t.methods})}
}

// TraceMethodsOf gives the traces the methods s has registered: call it
// after the last registration, before s serves.
func (t *Telemetry) TraceMethodsOf(s *grpc.Server) {
	if t.tp == nil {
		return
	}
	for service, info := range s.GetServiceInfo() {
		for _, m := range info.Methods {
			t.methods["/"+service+"/"+m.Name] = true
		}
	}
}

// unknownMethod stands for a method name the server does not have.
const unknownMethod = "/unknown/unknown"

// knownMethods is a stats.Handler that tags a call of a method not in
// known as unknownMethod.
type knownMethods struct {
	stats.Handler
	known map[string]bool
}

func (h knownMethods) TagRPC(ctx context.Context, info *stats.RPCTagInfo) context.Context {
	if !h.known[info.FullMethodName] {
		tagged := *info
		tagged.FullMethodName = unknownMethod
		info = &tagged
	}
	return h.Handler.TagRPC(ctx, info)
}

// Handler traces the gateway, when tracing is on. The span records as the
// request's path pathOf's answer, never the path itself: a caller chooses
// the path, and may put a secret in it (a query behind an escaped "?", a
// code in a segment), which the span's url.path would keep. h still gets
// the request as it came.
func (t *Telemetry) Handler(h http.Handler, pathOf func(*http.Request) string) http.Handler {
	if t.tp == nil {
		return h
	}
	traced := otelhttp.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, ok := r.Context().Value(urlKey{}).(*url.URL); ok {
			r = r.WithContext(r.Context())
			r.URL = u
		}
		h.ServeHTTP(w, r)
	}), "gateway", otelhttp.WithTracerProvider(t.tp), otelhttp.WithPropagators(t.prop),
		otelhttp.WithSpanNameFormatter(func(op string, r *http.Request) string { return op + " " + r.Method }))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		safe := &url.URL{Path: pathOf(r)}
		r2 := r.WithContext(context.WithValue(r.Context(), urlKey{}, r.URL))
		r2.URL = safe
		traced.ServeHTTP(w, r2)
	})
}

// urlKey carries a traced request's own URL past the tracing, which sees
// only the path that may be recorded.
type urlKey struct{}
