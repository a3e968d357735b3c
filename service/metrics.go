package service

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts the service's decisions about the facade's credentials.
// The account label is bounded: an account the facade holds credentials
// for, or "other".
type Metrics struct {
	decisions *prometheus.CounterVec
}

// NewMetrics registers the service's metrics with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "dintero_facade_credential_decisions_total",
		Help: "Calls by operation, account (one the facade holds credentials for, else other) and decision about the facade's credentials (own_token, no_credentials, unrestricted, allowed, denied).",
	}, []string{"operation", "account", "decision"})}
	if err := reg.Register(m.decisions); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *Metrics) decision(operation, account, decision string, known bool) {
	if m == nil {
		return
	}
	if !known {
		account = "other"
	}
	m.decisions.WithLabelValues(operation, account, decision).Inc()
}
