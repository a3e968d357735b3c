package reload

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics count the reloads of the credentials, the TLS files and the
// policy, and show the served certificate's expiry, so that a bad Secret
// or a failed renewal can be alerted on rather than found in the log.
// Labels are bounded: file is credentials, tls or policy.
type Metrics struct {
	reloads     *prometheus.CounterVec
	lastSuccess *prometheus.GaugeVec
	lastOK      *prometheus.GaugeVec
	certExpiry  prometheus.Gauge
}

// NewMetrics registers the reload metrics with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dintero_facade_reloads_total",
			Help: "Reloads of a file after it changed or on SIGHUP, by file (credentials, tls, policy) and result (ok; error: the file did not load and the previous content stays in force).",
		}, []string{"file", "result"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "dintero_facade_reload_last_success_timestamp_seconds",
			Help: "When the content in force was read (at start, or by the last reload that succeeded), by file, in seconds since the epoch.",
		}, []string{"file"}),
		lastOK: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "dintero_facade_reload_last_successful",
			Help: "Whether the last reload of the file succeeded (1) or did not load and left the previous content in force (0), by file.",
		}, []string{"file"}),
		certExpiry: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "dintero_facade_tls_certificate_expiry_timestamp_seconds",
			Help: "When the certificate the listeners serve expires (its NotAfter), in seconds since the epoch.",
		}),
	}
	for _, c := range []prometheus.Collector{m.reloads, m.lastSuccess, m.lastOK, m.certExpiry} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// loaded records the content read at start as in force, and makes the
// file's series exist before its first reload.
func (m *Metrics) loaded(file string) {
	if m == nil {
		return
	}
	m.reloads.WithLabelValues(file, "ok").Add(0)
	m.reloads.WithLabelValues(file, "error").Add(0)
	m.lastSuccess.WithLabelValues(file).Set(float64(time.Now().UnixNano()) / 1e9)
	m.lastOK.WithLabelValues(file).Set(1)
}

// reloaded counts a reload's outcome.
func (m *Metrics) reloaded(file string, err error) {
	if m == nil {
		return
	}
	if err != nil {
		m.reloads.WithLabelValues(file, "error").Inc()
		m.lastOK.WithLabelValues(file).Set(0)
		return
	}
	m.reloads.WithLabelValues(file, "ok").Inc()
	m.lastSuccess.WithLabelValues(file).Set(float64(time.Now().UnixNano()) / 1e9)
	m.lastOK.WithLabelValues(file).Set(1)
}

// served shows the expiry of the certificate served.
func (m *Metrics) served(notAfter time.Time) {
	if m == nil {
		return
	}
	m.certExpiry.Set(float64(notAfter.Unix()))
}
