package telemetry

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/dintero-facade/dintero-facade/internal/mask"
	"github.com/dintero-facade/dintero-facade/upstream"
)

// tracingTransport wraps base with otelhttp, so that each attempt is a
// client span and carries the W3C traceparent to Dintero. otelhttp records
// the whole URL as url.full, and authorize's query holds the one-time
// verification code; so the query is taken off the request otelhttp sees and
// put back on the one that goes on the wire.
// The errors otelhttp records are masked on the way (restoreQuery).
func tracingTransport(base http.RoundTripper, tp trace.TracerProvider, prop propagation.TextMapPropagator) http.RoundTripper {
	inner := otelhttp.NewTransport(restoreQuery{next: base},
		otelhttp.WithTracerProvider(tp),
		otelhttp.WithPropagators(prop),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return "Dintero " + r.Method }),
	)
	return hideQuery{next: inner, base: base}
}

type queryKey struct{}

// hideQuery moves the query into the request's context.
type hideQuery struct {
	next http.RoundTripper
	base http.RoundTripper // the transport that holds the connections
}

func (h hideQuery) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.RawQuery == "" {
		res, err := h.next.RoundTrip(r)
		return res, transportErr(err)
	}
	r2 := r.Clone(context.WithValue(r.Context(), queryKey{}, r.URL.RawQuery))
	r2.URL.RawQuery = ""
	res, err := h.next.RoundTrip(r2)
	return res, transportErr(err)
}

// transportErr is the transport's own error where restoreQuery masked it
// for the span.
func transportErr(err error) error {
	if m, ok := err.(*maskedError); ok {
		return m.err
	}
	return err
}

// CloseIdleConnections closes the idle connections of the transport
// underneath, so that upstream.Client.CloseIdleConnections reaches it
// through the wrapping (otelhttp's transport does not pass the call on).
func (h hideQuery) CloseIdleConnections() {
	if c, ok := h.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// Warm passes Warm on to the transport underneath, when it has one.
func (h hideQuery) Warm(ctx context.Context, rawURL string) error {
	if w, ok := h.base.(interface {
		Warm(ctx context.Context, rawURL string) error
	}); ok {
		return w.Warm(ctx, rawURL)
	}
	return nil
}

// restoreQuery puts the query back before the request is sent, and masks
// the transport's errors, which otelhttp writes into the span as they are
// (its status, from the round trip and from reading the body). Their text
// may quote the server's: a status line that does not parse, an HTTP/2
// GOAWAY's debug data. A broken Dintero, or a proxy before it, may echo
// there what the request carried: the verification code in authorize's
// query, the Authorization header. So every value of the query and the
// Authorization value (with the credential it holds) are masked out of an
// error, in every form internal/mask knows. hideQuery hands the transport's
// own error back to the client, which masks it itself.
type restoreQuery struct{ next http.RoundTripper }

func (h restoreQuery) RoundTrip(r *http.Request) (*http.Response, error) {
	if q, ok := r.Context().Value(queryKey{}).(string); ok {
		r = r.Clone(r.Context())
		r.URL.RawQuery = q
	}
	res, err := h.next.RoundTrip(r)
	if err != nil {
		return res, maskError(err, r)
	}
	if res != nil && res.Body != nil && res.Body != http.NoBody {
		res.Body = &maskedBody{ReadCloser: res.Body, req: r}
	}
	return res, nil
}

// maskedError is a transport's error with the request's secrets masked out
// of its text. It unwraps to the error, whose type is its ErrorType
// (otelhttp's error.type).
type maskedError struct {
	err  error
	text string
}

func (e *maskedError) Error() string     { return e.text }
func (e *maskedError) Unwrap() error     { return e.err }
func (e *maskedError) ErrorType() string { return fmt.Sprintf("%T", e.err) }

// maskError masks r's secrets out of err's text.
func maskError(err error, r *http.Request) error {
	secrets := []string{r.URL.RawQuery}
	if q, qerr := url.ParseQuery(r.URL.RawQuery); qerr == nil {
		for _, vs := range q {
			secrets = append(secrets, vs...)
		}
	}
	if auth := r.Header.Get("Authorization"); auth != "" {
		secrets = append(secrets, auth)
		if _, cred, ok := strings.Cut(auth, " "); ok {
			secrets = append(secrets, strings.TrimLeft(cred, " "))
		}
		if user, pass, ok := r.BasicAuth(); ok {
			secrets = append(secrets, pass, user+":"+pass)
		}
	}
	return &maskedError{err: err, text: mask.New(secrets...).Text(err.Error())}
}

// maskedBody masks its request's secrets out of the errors of a response
// body's reads; io.EOF is passed as it is.
type maskedBody struct {
	io.ReadCloser
	req *http.Request
}

func (b *maskedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		err = maskError(err, b.req)
	}
	return n, err
}

// UpstreamMetrics is the upstream.Observer that exports the client's
// Prometheus metrics. Its labels are bounded: the operation (an
// upstream.Operation's Name), the HTTP status, the attempt number and the
// breaker state; never an id, a token or another unbounded value.
type UpstreamMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	retries  *prometheus.CounterVec
	tokens   prometheus.Counter
	breaker  *prometheus.GaugeVec
	keys     *prometheus.GaugeVec
}

var (
	_ upstream.Observer            = (*UpstreamMetrics)(nil)
	_ upstream.KeysBreakerObserver = (*UpstreamMetrics)(nil)
)

// newUpstreamMetrics registers the client's metrics with reg.
func newUpstreamMetrics(reg prometheus.Registerer) (*UpstreamMetrics, error) {
	m := &UpstreamMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dintero_upstream_requests_total",
			Help: "HTTP attempts to Dintero, by operation, HTTP status (0: no answer) and attempt number.",
		}, []string{"operation", "status", "attempt"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "dintero_upstream_request_duration_seconds",
			Help:    "Duration of HTTP attempts to Dintero, by operation.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"operation"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dintero_upstream_retries_total",
			Help: "HTTP attempts to Dintero after the first of a call, by operation.",
		}, []string{"operation"}),
		tokens: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dintero_upstream_token_fetches_total",
			Help: "Access tokens fetched with the facade's client credentials.",
		}),
		breaker: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "dintero_upstream_circuit_state",
			Help: "1 for the circuit breaker's current state (closed, half-open, open), 0 for the others.",
		}, []string{"state"}),
		keys: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "dintero_upstream_keys_circuit_state",
			Help: "1 for the current state (closed, half-open, open) of the breaker of the signing keys endpoint, 0 for the others.",
		}, []string{"state"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.retries, m.tokens, m.breaker, m.keys} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	m.BreakerState("closed")
	m.KeysBreakerState("closed")
	return m, nil
}

// Attempt counts an attempt.
func (m *UpstreamMetrics) Attempt(op string, attempt, status int, elapsed time.Duration) {
	m.requests.WithLabelValues(op, strconv.Itoa(status), strconv.Itoa(attempt)).Inc()
	m.duration.WithLabelValues(op).Observe(elapsed.Seconds())
	if attempt > 1 {
		m.retries.WithLabelValues(op).Inc()
	}
}

// TokenFetched counts a token fetch.
func (m *UpstreamMetrics) TokenFetched() { m.tokens.Inc() }

// BreakerState records the breaker's new state.
func (m *UpstreamMetrics) BreakerState(state string) { setState(m.breaker, state) }

// KeysBreakerState records the keys breaker's new state.
func (m *UpstreamMetrics) KeysBreakerState(state string) { setState(m.keys, state) }

// setState sets 1 for state and 0 for the others.
func setState(g *prometheus.GaugeVec, state string) {
	for _, s := range []string{"closed", "half-open", "open"} {
		v := 0.0
		if s == state {
			v = 1
		}
		g.WithLabelValues(s).Set(v)
	}
}
