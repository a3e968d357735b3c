// Command facadebench measures the facade against the floor and against
// proxies that only copy bytes, in one run on one machine: a stub Dintero,
// the real dintero-facade binary, Go's httputil.ReverseProxy, (when
// installed) nginx, and a gRPC server that does nothing each run as their
// own process, and the same DeleteClientGrant work is driven through each,
// interleaved in rounds, at one call in flight and at saturation.
//
//	go run ./cmd/facadebench            # 5 rounds, 64 in flight
//	go run ./cmd/facadebench -rounds 7 -duration 5s
//
// It prints a table, with the CPU time per call of every process on each
// path, and, last, machine-readable "ratio" lines and one "goal" line per
// goal. The gRPC floor's lines bound what any grpc-go facade can reach on
// the machine; the relay floor's what any relay on grpc-go and net/http
// can; the relay with every feature (relay_features) shows what the
// facade's features cost written the plain way, and a goal the facade
// misses while doing at least as well as it is reported "below the floor".
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "stub":
			fatal(serveStub(os.Args[2]))
			return
		case "goproxy":
			fatal(serveGoProxy(os.Args[2], os.Args[3]))
			return
		case "grpcfloor":
			fatal(serveGRPCFloor(os.Args[2]))
			return
		case "relayfloor":
			fatal(serveRelayFloor(os.Args[2], os.Args[3]))
			return
		case "featuresfloor":
			fatal(serveFeaturesFloor(os.Args[2], os.Args[3], os.Args[4]))
			return
		case "tlsstub":
			latency, err := time.ParseDuration(os.Args[4])
			fatal(err)
			fatal(serveTLSStub(os.Args[2], os.Args[3], latency, os.Args[5], os.Args[6]))
			return
		}
	}
	var o options
	flag.IntVar(&o.rounds, "rounds", 5, "interleaved rounds; the tables take each path's median round, the goals the median round of each goal")
	flag.DurationVar(&o.duration, "duration", 3*time.Second, "length of each saturation run")
	flag.DurationVar(&o.latencyDuration, "latency-duration", 2*time.Second, "length of each one-in-flight run")
	flag.DurationVar(&o.warmup, "warmup", time.Second, "warm-up of each path before the rounds")
	flag.IntVar(&o.concurrency, "concurrency", 64, "calls in flight at saturation")
	flag.IntVar(&o.grpcConns, "grpc-conns", 4, "gRPC connections the load spreads over at saturation")
	flag.StringVar(&o.facadeBin, "facade-bin", "", "dintero-facade binary; empty builds ./cmd/dintero-facade")
	flag.BoolVar(&o.nginx, "nginx", true, "include nginx when it is installed")
	flag.StringVar(&o.facadeArgs, "facade-args", "", "extra flags for the facade, space-separated")
	flag.StringVar(&o.facadeEnv, "facade-env", "", "extra environment for the facade, space-separated KEY=VALUE (GOGC=200, say)")
	flag.StringVar(&o.only, "only", "", "comma-separated paths to run (direct, goproxy, nginx, grpc_floor, relay_floor, relay_features, relay_features_gateway, facade_grpc, facade_gateway, facade_authorize_grpc; remote: direct, nginx, facade_grpc, relay_floor, relay_features); empty: all")
	var scenario, conc string
	flag.StringVar(&scenario, "scenario", "loopback", "loopback: a plain stub on loopback; remote: a TLS stub -latency away, nginx with a TLS upstream, and a cold start")
	flag.DurationVar(&o.latency, "latency", 50*time.Millisecond, "remote: latency the stub adds to every answer")
	flag.StringVar(&conc, "remote-concurrency", "200,1000", "remote: comma-separated calls in flight to measure at")
	flag.IntVar(&o.coldCalls, "cold-calls", 1000, "remote: calls fired at once at a fresh facade; 0 skips the cold start")
	flag.Parse()
	switch scenario {
	case "loopback":
		fatal(run(o))
	case "remote":
		for _, c := range strings.Split(conc, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(c))
			if err != nil || n <= 0 {
				fatal(fmt.Errorf("-remote-concurrency %q: want positive numbers", conc))
			}
			o.remoteConcurrency = append(o.remoteConcurrency, n)
		}
		fatal(runRemote(o))
	default:
		fatal(fmt.Errorf("-scenario %q: want loopback or remote", scenario))
	}
}

type options struct {
	rounds          int
	duration        time.Duration
	latencyDuration time.Duration
	warmup          time.Duration
	concurrency     int
	grpcConns       int
	facadeBin       string
	nginx           bool
	facadeArgs      string
	only            string
	facadeEnv       string
	// The remote scenario's.
	latency           time.Duration
	remoteConcurrency []int
	coldCalls         int
}

func fatal(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "facadebench:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	w, err := newWorkspace(o, "facadebench-")
	if err != nil {
		return err
	}
	defer w.close()
	dir, logs, self, bin := w.dir, w.logs, w.self, w.bin

	var procs []*proc
	defer func() {
		for i := len(procs) - 1; i >= 0; i-- {
			procs[i].stop()
		}
	}()
	addrs := map[string]string{}
	for _, n := range []string{"stub", "goproxy", "nginx", "grpcfloor", "relayfloor", "featuresfloor", "featureshttp", "grpc", "http"} {
		if addrs[n], err = freePort(); err != nil {
			return err
		}
	}
	stub, err := start("stub", logs, self, "stub", addrs["stub"])
	if err != nil {
		return err
	}
	procs = append(procs, stub)
	goproxy, err := start("goproxy", logs, self, "goproxy", addrs["goproxy"], "http://"+addrs["stub"])
	if err != nil {
		return err
	}
	procs = append(procs, goproxy)
	floor, err := start("grpcfloor", logs, self, "grpcfloor", addrs["grpcfloor"])
	if err != nil {
		return err
	}
	procs = append(procs, floor)
	relay, err := start("relayfloor", logs, self, "relayfloor", addrs["relayfloor"], "http://"+addrs["stub"])
	if err != nil {
		return err
	}
	procs = append(procs, relay)
	// Its lines go to a file, as the facade's do.
	featuresLog, err := os.Create(filepath.Join(dir, "featuresfloor.log"))
	if err != nil {
		return err
	}
	defer featuresLog.Close()
	features, err := start("featuresfloor", featuresLog, self, "featuresfloor", addrs["featuresfloor"], "http://"+addrs["stub"], addrs["featureshttp"])
	if err != nil {
		return err
	}
	procs = append(procs, features)
	facadeArgs := []string{"--grpc-addr", addrs["grpc"], "--http-addr", addrs["http"], "--dintero-url", "http://" + addrs["stub"] + "/v1"}
	if o.facadeArgs != "" {
		facadeArgs = append(facadeArgs, strings.Fields(o.facadeArgs)...)
	}
	facadeLog, err := os.Create(filepath.Join(dir, "facade.log"))
	if err != nil {
		return err
	}
	defer facadeLog.Close()
	facade, err := startEnv("facade", facadeLog, strings.Fields(o.facadeEnv), bin, facadeArgs...)
	if err != nil {
		return err
	}
	procs = append(procs, facade)
	var nginxPID int
	nginxBin, _ := exec.LookPath("nginx")
	if o.nginx && nginxBin != "" {
		p, err := startNginx(nginxBin, dir, addrs["nginx"], addrs["stub"], logs)
		if err != nil {
			return err
		}
		procs = append(procs, p)
		nginxPID = p.cmd.Process.Pid
	}
	for n, a := range addrs {
		if n == "nginx" && nginxPID == 0 {
			continue
		}
		if err := waitTCP(a); err != nil {
			return fmt.Errorf("%s: %w", n, err)
		}
	}
	var nginxWorker int
	if nginxPID != 0 {
		// Its one worker does the work; the master only waits.
		nginxWorker = childOf(nginxPID)
	}

	paths, closeAll, err := makePaths(o, addrs, pids{
		stub: stub.cmd.Process.Pid, goproxy: goproxy.cmd.Process.Pid, nginx: nginxWorker,
		floor: floor.cmd.Process.Pid, relay: relay.cmd.Process.Pid, features: features.cmd.Process.Pid, facade: facade.cmd.Process.Pid,
	})
	if err != nil {
		return err
	}
	defer closeAll()
	if o.only != "" {
		keep := strings.Split(o.only, ",")
		paths = slices.DeleteFunc(paths, func(p path) bool { return !slices.Contains(keep, p.name) })
	}

	fmt.Fprintf(os.Stderr, "warming up %d paths ...\n", len(paths))
	for _, p := range paths {
		if s := measure(p, o.concurrency, o.warmup); s.errors > 0 {
			return fmt.Errorf("warm-up of %s: %d errors", p.name, s.errors)
		}
	}
	sat := map[string][]sample{}
	lat := map[string][]sample{}
	for r := range o.rounds {
		fmt.Fprintf(os.Stderr, "round %d of %d ...\n", r+1, o.rounds)
		order := slices.Clone(paths)
		for range r {
			order = append(order[1:], order[0])
		}
		for _, p := range order {
			sat[p.name] = append(sat[p.name], measure(p, o.concurrency, o.duration))
			lat[p.name] = append(lat[p.name], measure(p, 1, o.latencyDuration))
		}
	}
	rss, _ := peakRSS(facade.cmd.Process.Pid)
	report(os.Stdout, o, paths, sat, lat, rss, nginxPID != 0)
	return nil
}

// facadeBinary returns -facade-bin, or builds the facade into dir.
// workspace is what a scenario's run starts from: a temporary directory,
// the log of the processes it starts, this binary (which plays the stub,
// the proxies and the floors) and the facade's binary.
type workspace struct {
	dir, self, bin string
	logs           *os.File
}

// newWorkspace makes a workspace in a new temporary directory named from
// prefix; close removes it.
func newWorkspace(o options, prefix string) (*workspace, error) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return nil, err
	}
	w := &workspace{dir: dir}
	if w.logs, err = os.Create(filepath.Join(dir, "processes.log")); err == nil {
		if w.self, err = os.Executable(); err == nil {
			w.bin, err = facadeBinary(o, dir)
		}
	}
	if err != nil {
		w.close()
		return nil, err
	}
	return w, nil
}

func (w *workspace) close() {
	if w.logs != nil {
		w.logs.Close()
	}
	os.RemoveAll(w.dir)
}

func facadeBinary(o options, dir string) (string, error) {
	if o.facadeBin != "" {
		return o.facadeBin, nil
	}
	bin := filepath.Join(dir, "dintero-facade")
	fmt.Fprintln(os.Stderr, "building ./cmd/dintero-facade ...")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/dintero-facade").CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
}
