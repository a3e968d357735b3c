// Package gctune chooses the garbage collector's settings at start, unless
// the operator set GOGC or GOMEMLIMIT (a malformed GOMEMLIMIT stops the
// runtime before main; a malformed GOGC it ignores, and so does gctune,
// saying so): a higher target than Go's default,
// bounded by a soft memory limit derived from the container's, or outside
// one from the calls the facade may have in flight.
package gctune

import (
	"math"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
)

// defaultGOGC is the collector's target unless the operator sets GOGC. At
// Go's default of 100 the facade's live heap, a few MiB, is collected many
// times a second under load, and the calls that overlap a cycle make the
// p99 latency; BENCHMARKS.md has the measurements.
const defaultGOGC = 400

// defaultMemoryLimit is the least soft memory limit when neither
// GOMEMLIMIT nor a container limit says otherwise: GOGC=400 alone lets a
// heap of a few tens of MiB at a thousand calls in flight grow five-fold,
// which on a host without a container limit is memory taken for nothing.
// The runtime keeps the limit soft: a larger live heap is still served,
// with more frequent collections.
const defaultMemoryLimit = 80 << 20

// bytesPerCallInFlight is what the limit outside a container allows for
// each call the facade may have in flight to Dintero. At a thousand in
// flight a call held about 30 KiB of goroutine stacks (its gRPC stream
// worker's and HTTP/2's writer's: 29.5 MB in all) and some 8 KiB of live
// heap (BENCHMARKS.md, issue 25); 64 KiB leaves the collector about as
// much again to work in. Below 1,280 calls defaultMemoryLimit is the
// larger; above, a fixed limit would leave it less and less, and the
// collector would run without pause.
const bytesPerCallInFlight = 64 << 10

// cgroupMemoryFiles hold the container's memory limit: cgroup v2's, then v1's.
var cgroupMemoryFiles = [...]string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}

// Settings are the collector settings the facade applies at start; a zero
// field leaves the runtime's own value, which the operator's GOGC or
// GOMEMLIMIT has set.
type Settings struct {
	// GOGC is the collection target in percent.
	GOGC int
	// MemoryLimit is the soft memory limit in bytes.
	MemoryLimit int64
	// IgnoredGOGC is the operator's GOGC, quoted and cut to maxQuoted
	// bytes, when it is neither a whole number nor "off": the runtime
	// ignores it silently (and collects at Go's default of 100), so the
	// facade says so and sets its own target. "" when GOGC is unset or
	// valid.
	IgnoredGOGC string
}

// maxQuoted bounds the operator's value that a warning quotes.
const maxQuoted = 32

// Decide chooses the collector settings for a facade that may have
// inFlight calls to Dintero in flight (--max-concurrent-upstream). Unless
// GOGC is set to a value the runtime takes, the target is defaultGOGC; because that lets the heap grow
// to five times the live heap, unless GOMEMLIMIT is set a soft memory
// limit keeps it in bounds: 90 % of the container's memory limit, or
// without one bytesPerCallInFlight for each call in flight, at least
// defaultMemoryLimit.
func Decide(getenv func(string) string, readFile func(string) ([]byte, error), inFlight int) Settings {
	var s Settings
	switch v := getenv("GOGC"); {
	case v == "":
		s.GOGC = defaultGOGC
	case !validGOGC(v):
		s.GOGC = defaultGOGC
		if len(v) > maxQuoted {
			v = v[:maxQuoted] + "…"
		}
		s.IgnoredGOGC = strconv.QuoteToASCII(v)
	}
	if getenv("GOMEMLIMIT") == "" {
		s.MemoryLimit = max(defaultMemoryLimit, perCall(inFlight))
		if limit := cgroupMemoryLimit(readFile); limit > 0 {
			s.MemoryLimit = limit / 10 * 9
		}
	}
	return s
}

// validGOGC reports whether the runtime takes v as GOGC: "off", or a
// whole number that fits 32 bits, as strconv reads it (the runtime's own
// test).
func validGOGC(v string) bool {
	if v == "off" {
		return true
	}
	_, err := strconv.ParseInt(v, 10, 32)
	return err == nil
}

// perCall is bytesPerCallInFlight for each of inFlight calls, no limit
// (math.MaxInt64) when that is more than an int64 holds: a product that
// wrapped would set a small limit, or a negative one, for a large
// --max-concurrent-upstream.
func perCall(inFlight int) int64 {
	if int64(inFlight) > math.MaxInt64/bytesPerCallInFlight {
		return math.MaxInt64
	}
	return int64(inFlight) * bytesPerCallInFlight
}

// cgroupMemoryLimit returns the memory limit of the process's cgroup in
// bytes, 0 when it has none or it cannot be read.
func cgroupMemoryLimit(readFile func(string) ([]byte, error)) int64 {
	for _, f := range cgroupMemoryFiles {
		b, err := readFile(f)
		if err != nil {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		// v2 writes "max" for no limit; v1 a page-rounded MaxInt64.
		if err != nil || n <= 0 || n >= 1<<60 {
			return 0
		}
		return n
	}
	return 0
}

// Apply sets the collector. It changes the whole process, so only main
// calls it.
func (s Settings) Apply() {
	if s.GOGC != 0 {
		debug.SetGCPercent(s.GOGC)
	}
	if s.MemoryLimit > 0 {
		debug.SetMemoryLimit(s.MemoryLimit)
	}
}

// InEffect reads the collector's settings back from the runtime: the
// target in percent (-1 when off) and the soft memory limit in bytes (0
// when there is none), for the startup log.
func InEffect() (gogc, memoryLimit int64) {
	ss := []metrics.Sample{{Name: "/gc/gogc:percent"}, {Name: "/gc/gomemlimit:bytes"}}
	metrics.Read(ss)
	// GOGC=off reads as the uint64 of -1, which converts back to -1.
	gogc, memoryLimit = int64(ss[0].Value.Uint64()), int64(ss[1].Value.Uint64())
	if memoryLimit == math.MaxInt64 {
		memoryLimit = 0
	}
	return gogc, memoryLimit
}

// stackShrinkOff is the GODEBUG setting that keeps the collector from
// shrinking goroutine stacks. The gRPC server's stream workers park with
// little of their stack in use, so every collection halved their stacks
// and the next call grew them back: at many calls in flight, copying
// stacks was a visible share of the CPU, and turning it off lowered both
// the CPU per call and the peak memory (BENCHMARKS.md, issue 25). The
// runtime reads it only at start, hence the restart.
const stackShrinkOff = "gcshrinkstackoff=1"

// RestartEnv returns the environment to start the process again with, so
// that the runtime starts with stackShrinkOff, and true; or false when
// GODEBUG already names gcshrinkstackoff (the operator's choice, or the
// restart's).
func RestartEnv(environ []string) ([]string, bool) {
	for i, kv := range environ {
		v, ok := strings.CutPrefix(kv, "GODEBUG=")
		if !ok {
			continue
		}
		// The runtime reads the first GODEBUG, as this does, and its
		// names as written: " gcshrinkstackoff=1" names nothing.
		for _, f := range strings.Split(v, ",") {
			if strings.HasPrefix(f, "gcshrinkstackoff=") {
				return nil, false
			}
		}
		env := slices.Clone(environ)
		env[i] = "GODEBUG=" + stackShrinkOff
		if v != "" {
			env[i] = kv + "," + stackShrinkOff
		}
		return env, true
	}
	return append(slices.Clone(environ), "GODEBUG="+stackShrinkOff), true
}
