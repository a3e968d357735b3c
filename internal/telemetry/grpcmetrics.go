package telemetry

import (
	"context"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// GRPCMetrics are the gRPC server's metrics, by the names, labels and
// buckets of go-grpc-middleware's server metrics (grpc_server_started_total,
// grpc_server_handled_total, grpc_server_msg_received_total,
// grpc_server_msg_sent_total, grpc_server_handling_seconds), so that its
// dashboards and alerts read them. They are counted here rather than by
// its interceptor, which builds label slices and looks each series up by
// its labels on every call: the series of every method the server
// registers are made once, by InitializeMetrics, and a call only adds to
// them.
type GRPCMetrics struct {
	started, handled, received, sent *prometheus.CounterVec
	handling                         *prometheus.HistogramVec
	// methods holds the series of each full method name; it is written
	// only by InitializeMetrics, before the server serves, and read
	// without a lock after.
	methods map[string]*methodMetrics
}

// methodMetrics are one method's series.
type methodMetrics struct {
	started, received, sent prometheus.Counter
	handling                prometheus.Observer
	// handled is indexed by the status code.
	handled [codes.Unauthenticated + 1]prometheus.Counter
	// labels are the type, service and method.
	labels [3]string
}

// NewGRPCMetrics returns the gRPC server's metrics, to register.
func NewGRPCMetrics() *GRPCMetrics {
	labels := []string{"grpc_type", "grpc_service", "grpc_method"}
	return &GRPCMetrics{
		started: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "grpc_server_started_total", Help: "Total number of RPCs started on the server.",
		}, labels),
		handled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "grpc_server_handled_total", Help: "Total number of RPCs completed on the server, regardless of success or failure.",
		}, append(labels[:3:3], "grpc_code")),
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "grpc_server_msg_received_total", Help: "Total number of RPC stream messages received on the server.",
		}, labels),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "grpc_server_msg_sent_total", Help: "Total number of gRPC stream messages sent by the server.",
		}, labels),
		handling: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "grpc_server_handling_seconds",
			Help:    "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
			Buckets: prometheus.DefBuckets,
		}, labels),
		methods: map[string]*methodMetrics{},
	}
}

// Describe implements prometheus.Collector.
func (m *GRPCMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range m.collectors() {
		c.Describe(ch)
	}
}

// Collect implements prometheus.Collector.
func (m *GRPCMetrics) Collect(ch chan<- prometheus.Metric) {
	for _, c := range m.collectors() {
		c.Collect(ch)
	}
}

func (m *GRPCMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.started, m.handled, m.received, m.sent, m.handling}
}

// InitializeMetrics makes the series of every method server registers,
// every code of grpc_server_handled_total at zero. It must be called
// before the server serves; calls of a method it did not see are still
// counted, at the cost of a look-up by labels.
func (m *GRPCMetrics) InitializeMetrics(server interface {
	GetServiceInfo() map[string]grpc.ServiceInfo
}) {
	for service, info := range server.GetServiceInfo() {
		for _, mi := range info.Methods {
			typ := "unary"
			switch {
			case mi.IsClientStream && mi.IsServerStream:
				typ = "bidi_stream"
			case mi.IsClientStream:
				typ = "client_stream"
			case mi.IsServerStream:
				typ = "server_stream"
			}
			m.methods["/"+service+"/"+mi.Name] = m.series(typ, service, mi.Name)
		}
	}
}

// series makes one method's series.
func (m *GRPCMetrics) series(typ, service, method string) *methodMetrics {
	mm := &methodMetrics{
		started:  m.started.WithLabelValues(typ, service, method),
		received: m.received.WithLabelValues(typ, service, method),
		sent:     m.sent.WithLabelValues(typ, service, method),
		handling: m.handling.WithLabelValues(typ, service, method),
		labels:   [3]string{typ, service, method},
	}
	for c := range mm.handled {
		mm.handled[c] = m.handled.WithLabelValues(typ, service, method, codes.Code(c).String())
	}
	return mm
}

// UnaryServerInterceptor counts each unary call as go-grpc-middleware's
// does: started and its request received before the handler, its
// response sent when it succeeded, then its code and handling time.
func (m *GRPCMetrics) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		mm := m.methods[info.FullMethod]
		if mm == nil {
			return m.unregistered(ctx, req, info, handler, start)
		}
		mm.started.Inc()
		mm.received.Inc()
		resp, err := handler(ctx, req)
		if err == nil {
			mm.sent.Inc()
		}
		code := codeOf(err)
		if int(code) < len(mm.handled) {
			mm.handled[code].Inc()
		} else {
			m.handled.WithLabelValues(mm.labels[0], mm.labels[1], mm.labels[2], code.String()).Inc()
		}
		mm.handling.Observe(time.Since(start).Seconds())
		return resp, err
	}
}

// unregistered counts a call of a method InitializeMetrics did not see,
// looking each series up by its labels.
func (m *GRPCMetrics) unregistered(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler, start time.Time) (any, error) {
	service, method := splitMethod(info.FullMethod)
	m.started.WithLabelValues("unary", service, method).Inc()
	m.received.WithLabelValues("unary", service, method).Inc()
	resp, err := handler(ctx, req)
	if err == nil {
		m.sent.WithLabelValues("unary", service, method).Inc()
	}
	m.handled.WithLabelValues("unary", service, method, codeOf(err).String()).Inc()
	m.handling.WithLabelValues("unary", service, method).Observe(time.Since(start).Seconds())
	return resp, err
}

// codeOf is the code of err as the gRPC server answers it: a status's, a
// context error's, else Unknown.
func codeOf(err error) codes.Code {
	if err == nil {
		return codes.OK
	}
	st, ok := status.FromError(err)
	if !ok {
		st = status.FromContextError(err)
	}
	return st.Code()
}

// splitMethod splits "/package.Service/Method" into its service and
// method, as gRPC names them in the labels.
func splitMethod(full string) (service, method string) {
	full = strings.TrimPrefix(full, "/")
	if i := strings.LastIndexByte(full, '/'); i >= 0 {
		return full[:i], full[i+1:]
	}
	return "unknown", "unknown"
}
