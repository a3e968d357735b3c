package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
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

	"github.com/dintero-facade/dintero-facade/service"
	"github.com/dintero-facade/dintero-facade/upstream"
)

// telemetry is the facade's metrics and traces.
type telemetry struct {
	registry *prometheus.Registry
	grpc     *grpcprom.ServerMetrics
	upstream *upstream.Metrics
	service  *service.Counters
	// tp is nil when tracing is off.
	tp   trace.TracerProvider
	prop propagation.TextMapPropagator
	stop func(context.Context) error
}

// newTelemetry registers the metrics and, when the configuration (or the
// test) asks for it, sets up tracing.
func newTelemetry(ctx context.Context, o Options) (*telemetry, error) {
	t := &telemetry{
		registry: prometheus.NewRegistry(),
		grpc:     grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram()),
		prop:     propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
		stop:     func(context.Context) error { return nil },
	}
	if err := t.registry.Register(collectors.NewGoCollector()); err != nil {
		return nil, err
	}
	if err := t.registry.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return nil, err
	}
	if err := t.registry.Register(t.grpc); err != nil {
		return nil, err
	}
	var err error
	if t.upstream, err = upstream.NewMetrics(t.registry); err != nil {
		return nil, err
	}
	if t.service, err = service.NewCounters(t.registry); err != nil {
		return nil, err
	}
	switch {
	case o.TracerProvider != nil:
		t.tp = o.TracerProvider
	case o.Config.Tracing:
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

// shutdown flushes the traces.
func (t *telemetry) shutdown(log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := t.stop(ctx); err != nil {
		log.Warn("flushing traces", "error", err.Error())
	}
}

// metricsHandler serves the registry.
func (t *telemetry) metricsHandler() http.Handler {
	return promhttp.HandlerFor(t.registry, promhttp.HandlerOpts{Registry: t.registry})
}

// transport traces the calls to Dintero, when tracing is on.
func (t *telemetry) transport(base http.RoundTripper) http.RoundTripper {
	if t.tp == nil {
		return base
	}
	return upstream.TracingTransport(base, t.tp, t.prop)
}

// grpcOptions traces the gRPC server, when tracing is on.
func (t *telemetry) grpcOptions() []grpc.ServerOption {
	if t.tp == nil {
		return nil
	}
	return []grpc.ServerOption{grpc.StatsHandler(otelgrpc.NewServerHandler(otelgrpc.WithTracerProvider(t.tp), otelgrpc.WithPropagators(t.prop)))}
}

// handler traces the gateway, when tracing is on.
func (t *telemetry) handler(h http.Handler) http.Handler {
	if t.tp == nil {
		return h
	}
	return otelhttp.NewHandler(h, "gateway", otelhttp.WithTracerProvider(t.tp), otelhttp.WithPropagators(t.prop),
		otelhttp.WithSpanNameFormatter(func(op string, r *http.Request) string { return op + " " + r.Method }))
}
