package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// sample is what one round of one path saw.
type sample struct {
	rps           float64
	p50, p90, p99 time.Duration
	errors        int64
	// The CPU time per call of the process in the middle, of the stub and
	// of the load generator (this process).
	cpuPerCall, stubCPU, loadCPU time.Duration
	// cpu is the middle process's CPU time over the run; gcCPU and
	// busyCPU the collector's and all its goroutines' (the collector,
	// user code and the scavenger) by the runtime's own account, read
	// from its /metrics; gcCPU is -1 when the path has none.
	cpu            time.Duration
	gcCPU, busyCPU float64
}

// gcShare is the collector's share of the middle process's CPU, by the
// runtime's account (its CPU classes overestimate against the kernel's
// figure, so the share is taken within them).
func (s sample) gcShare() float64 {
	if s.busyCPU <= 0 {
		return 0
	}
	return s.gcCPU / s.busyCPU
}

// measure drives p with conc callers for d and returns what it saw.
func measure(p path, conc int, d time.Duration) sample {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	self := os.Getpid()
	cpuBefore, stubBefore, loadBefore := cpuTime(p.pid), cpuTime(p.stubPID), cpuTime(self)
	gcBefore, busyBefore, gcErr := gcSeconds(p.metricsURL)
	lats := make([][]time.Duration, conc)
	var errs atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for w := range conc {
		lats[w] = make([]time.Duration, 0, max(256, (1<<20)/conc))
		wg.Go(func() {
			for ctx.Err() == nil {
				t := time.Now()
				err := p.call(context.Background(), w)
				el := time.Since(t)
				if err != nil {
					errs.Add(1)
					continue
				}
				lats[w] = append(lats[w], el)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu, stubCPU, loadCPU := cpuTime(p.pid)-cpuBefore, cpuTime(p.stubPID)-stubBefore, cpuTime(self)-loadBefore
	gcAfter, busyAfter, gcErrAfter := gcSeconds(p.metricsURL)
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	slices.Sort(all)
	s := sample{errors: errs.Load(), cpu: cpu, gcCPU: -1}
	if gcErr == nil && gcErrAfter == nil && p.metricsURL != "" {
		s.gcCPU, s.busyCPU = gcAfter-gcBefore, busyAfter-busyBefore
	}
	n := len(all)
	if n == 0 {
		return s
	}
	s.rps = float64(n) / elapsed.Seconds()
	s.p50, s.p90, s.p99 = all[n*50/100], all[n*90/100], all[min(n-1, n*99/100)]
	calls := time.Duration(n + int(s.errors))
	s.cpuPerCall, s.stubCPU, s.loadCPU = cpu/calls, stubCPU/calls, loadCPU/calls
	return s
}

// The runtime's CPU classes, as the facade's /metrics serves them.
const (
	metricGC       = "go_cpu_classes_gc_total_cpu_seconds_total"
	metricUser     = "go_cpu_classes_user_cpu_seconds_total"
	metricScavenge = "go_cpu_classes_scavenge_total_cpu_seconds_total"
)

// gcSeconds reads the collector's CPU seconds and the busy CPU seconds
// (collector, user code and scavenger) from the Prometheus text at url.
func gcSeconds(url string) (gc, busy float64, err error) {
	if url == "" {
		return 0, 0, errors.New("no metrics")
	}
	resp, err := http.Get(url)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, 0, err
	}
	return parseGCSeconds(string(b))
}

// parseGCSeconds takes the collector's and the busy CPU seconds from
// Prometheus text.
func parseGCSeconds(text string) (gc, busy float64, err error) {
	found := 0
	for _, line := range strings.Split(text, "\n") {
		name, v, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		switch name {
		case metricGC, metricUser, metricScavenge:
		default:
			continue
		}
		x, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil {
			return 0, 0, fmt.Errorf("%s: %w", name, err)
		}
		found++
		busy += x
		if name == metricGC {
			gc = x
		}
	}
	if found != 3 {
		return 0, 0, fmt.Errorf("the metrics lack the runtime's CPU classes (%s, %s, %s)", metricGC, metricUser, metricScavenge)
	}
	return gc, busy, nil
}

// cpuTime returns the user and system CPU time of pid, from /proc.
func cpuTime(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name may hold spaces; the fields follow its ')'.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	const ticksPerSecond = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / ticksPerSecond
}

// peakRSS returns the peak resident set size of pid, from /proc.
func peakRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			f := strings.Fields(line)
			kb, err := strconv.ParseInt(f[1], 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmHWM")
}

// median returns the sample with the median rps (saturation) or p50
// (latency) of a path's rounds.
func median(ss []sample, by func(sample) float64) sample {
	if len(ss) == 0 {
		return sample{}
	}
	s := slices.Clone(ss)
	sort.Slice(s, func(i, j int) bool { return by(s[i]) < by(s[j]) })
	return s[len(s)/2]
}
