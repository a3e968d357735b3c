package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

func us(d time.Duration) string { return fmt.Sprintf("%.0f", float64(d)/float64(time.Microsecond)) }

func report(w io.Writer, o options, paths []path, sat, lat map[string][]sample, rss int64, withNginx bool) {
	byRPS := func(s sample) float64 { return s.rps }
	byP50 := func(s sample) float64 { return float64(s.p50) }
	fmt.Fprintf(w, "facadebench: %d rounds, %v at %d in flight and %v at 1 in flight per path and round; medians of the rounds\n\n",
		o.rounds, o.duration, o.concurrency, o.latencyDuration)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "path\tcalls/s @64\tp50 µs\tp90 µs\tp99 µs\terrors\t| p50 µs @1\tp90 µs @1\tp99 µs @1\terrors @1\t| CPU µs/call @64: middle\tstub\tload gen\tall\t")
	cpu := func(d time.Duration, ran bool) string {
		if !ran {
			return "-"
		}
		return fmt.Sprintf("%.1f", float64(d)/float64(time.Microsecond))
	}
	for _, p := range paths {
		s, l := median(sat[p.name], byRPS), median(lat[p.name], byP50)
		var errs, lerrs int64
		for _, x := range sat[p.name] {
			errs += x.errors
		}
		for _, x := range lat[p.name] {
			lerrs += x.errors
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%s\t%s\t%s\t%d\t| %s\t%s\t%s\t%d\t| %s\t%s\t%s\t%s\t\n", p.name, s.rps, us(s.p50), us(s.p90), us(s.p99), errs, us(l.p50), us(l.p90), us(l.p99), lerrs,
			cpu(s.cpuPerCall, p.pid != 0), cpu(s.stubCPU, p.stubPID != 0), cpu(s.loadCPU, true), cpu(s.cpuPerCall+s.stubCPU+s.loadCPU, true))
	}
	tw.Flush()
	fmt.Fprintf(w, "\nfacade peak RSS: %.1f MiB\n\n", float64(rss)/(1<<20))

	direct, grpcS := median(sat["direct"], byRPS), median(sat["facade_grpc"], byRPS)
	gw, floor := median(sat["facade_gateway"], byRPS), median(sat["grpc_floor"], byRPS)
	nginx := median(sat["nginx"], byRPS)
	dl, gl := median(lat["direct"], byP50), median(lat["facade_grpc"], byP50)
	ratio := func(name string, a, b sample) {
		if a.rps > 0 && b.rps > 0 {
			fmt.Fprintf(w, "ratio %s=%.2f\n", name, a.rps/b.rps)
		}
	}
	ratio("grpc_vs_direct_rps", grpcS, direct)
	ratio("gateway_vs_direct_rps", gw, direct)
	if withNginx {
		ratio("grpc_vs_nginx_rps", grpcS, nginx)
	}
	ratio("grpc_vs_goproxy_rps", grpcS, median(sat["goproxy"], byRPS))
	// The bound: a gRPC server that does no work at all, driven the same way.
	ratio("grpc_floor_vs_direct_rps", floor, direct)
	if withNginx {
		ratio("grpc_floor_vs_nginx_rps", floor, nginx)
	}
	ratio("grpc_vs_grpc_floor_rps", grpcS, floor)
	if dl.p50 > 0 && gl.p50 > 0 {
		fmt.Fprintf(w, "added_p50_us=%s\n", us(gl.p50-dl.p50))
		fmt.Fprintf(w, "added_p99_us=%s\n", us(gl.p99-dl.p99))
	}
	// A facade call is a gRPC hop plus the direct call, so the floor's
	// whole latency bounds what the facade adds.
	if fl := median(lat["grpc_floor"], byP50); fl.p50 > 0 {
		fmt.Fprintf(w, "grpc_floor_p50_us=%s\n", us(fl.p50))
		fmt.Fprintf(w, "grpc_floor_p99_us=%s\n", us(fl.p99))
	}
	// The relay floor: grpc-go and net/http relaying the call and doing
	// nothing else, so what the facade spends over it is its own.
	if rf := median(sat["relay_floor"], byRPS); rf.rps > 0 && rf.cpuPerCall > 0 {
		ratio("relay_floor_vs_nginx_rps", rf, nginx)
		ratio("grpc_vs_relay_floor_rps", grpcS, rf)
		fmt.Fprintf(w, "ratio facade_vs_relay_floor_cpu=%.2f\n", float64(grpcS.cpuPerCall)/float64(rf.cpuPerCall))
		fmt.Fprintf(w, "relay_floor_cpu_us_per_call=%.1f\n", float64(rf.cpuPerCall)/float64(time.Microsecond))
	}
	fmt.Fprintf(w, "facade_cpu_us_per_call=%.1f\n", float64(grpcS.cpuPerCall)/float64(time.Microsecond))
	fmt.Fprintf(w, "facade_peak_rss_mib=%.1f\n", float64(rss)/(1<<20))
	printGCShare(w, "facade_grpc", grpcS)
	fmt.Fprintln(w)
	fmt.Fprintln(w, "\ngoals, each judged within every round from figures measured back to back; the round at the median shown:")
	printGoals(w, byRound(o.rounds, func(r int) []goal {
		return loopbackGoals(func(name string) sample { return at(sat[name], r) })
	}))
}
