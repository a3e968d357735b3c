package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	ss := []sample{{rps: 30}, {rps: 10}, {rps: 20}}
	if got := median(ss, func(s sample) float64 { return s.rps }); got.rps != 20 {
		t.Errorf("median rps = %v; want 20", got.rps)
	}
	if got := median(nil, func(s sample) float64 { return s.rps }); got.rps != 0 {
		t.Errorf("median of nothing = %v; want the zero sample", got)
	}
	if ss[0].rps != 30 {
		t.Error("median reordered its input")
	}
}

func TestCPUTimeAndRSSOfThisProcess(t *testing.T) {
	pid := os.Getpid()
	before := cpuTime(pid)
	for end := time.Now().Add(50 * time.Millisecond); time.Now().Before(end); {
	}
	if after := cpuTime(pid); after <= before {
		t.Errorf("CPU time did not grow over 50 ms of spinning: %v then %v", before, after)
	}
	rss, err := peakRSS(pid)
	if err != nil || rss < 1<<20 {
		t.Errorf("peak RSS = %d, %v; want at least 1 MiB", rss, err)
	}
	if cpuTime(0) != 0 {
		t.Error("pid 0 must read as no CPU time")
	}
}

func TestReportRatios(t *testing.T) {
	paths := []path{{name: "direct"}, {name: "nginx"}, {name: "goproxy"}, {name: "facade_grpc", pid: 1}, {name: "facade_gateway", pid: 1}}
	sat := map[string][]sample{
		"direct":         {{rps: 1000}},
		"nginx":          {{rps: 500}},
		"goproxy":        {{rps: 250}},
		"facade_grpc":    {{rps: 400, cpuPerCall: 50 * time.Microsecond}},
		"facade_gateway": {{rps: 300}},
	}
	lat := map[string][]sample{
		"direct":      {{p50: 100 * time.Microsecond, p99: 200 * time.Microsecond}},
		"facade_grpc": {{p50: 250 * time.Microsecond, p99: 600 * time.Microsecond}},
	}
	var out bytes.Buffer
	report(&out, options{rounds: 1, concurrency: 64}, paths, sat, lat, 40<<20, true)
	for _, want := range []string{
		"ratio grpc_vs_direct_rps=0.40\n", "ratio gateway_vs_direct_rps=0.30\n", "ratio grpc_vs_nginx_rps=0.80\n",
		"ratio grpc_vs_goproxy_rps=1.60\n", "added_p50_us=150\n", "added_p99_us=400\n", "facade_cpu_us_per_call=50.0\n", "facade_peak_rss_mib=40.0\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}
