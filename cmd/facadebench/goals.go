package main

import (
	"fmt"
	"io"
	"time"
)

// goal is one of the goals the benchmark checks (issue 25's): a figure of
// one run, compared with a target that may itself come from the same run
// (the relay floor's ratio against nginx, say). A goal whose figures the
// run did not measure (nginx not installed, a concurrency not run) is
// reported as such, never as held.
type goal struct {
	name     string
	value    float64
	op       string // ">=" or "<="
	target   float64
	measured bool
	// about says what the value and the target are, for the reader.
	about string
}

// holds reports whether the goal is met: its value compared with its
// target by op. An unmeasured goal does not hold.
func (g goal) holds() bool {
	if !g.measured {
		return false
	}
	switch g.op {
	case ">=":
		return g.value >= g.target
	case "<=":
		return g.value <= g.target
	}
	panic("facadebench: goal " + g.name + " has no comparison " + g.op)
}

// String is the goal's line: "goal NAME: VALUE OP TARGET holds|FAILS (about)".
func (g goal) String() string {
	if !g.measured {
		return fmt.Sprintf("goal %s: not measured in this run (%s)", g.name, g.about)
	}
	verdict := "FAILS"
	if g.holds() {
		verdict = "holds"
	}
	return fmt.Sprintf("goal %s: %.3f %s %.3f %s (%s)", g.name, g.value, g.op, g.target, verdict, g.about)
}

// ratioGoal is the goal a/b op target, measured when both are positive.
func ratioGoal(name string, a, b float64, op string, target float64, about string) goal {
	g := goal{name: name, op: op, target: target, about: about, measured: a > 0 && b > 0}
	if g.measured {
		g.value = a / b
	}
	return g
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// remoteGoals are the goals of the remote scenario, from the medians of
// one run: at 1,000 in flight, the facade's calls/s against the relay
// floor's and nginx's, its CPU per call against the floor's, the
// connections of a cold start and the peak RSS; at 200, the p99 it adds
// against the floor's and its CPU against the floor's.
func remoteGoals(med func(string) remoteSample, cold []coldSample, rss int64) []goal {
	f, rf, n := med("facade_grpc@1000"), med("relay_floor@1000"), med("nginx@1000")
	gs := []goal{
		ratioGoal("calls_vs_relay_floor_1000", f.rps, rf.rps, ">=", 1, "facade's calls/s ÷ the relay floor's, 1,000 in flight"),
		ratioGoal("calls_vs_nginx_1000", f.rps, n.rps, ">=", 1, "facade's calls/s ÷ nginx's, 1,000 in flight"),
		ratioGoal("cpu_vs_relay_floor_1000", float64(f.cpuPerCall), float64(rf.cpuPerCall), "<=", 1.25, "facade's CPU per call ÷ the relay floor's, 1,000 in flight"),
	}
	var maxConns int64
	for _, c := range cold {
		maxConns = max(maxConns, c.conns)
	}
	gs = append(gs,
		goal{name: "cold_start_conns", value: float64(maxConns), op: "<=", target: 32, measured: len(cold) > 0, about: "most TCP connections to Dintero in a cold start"},
		goal{name: "peak_rss_mib", value: float64(rss) / (1 << 20), op: "<=", target: 100, measured: rss > 0, about: "facade's peak RSS in MiB, its own memory settings"},
	)
	f, rf, d := med("facade_grpc@200"), med("relay_floor@200"), med("direct@200")
	added := goal{name: "added_p99_ms_200", op: "<=", about: "p99 the facade adds to direct's, against the relay floor's + 5 ms, 200 in flight",
		measured: f.rps > 0 && rf.rps > 0 && d.rps > 0}
	if added.measured {
		added.value, added.target = ms(f.p99-d.p99), ms(rf.p99-d.p99)+5
	}
	return append(gs, added,
		ratioGoal("cpu_vs_relay_floor_200", float64(f.cpuPerCall), float64(rf.cpuPerCall), "<=", 1.25, "facade's CPU per call ÷ the relay floor's, 200 in flight"))
}

// loopbackGoals are the goals of the loopback scenario, from the medians
// of one run at saturation: the facade's CPU per call against the relay
// floor's, its calls/s against nginx's against the floor's own ratio, and
// the gateway's calls/s against direct's.
func loopbackGoals(sat func(string) sample) []goal {
	f, rf, n, d, gw := sat("facade_grpc"), sat("relay_floor"), sat("nginx"), sat("direct"), sat("facade_gateway")
	gs := []goal{ratioGoal("cpu_vs_relay_floor", float64(f.cpuPerCall), float64(rf.cpuPerCall), "<=", 1.15, "facade's CPU per call ÷ the relay floor's")}
	vsNginx := goal{name: "grpc_vs_nginx_calls", op: ">=", about: "facade's calls/s ÷ nginx's, against the relay floor's ÷ nginx's",
		measured: f.rps > 0 && rf.rps > 0 && n.rps > 0}
	if vsNginx.measured {
		vsNginx.value, vsNginx.target = f.rps/n.rps, rf.rps/n.rps
	}
	return append(gs, vsNginx, ratioGoal("gateway_vs_direct_calls", gw.rps, d.rps, ">=", 0.33, "gateway's calls/s ÷ direct's"))
}

// printGoals writes one line per goal.
func printGoals(w io.Writer, gs []goal) {
	for _, g := range gs {
		fmt.Fprintln(w, g)
	}
}

// printGCShare writes the collector's share of the facade's CPU on a
// path, from the runtime's own account (/cpu/classes/gc/total:cpu-seconds,
// which the facade's /metrics serves) against the process's CPU from /proc.
func printGCShare(w io.Writer, label string, s sample) {
	if s.cpu <= 0 || s.gcCPU < 0 {
		fmt.Fprintf(w, "gc_share_%s: not measured\n", label)
		return
	}
	fmt.Fprintf(w, "gc_share_%s=%.3f (%.1f µs of %.1f µs per call)\n", label, s.gcShare(),
		s.gcShare()*float64(s.cpuPerCall)/float64(time.Microsecond), float64(s.cpuPerCall)/float64(time.Microsecond))
}
