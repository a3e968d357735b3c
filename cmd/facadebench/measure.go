package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
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
}

// measure drives p with conc callers for d and returns what it saw.
func measure(p path, conc int, d time.Duration) sample {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	self := os.Getpid()
	cpuBefore, stubBefore, loadBefore := cpuTime(p.pid), cpuTime(p.stubPID), cpuTime(self)
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
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	slices.Sort(all)
	s := sample{errors: errs.Load()}
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
