package reload_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dintero-facade/dintero-facade/internal/dinterotest"
	"github.com/dintero-facade/dintero-facade/internal/reload"
	"github.com/dintero-facade/dintero-facade/service"
)

// policyTarget records the policies it is given.
type policyTarget struct {
	mu  sync.Mutex
	got []*service.Policy
}

func (p *policyTarget) SetPolicy(pol *service.Policy) error {
	if pol == nil {
		return errors.New("nil policy")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.got = append(p.got, pol)
	return nil
}

// last is the policy given last, nil before any.
func (p *policyTarget) last() *service.Policy {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.got) == 0 {
		return nil
	}
	return p.got[len(p.got)-1]
}

func (p *policyTarget) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.got)
}

// gauge returns the value of the gauge name with labels; it fails the
// test when there is none.
func gauge(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	return metricValue(t, reg, name, labels, func(m metric) float64 { return m.GetGauge().GetValue() })
}

func counter(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	return metricValue(t, reg, name, labels, func(m metric) float64 { return m.GetCounter().GetValue() })
}

const (
	refunds = "spiffe://cluster.local/ns/payments/sa/refunds"
	login   = "spiffe://cluster.local/ns/login/sa/login"
	// twoRules lets refunds delete and login authorize; oneRule revokes
	// refunds.
	twoRules = "rules:\n  - {identity: " + refunds + ", accounts: [P00000001], operations: [DeleteClientGrant]}\n  - {identity: " + login + ", accounts: [P00000001], operations: [Authorize]}\n"
	oneRule  = "rules:\n  - {identity: " + login + ", accounts: [P00000001], operations: [Authorize]}\n"
)

// TestWatchPolicy: a ConfigMap's update (the kubelet's ..data swap) and a
// signal each put the file's policy in force; a file that does not load
// is refused with an ERROR line naming what is wrong, and the previous
// policy stays; each outcome is counted.
func TestWatchPolicy(t *testing.T) {
	sd := dinterotest.NewSecretDir(t)
	sd.Write(t, map[string][]byte{"policy.yaml": []byte(twoRules)})
	file := sd.Path("policy.yaml")
	logs := &dinterotest.LogBuffer{}
	reg := prometheus.NewRegistry()
	m, err := reload.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tg := &policyTarget{}
	signal := make(chan struct{}, 1)
	if err := reload.WatchPolicy(ctx, file, tg, reload.Options{Log: slog.New(slog.NewJSONHandler(logs, nil)), Signal: signal, Metrics: m}); err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"file": "policy"}
	started := gauge(t, reg, "dintero_facade_reload_last_success_timestamp_seconds", labels)
	if started == 0 || gauge(t, reg, "dintero_facade_reload_last_successful", labels) != 1 {
		t.Errorf("at start: last success %v; want the policy read at start in force", started)
	}

	// Revoke refunds: the ConfigMap's update.
	sd.Write(t, map[string][]byte{"policy.yaml": []byte(oneRule)})
	eventually(t, "the swapped policy in force", func() bool { return tg.last() != nil })
	if p := tg.last(); p.Allows(refunds, "P00000001", "DeleteClientGrant") || !p.Allows(login, "P00000001", "Authorize") {
		t.Errorf("after the swap, got %+v; want refunds revoked, login kept", p.Rules)
	}
	eventually(t, "the reload logged", func() bool {
		return strings.Contains(logs.String(), `"msg":"policy reloaded","why":"file changed","rules":1`)
	})

	// A policy that does not load: an unknown operation.
	sd.Write(t, map[string][]byte{"policy.yaml": []byte("rules:\n  - {identity: " + refunds + ", accounts: [P00000001], operations: [Refund]}\n")})
	eventually(t, "the refusal logged", func() bool {
		return strings.Contains(logs.String(), `"msg":"policy not reloaded: keeping the previous one"`)
	})
	if line := logs.String(); !strings.Contains(line, `"level":"ERROR"`) || !strings.Contains(line, `--policy-file: `+file+`: rule 1: unknown operation \"Refund\"`) {
		t.Errorf("the refusal does not name what is wrong:\n%s", line)
	}
	if n := tg.count(); n != 1 {
		t.Errorf("a policy that does not load was put in force (%d policies given)", n)
	}
	if counter(t, reg, "dintero_facade_reloads_total", map[string]string{"file": "policy", "result": "error"}) != 1 ||
		gauge(t, reg, "dintero_facade_reload_last_successful", labels) != 0 {
		t.Error("the refused reload is not counted, or the last reload shows as successful")
	}

	// SIGHUP reads the file again, whether or not it changed since.
	sd.Write(t, map[string][]byte{"policy.yaml": []byte(twoRules)})
	eventually(t, "the fixed policy in force", func() bool { return tg.count() == 2 })
	signal <- struct{}{}
	eventually(t, "the signal's reload", func() bool { return tg.count() == 3 })
	if !tg.last().Allows(refunds, "P00000001", "DeleteClientGrant") || !strings.Contains(logs.String(), `"why":"SIGHUP"`) {
		t.Errorf("after SIGHUP: got %+v", tg.last().Rules)
	}
	if got := counter(t, reg, "dintero_facade_reloads_total", map[string]string{"file": "policy", "result": "ok"}); got != 3 {
		t.Errorf("reloads ok %v; want 3", got)
	}
	if gauge(t, reg, "dintero_facade_reload_last_successful", labels) != 1 || gauge(t, reg, "dintero_facade_reload_last_success_timestamp_seconds", labels) < started {
		t.Error("the last reload's success is not shown")
	}
}

// TestFanout: each signal reaches every channel; a nil input never fires.
func TestFanout(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	in := make(chan struct{})
	outs := reload.Fanout(ctx, in, 3)
	for range 2 {
		in <- struct{}{}
		for i, o := range outs {
			select {
			case <-o:
			case <-time.After(5 * time.Second):
				t.Fatalf("channel %d got no signal", i)
			}
		}
	}
	for _, o := range reload.Fanout(ctx, nil, 2) {
		select {
		case <-o:
			t.Error("a nil input fired")
		case <-time.After(50 * time.Millisecond):
		}
	}
}
