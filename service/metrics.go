package service

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Counters count the service's decisions about the facade's credentials,
// the parts of Dintero's success answers it could not read, the
// verifications of id_tokens, and Dintero's refusals of its own client
// credentials. Labels are bounded: the account is one the
// facade holds credentials for, or "other"; a part is a field of Dintero's
// grant, or "body"; a reason is one of upstream's fixed set.
type Counters struct {
	decisions       *prometheus.CounterVec
	undecodedFields *prometheus.CounterVec
	idTokens        *prometheus.CounterVec
	credsRejected   *prometheus.CounterVec
}

// NewCounters registers the service's counters with reg.
func NewCounters(reg prometheus.Registerer) (*Counters, error) {
	m := &Counters{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dintero_facade_credential_decisions_total",
			Help: "Calls by operation, account (one the facade holds credentials for, else other) and decision about the facade's credentials (own_token, no_credentials, unrestricted, allowed, denied).",
		}, []string{"operation", "account", "decision"}),
		undecodedFields: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dintero_facade_undecoded_fields_total",
			Help: "Parts of Dintero's success answers that could not be read and were left unset (the call still succeeded), by operation and part (a field of the grant, or body).",
		}, []string{"operation", "field"}),
		idTokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dintero_facade_id_token_verifications_total",
			Help: "Authorize answers by the verification of their id_token: result (verified, invalid, not_checked) and, when invalid, the reason (the failed check).",
		}, []string{"result", "reason"}),
		credsRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dintero_facade_credentials_rejected_total",
			Help: "Calls that failed because Dintero refused the facade's own client credentials for the account (reason FACADE_CREDENTIALS_REJECTED), by operation and account: alert on any increase.",
		}, []string{"operation", "account"}),
	}
	for _, c := range []prometheus.Collector{m.decisions, m.undecodedFields, m.idTokens, m.credsRejected} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Counters) undecoded(operation string, fields []string) {
	if m == nil {
		return
	}
	for _, f := range fields {
		m.undecodedFields.WithLabelValues(operation, f).Inc()
	}
}

func (m *Counters) decision(operation, account, decision string, known bool) {
	if m == nil {
		return
	}
	if !known {
		account = "other"
	}
	m.decisions.WithLabelValues(operation, account, decision).Inc()
}

func (m *Counters) idToken(result, reason string) {
	if m == nil {
		return
	}
	m.idTokens.WithLabelValues(result, reason).Inc()
}

// rejected counts a call whose facade credentials Dintero refused; the
// account is one the facade holds credentials for, so the label is bounded.
func (m *Counters) rejected(operation, account string) {
	if m == nil {
		return
	}
	m.credsRejected.WithLabelValues(operation, account).Inc()
}
