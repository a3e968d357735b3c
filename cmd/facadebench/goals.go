package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strings"
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
	// floor is the same goal with the relay with every feature
	// (relay_features) in the facade's place, measured in the same run;
	// nil where there is none.
	floor *goal
	// whole says the value is of the whole run (a peak, a cold start), the
	// same in every round.
	whole bool
	// rounds are the verdicts of every round, in order, when the goal was
	// judged round by round (see byRound); empty otherwise.
	rounds []string
}

// holds reports whether the goal is met: its value compared with its
// target by op. An unmeasured goal does not hold.
func (g goal) holds() bool {
	if !g.measured {
		return false
	}
	return g.meets(g.target)
}

// meets reports whether the goal's value compares with v by op.
func (g goal) meets(v float64) bool {
	switch g.op {
	case ">=":
		return g.value >= v
	case "<=":
		return g.value <= v
	}
	panic("facadebench: goal " + g.name + " has no comparison " + g.op)
}

// belowFloor reports whether a goal that does not hold is shown to be
// below a floor measured in the same run: the facade's value is at least
// as good as the relay with every feature's, which therefore misses the
// target too.
func (g goal) belowFloor() bool {
	return g.measured && !g.holds() && g.floor != nil && g.floor.measured && g.meets(g.floor.value)
}

// verdict is "holds", "below the floor" or "FAILS".
func (g goal) verdict() string {
	switch {
	case g.holds():
		return "holds"
	case g.belowFloor():
		return "below the floor"
	}
	return "FAILS"
}

// slack is how far the value is on the good side of the target, as a
// share of the target: negative when the goal does not hold.
func (g goal) slack() float64 {
	d := g.value - g.target
	if g.op == "<=" {
		d = -d
	}
	return d / max(math.Abs(g.target), 1e-9)
}

// String is the goal's line: "goal NAME: VALUE OP TARGET holds|FAILS|below
// the floor (about; the relay with every feature's value) [rounds: ...]".
func (g goal) String() string {
	if !g.measured {
		return fmt.Sprintf("goal %s: not measured in this run (%s)", g.name, g.about)
	}
	verdict := g.verdict()
	about := g.about
	if f := g.floor; f != nil && f.measured {
		meets := "meets it"
		switch {
		case f.holds():
		case g.holds():
			meets = "misses it"
		default:
			meets = "misses it too"
		}
		about += fmt.Sprintf("; the relay with every feature: %.3f, which %s", f.value, meets)
	}
	line := fmt.Sprintf("goal %s: %.3f %s %.3f %s (%s)", g.name, g.value, g.op, g.target, verdict, about)
	if len(g.rounds) > 0 {
		line += " [rounds: " + strings.Join(g.rounds, ", ") + "]"
	}
	return line
}

// byRound judges every goal within each of n rounds, from goalsOf(r): the
// goals computed from round r's figures alone. Within a round the paths
// run back to back, so a change in the machine's load between rounds
// moves both sides of a ratio alike, where a ratio of two paths' medians
// may pair a quiet round of one with a busy round of the other. Each goal
// is the round at the median of its measured rounds ranked by verdict
// ("holds" over "below the floor" over "FAILS"), then by slack (of an even
// count, the worse of the middle two), judged in full with that round's
// relay with every feature: so its verdict is one that most rounds share
// or better, and most share or worse. A rank by slack alone would not
// give that: "below the floor" compares the facade with the relay with
// every feature, not with the target, and the round of the median slack
// may be the one round of three to excuse a miss. It lists every round's
// verdict, "not measured" for a round that measured nothing of the goal.
func byRound(n int, goalsOf func(r int) []goal) []goal {
	var per [][]goal
	for r := range n {
		per = append(per, goalsOf(r))
	}
	if len(per) == 0 {
		return nil
	}
	out := make([]goal, len(per[0]))
	for i := range out {
		var ms []goal
		var verdicts []string
		for _, gs := range per {
			g := gs[i]
			if !g.measured {
				verdicts = append(verdicts, "not measured")
				continue
			}
			ms = append(ms, g)
			verdicts = append(verdicts, g.verdict())
		}
		if len(ms) == 0 || per[0][i].whole {
			out[i] = per[0][i]
			continue
		}
		sort.SliceStable(ms, func(a, b int) bool {
			if ra, rb := ms[a].rank(), ms[b].rank(); ra != rb {
				return ra < rb
			}
			return ms[a].slack() < ms[b].slack()
		})
		out[i] = ms[(len(ms)-1)/2]
		out[i].rounds = verdicts
	}
	return out
}

// rank orders verdicts from the worst: 0 for "FAILS", 1 for "below the
// floor", 2 for "holds".
func (g goal) rank() int {
	switch {
	case g.holds():
		return 2
	case g.belowFloor():
		return 1
	}
	return 0
}

// at is round r of a path's samples, or the zero sample (not measured)
// where the path has no such round.
func at[S any](ss []S, r int) S {
	var zero S
	if r < len(ss) {
		return ss[r]
	}
	return zero
}

// withFloor returns g with floor, the same goal measured on the relay
// with every feature.
func withFloor(g, floor goal) goal {
	g.floor = &floor
	return g
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

// remoteGoals are the goals of the remote scenario, from the samples of
// one round: at 1,000 in flight, the facade's calls/s against the relay
// floor's and nginx's, its CPU per call against the floor's, the
// connections of a cold start and the peak RSS; at 200, the p99 it adds
// against the floor's and its CPU against the floor's. Each goal of calls,
// CPU or p99 is also measured on the relay with every feature.
//
// A sample with failed calls measures none of them (see measured).
func remoteGoals(sampleOf func(string) remoteSample, cold []coldSample, rss int64) []goal {
	med := func(k string) remoteSample {
		if s := sampleOf(k); measured(s.sample) {
			return s
		}
		return remoteSample{}
	}
	rf, n := med("relay_floor@1000"), med("nginx@1000")
	callsVsFloor := func(x remoteSample) goal {
		return ratioGoal("calls_vs_relay_floor_1000", x.rps, rf.rps, ">=", 1, "facade's calls/s ÷ the relay floor's, 1,000 in flight")
	}
	callsVsNginx := func(x remoteSample) goal {
		return ratioGoal("calls_vs_nginx_1000", x.rps, n.rps, ">=", 1, "facade's calls/s ÷ nginx's, 1,000 in flight")
	}
	cpu1000 := func(x remoteSample) goal {
		return ratioGoal("cpu_vs_relay_floor_1000", float64(x.cpuPerCall), float64(rf.cpuPerCall), "<=", 1.25, "facade's CPU per call ÷ the relay floor's, 1,000 in flight")
	}
	f, ff := med("facade_grpc@1000"), med("relay_features@1000")
	gs := []goal{withFloor(callsVsFloor(f), callsVsFloor(ff)), withFloor(callsVsNginx(f), callsVsNginx(ff)), withFloor(cpu1000(f), cpu1000(ff))}
	// A cold start whose calls failed may have opened fewer connections
	// than one that served them.
	coldMeasured := len(cold) > 0 && !slices.ContainsFunc(cold, func(c coldSample) bool { return c.errors > 0 })
	gs = append(gs,
		goal{name: "cold_start_conns", value: float64(maxConns(cold)), op: "<=", target: 32, measured: coldMeasured, whole: true, about: "most TCP connections to Dintero in a cold start"},
		goal{name: "peak_rss_mib", value: float64(rss) / (1 << 20), op: "<=", target: 100, measured: rss > 0, whole: true, about: "facade's peak RSS in MiB, its own memory settings"},
	)
	rf200, d := med("relay_floor@200"), med("direct@200")
	added := func(x remoteSample) goal {
		g := goal{name: "added_p99_ms_200", op: "<=", about: "p99 the facade adds to direct's, against the relay floor's + 5 ms, 200 in flight",
			measured: x.rps > 0 && rf200.rps > 0 && d.rps > 0}
		if g.measured {
			g.value, g.target = ms(x.p99-d.p99), ms(rf200.p99-d.p99)+5
		}
		return g
	}
	cpu200 := func(x remoteSample) goal {
		return ratioGoal("cpu_vs_relay_floor_200", float64(x.cpuPerCall), float64(rf200.cpuPerCall), "<=", 1.25, "facade's CPU per call ÷ the relay floor's, 200 in flight")
	}
	f, ff = med("facade_grpc@200"), med("relay_features@200")
	return append(gs, withFloor(added(f), added(ff)), withFloor(cpu200(f), cpu200(ff)))
}

// loopbackGoals are the goals of the loopback scenario, from the samples
// of one round at saturation: the facade's CPU per call against the relay
// floor's, its calls/s against nginx's against the floor's own ratio, and
// the gateway's calls/s against direct's. Each is also measured on the
// relay with every feature (over gRPC, and behind grpc-gateway).
//
// A sample with failed calls measures none of them (see measured).
func loopbackGoals(sampleOf func(string) sample) []goal {
	sat := func(k string) sample {
		if s := sampleOf(k); measured(s) {
			return s
		}
		return sample{}
	}
	rf, n, d := sat("relay_floor"), sat("nginx"), sat("direct")
	cpu := func(x sample) goal {
		return ratioGoal("cpu_vs_relay_floor", float64(x.cpuPerCall), float64(rf.cpuPerCall), "<=", 1.15, "facade's CPU per call ÷ the relay floor's")
	}
	vsNginx := func(x sample) goal {
		g := goal{name: "grpc_vs_nginx_calls", op: ">=", about: "facade's calls/s ÷ nginx's, against the relay floor's ÷ nginx's",
			measured: x.rps > 0 && rf.rps > 0 && n.rps > 0}
		if g.measured {
			g.value, g.target = x.rps/n.rps, rf.rps/n.rps
		}
		return g
	}
	gateway := func(x sample) goal {
		return ratioGoal("gateway_vs_direct_calls", x.rps, d.rps, ">=", 0.33, "gateway's calls/s ÷ direct's")
	}
	f, ff, gw, fgw := sat("facade_grpc"), sat("relay_features"), sat("facade_gateway"), sat("relay_features_gateway")
	return []goal{withFloor(cpu(f), cpu(ff)), withFloor(vsNginx(f), vsNginx(ff)), withFloor(gateway(gw), gateway(fgw))}
}

// measured reports whether s measures the goals it enters: none of its
// calls failed. A failed call is cheap and fast, and the calls/s, the
// latencies and the CPU per call of a path whose calls fail do not say
// what its calls cost: the CPU per call falls, and the p99 (of the calls
// that succeeded) may too, the more calls fail. The zero sample in its
// place leaves every goal it enters not measured.
func measured(s sample) bool { return s.errors == 0 }

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
