package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/dintero-facade/dintero-facade/internal/dinteromock"
	"github.com/dintero-facade/dintero-facade/internal/testpki"
)

// The remote scenario puts Dintero where it really is: behind TLS, with
// HTTP/2 and HTTP/1.1 offered by ALPN, tens of milliseconds away. The stub
// adds the latency to every answer and counts the TCP connections it
// accepts; the facade trusts the stub's CA through SSL_CERT_FILE, as an
// operator would make it trust a private CA; nginx, the peer, proxies to
// the stub over TLS with a keepalive pool.

// serveTLSStub serves the stateless mock over TLS on addr, adding latency
// to every answer, and its connection counts on statsAddr (plain HTTP):
// "accepted open".
func serveTLSStub(addr, statsAddr string, latency time.Duration, certFile, keyFile string) error {
	m, err := dinteromock.New(dinteromock.Options{Stateless: true, Behaviour: dinteromock.Behaviour{Faults: dinteromock.Faults{Latency: latency}}})
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	cl := &countingListener{Listener: l}
	stats := http.NewServeMux()
	stats.HandleFunc("GET /stats", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "%d %d\n", cl.accepted.Load(), cl.open.Load())
	})
	go func() {
		_ = (&http.Server{Addr: statsAddr, Handler: stats, ReadHeaderTimeout: 5 * time.Second}).ListenAndServe()
	}()
	srv := &http.Server{Handler: m, ReadHeaderTimeout: 5 * time.Second, Protocols: new(http.Protocols)}
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetHTTP2(true)
	return srv.ServeTLS(cl, certFile, keyFile)
}

// countingListener counts the connections it accepted and those open.
type countingListener struct {
	net.Listener
	accepted, open atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.accepted.Add(1)
	l.open.Add(1)
	return &countedConn{Conn: c, l: l}, nil
}

type countedConn struct {
	net.Conn
	l    *countingListener
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.l.open.Add(-1) })
	return c.Conn.Close()
}

// stubConns reads the stub's counts of accepted and open connections.
func stubConns(statsAddr string) (accepted, open int64, err error) {
	resp, err := http.Get("http://" + statsAddr + "/stats")
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, 0, err
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, 0, fmt.Errorf("stats %q", b)
	}
	accepted, _ = strconv.ParseInt(f[0], 10, 64)
	open, _ = strconv.ParseInt(f[1], 10, 64)
	return accepted, open, nil
}

// startNginxTLS starts nginx proxying plain HTTP on listen to the stub
// over TLS, verifying its certificate, with a keepalive pool.
func startNginxTLS(bin, dir, listen, upstream, caFile string, logTo io.Writer) (*proc, error) {
	return startNginxConf(bin, filepath.Join(dir, "nginx-remote"), fmt.Sprintf(`
  upstream dintero { server %[1]s; keepalive 2048; keepalive_requests 1000000; keepalive_timeout 300s; }
  server {
    listen %[2]s backlog=4096;
    keepalive_requests 1000000;
    location / {
      proxy_pass https://dintero;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_ssl_trusted_certificate %[3]s;
      proxy_ssl_verify on;
      proxy_ssl_name localhost;
      proxy_ssl_server_name on;
      proxy_ssl_session_reuse on;
    }
  }`, upstream, listen, caFile), logTo)
}

// remoteSample is one measurement of a path at one concurrency.
type remoteSample struct {
	sample
	conns int64 // TCP connections the stub accepted during the run
}

// runRemote runs the remote scenario.
func runRemote(o options) error {
	w, err := newWorkspace(o, "facadebench-remote-")
	if err != nil {
		return err
	}
	defer w.close()
	dir, logs, self, bin := w.dir, w.logs, w.self, w.bin
	pki, err := testpki.New(dir)
	if err != nil {
		return err
	}
	var procs []*proc
	defer func() {
		for i := len(procs) - 1; i >= 0; i-- {
			procs[i].stop()
		}
	}()
	addrs := map[string]string{}
	for _, n := range []string{"stub", "stats", "nginx", "grpc", "http", "relay", "features"} {
		if addrs[n], err = freePort(); err != nil {
			return err
		}
	}
	stub, err := start("tlsstub", logs, self, "tlsstub", addrs["stub"], addrs["stats"], o.latency.String(), pki.CertFile, pki.KeyFile)
	if err != nil {
		return err
	}
	procs = append(procs, stub)
	for _, n := range []string{"stub", "stats"} {
		if err := waitTCP(addrs[n]); err != nil {
			return fmt.Errorf("%s: %w", n, err)
		}
	}
	facadeLog, err := os.Create(filepath.Join(dir, "facade.log"))
	if err != nil {
		return err
	}
	defer facadeLog.Close()
	startFacade := func() (*proc, error) {
		// The bound on calls to Dintero in flight is raised above the
		// load, as an operator would for a Dintero this far away.
		maxConc := slices.Max(append(o.remoteConcurrency, o.coldCalls))
		args := []string{"--grpc-addr", addrs["grpc"], "--http-addr", addrs["http"], "--dintero-url", "https://" + addrs["stub"] + "/v1",
			"--max-concurrent-upstream", strconv.Itoa(maxConc + maxConc/4)}
		if o.facadeArgs != "" {
			args = append(args, strings.Fields(o.facadeArgs)...)
		}
		env := append([]string{"SSL_CERT_FILE=" + pki.CAFile}, strings.Fields(o.facadeEnv)...)
		p, err := startEnv("facade", facadeLog, env, bin, args...)
		if err != nil {
			return nil, err
		}
		return p, waitTCP(addrs["grpc"])
	}
	facade, err := startFacade()
	if err != nil {
		return err
	}
	procs = append(procs, facade)
	relay, err := startEnv("relayfloor", logs, []string{"SSL_CERT_FILE=" + pki.CAFile}, self, "relayfloor", addrs["relay"], "https://"+addrs["stub"])
	if err != nil {
		return err
	}
	procs = append(procs, relay)
	if err := waitTCP(addrs["relay"]); err != nil {
		return fmt.Errorf("relay floor: %w", err)
	}
	// Its lines go to a file, as the facade's do.
	featuresLog, err := os.Create(filepath.Join(dir, "featuresfloor.log"))
	if err != nil {
		return err
	}
	defer featuresLog.Close()
	features, err := startEnv("featuresfloor", featuresLog, []string{"SSL_CERT_FILE=" + pki.CAFile}, self, "featuresfloor", addrs["features"], "https://"+addrs["stub"], "")
	if err != nil {
		return err
	}
	procs = append(procs, features)
	if err := waitTCP(addrs["features"]); err != nil {
		return fmt.Errorf("features floor: %w", err)
	}
	var nginxWorker int
	if nginxBin, _ := exec.LookPath("nginx"); o.nginx && nginxBin != "" {
		p, err := startNginxTLS(nginxBin, dir, addrs["nginx"], addrs["stub"], pki.CAFile, logs)
		if err != nil {
			return err
		}
		procs = append(procs, p)
		if err := waitTCP(addrs["nginx"]); err != nil {
			return fmt.Errorf("nginx: %w", err)
		}
		nginxWorker = childOf(p.cmd.Process.Pid)
	}

	maxConc := slices.Max(o.remoteConcurrency)
	stubTLS := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pki.Pool}, ForceAttemptHTTP2: true, MaxIdleConnsPerHost: maxConc, DisableCompression: true}
	defer stubTLS.CloseIdleConnections()
	token, err := stubTokenAt("https://"+addrs["stub"], &http.Client{Transport: stubTLS})
	if err != nil {
		return err
	}
	var closers []func()
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	grpcCall := func(addr string) (func(ctx context.Context, w int) error, error) {
		cs, closeConns, err := dialGRPC(addr, o.grpcConns)
		closers = append(closers, closeConns)
		return deleteOverGRPC(cs, token), err
	}
	paths := []path{{name: "direct", call: deleteOverHTTP(&http.Client{Transport: stubTLS}, "https://"+addrs["stub"]+grantPath, token), stubPID: stub.cmd.Process.Pid}}
	if nginxWorker != 0 {
		plain := &http.Transport{MaxIdleConnsPerHost: maxConc, DisableCompression: true}
		closers = append(closers, plain.CloseIdleConnections)
		paths = append(paths, path{name: "nginx", call: deleteOverHTTP(&http.Client{Transport: plain}, "http://"+addrs["nginx"]+grantPath, token), pid: nginxWorker, stubPID: stub.cmd.Process.Pid})
	}
	fg, err := grpcCall(addrs["grpc"])
	if err != nil {
		return err
	}
	paths = append(paths, path{name: "facade_grpc", call: fg, pid: facade.cmd.Process.Pid, stubPID: stub.cmd.Process.Pid, metricsURL: "http://" + addrs["http"] + "/metrics"})
	rf, err := grpcCall(addrs["relay"])
	if err != nil {
		return err
	}
	paths = append(paths, path{name: "relay_floor", call: rf, pid: relay.cmd.Process.Pid, stubPID: stub.cmd.Process.Pid})
	ff, err := grpcCall(addrs["features"])
	if err != nil {
		return err
	}
	paths = append(paths, path{name: "relay_features", call: ff, pid: features.cmd.Process.Pid, stubPID: stub.cmd.Process.Pid})
	if o.only != "" {
		keep := strings.Split(o.only, ",")
		paths = slices.DeleteFunc(paths, func(p path) bool { return !slices.Contains(keep, p.name) })
	}

	measureConns := func(p path, conc int, d time.Duration) remoteSample {
		before, _, _ := stubConns(addrs["stats"])
		s := measure(p, conc, d)
		after, _, _ := stubConns(addrs["stats"])
		return remoteSample{sample: s, conns: after - before}
	}
	fmt.Fprintf(os.Stderr, "warming up %d paths ...\n", len(paths))
	for _, p := range paths {
		if s := measure(p, maxConc, o.warmup); s.errors > 0 {
			return fmt.Errorf("warm-up of %s: %d errors", p.name, s.errors)
		}
	}
	runs := map[string][]remoteSample{} // by path and concurrency
	for r := range o.rounds {
		fmt.Fprintf(os.Stderr, "round %d of %d ...\n", r+1, o.rounds)
		order := slices.Clone(paths)
		for range r {
			order = append(order[1:], order[0])
		}
		for _, conc := range o.remoteConcurrency {
			for _, p := range order {
				k := p.name + "@" + strconv.Itoa(conc)
				runs[k] = append(runs[k], measureConns(p, conc, o.duration))
			}
		}
	}
	rss, _ := peakRSS(facade.cmd.Process.Pid)
	relayRSS, _ := peakRSS(relay.cmd.Process.Pid)

	// The cold start: a fresh facade, hit by cold-calls calls at once.
	var cold []coldSample
	for r := range o.rounds {
		if o.coldCalls <= 0 {
			break
		}
		fmt.Fprintf(os.Stderr, "cold start %d of %d ...\n", r+1, o.rounds)
		facade.stop()
		// Counted from before the start: the warm-up's connection too.
		before, _, _ := stubConns(addrs["stats"])
		if facade, err = startFacade(); err != nil {
			return err
		}
		procs = append(procs, facade)
		call, err := grpcCall(addrs["grpc"])
		if err != nil {
			return err
		}
		cs := coldStart(call, o.coldCalls)
		after, _, _ := stubConns(addrs["stats"])
		cs.conns = after - before
		cold = append(cold, cs)
	}
	reportRemote(os.Stdout, o, paths, runs, cold, rss)
	reportRelayRSS(os.Stdout, paths, relayRSS)
	return nil
}

// coldSample is what a burst of calls at a fresh facade saw.
type coldSample struct {
	calls, errors int
	took, p99     time.Duration
	conns         int64
}

// coldStart makes n calls at once and waits for all of them.
func coldStart(call func(ctx context.Context, w int) error, n int) coldSample {
	lats := make([]time.Duration, n)
	var errs atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	gate := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-gate
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			t := time.Now()
			if err := call(ctx, i); err != nil {
				errs.Add(1)
			}
			lats[i] = time.Since(t)
		})
	}
	close(gate)
	wg.Wait()
	slices.Sort(lats)
	return coldSample{calls: n, errors: int(errs.Load()), took: time.Since(start), p99: lats[min(n-1, n*99/100)]}
}

// reportRemote prints the remote scenario's table and its ratio lines.
func reportRemote(w io.Writer, o options, paths []path, runs map[string][]remoteSample, cold []coldSample, rss int64) {
	byRPS := func(s sample) float64 { return s.rps }
	med := func(k string) remoteSample {
		ss := runs[k]
		if len(ss) == 0 {
			return remoteSample{}
		}
		plain := make([]sample, len(ss))
		for i := range ss {
			plain[i] = ss[i].sample
		}
		m := median(plain, byRPS)
		for _, s := range ss {
			if s.sample == m {
				return s
			}
		}
		return ss[0]
	}
	fmt.Fprintf(w, "facadebench -scenario remote: Dintero over TLS %v away; %d rounds of %v per path and concurrency; medians of the rounds\n\n", o.latency, o.rounds, o.duration)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "path\tin flight\tcalls/s\tof Little's limit\tp50 ms\tp99 ms\terrors\tconns to Dintero\t| CPU µs/call: middle\tstub\tload gen\t")
	for _, conc := range o.remoteConcurrency {
		limit := float64(conc) / o.latency.Seconds()
		for _, p := range paths {
			s := med(p.name + "@" + strconv.Itoa(conc))
			var errs int64
			for _, x := range runs[p.name+"@"+strconv.Itoa(conc)] {
				errs += x.errors
			}
			cpu := "-"
			if p.pid != 0 {
				cpu = fmt.Sprintf("%.1f", float64(s.cpuPerCall)/float64(time.Microsecond))
			}
			fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.2f\t%.1f\t%.1f\t%d\t%d\t| %s\t%.1f\t%.1f\t\n", p.name, conc, s.rps, s.rps/limit,
				float64(s.p50)/float64(time.Millisecond), float64(s.p99)/float64(time.Millisecond), errs, s.conns, cpu,
				float64(s.stubCPU)/float64(time.Microsecond), float64(s.loadCPU)/float64(time.Microsecond))
		}
	}
	tw.Flush()
	fmt.Fprintf(w, "\ncold start, %d calls at once at a fresh facade:\n", o.coldCalls)
	for i, c := range cold {
		fmt.Fprintf(w, "  round %d: %d errors, all answered in %v, p99 %v, %d TCP connections to Dintero\n", i+1, c.errors, c.took.Round(time.Millisecond), c.p99.Round(time.Millisecond), c.conns)
	}
	fmt.Fprintf(w, "\nfacade peak RSS: %.1f MiB\n\n", float64(rss)/(1<<20))
	for _, conc := range o.remoteConcurrency {
		limit := float64(conc) / o.latency.Seconds()
		c := strconv.Itoa(conc)
		f, n, d, rf := med("facade_grpc@"+c), med("nginx@"+c), med("direct@"+c), med("relay_floor@"+c)
		fmt.Fprintf(w, "ratio facade_little_%s=%.2f\n", c, f.rps/limit)
		if n.rps > 0 {
			fmt.Fprintf(w, "ratio nginx_little_%s=%.2f\n", c, n.rps/limit)
			fmt.Fprintf(w, "ratio facade_vs_nginx_cpu_%s=%.2f\n", c, float64(f.cpuPerCall)/float64(n.cpuPerCall))
		}
		if rf.rps > 0 {
			fmt.Fprintf(w, "ratio relay_floor_little_%s=%.2f\n", c, rf.rps/limit)
			fmt.Fprintf(w, "ratio facade_vs_relay_floor_cpu_%s=%.2f\n", c, float64(f.cpuPerCall)/float64(rf.cpuPerCall))
			if n.rps > 0 {
				fmt.Fprintf(w, "ratio relay_floor_vs_nginx_cpu_%s=%.2f\n", c, float64(rf.cpuPerCall)/float64(n.cpuPerCall))
			}
		}
		fmt.Fprintf(w, "added_p50_ms_%s=%.2f\n", c, float64(f.p50-d.p50)/float64(time.Millisecond))
		fmt.Fprintf(w, "added_p99_ms_%s=%.2f\n", c, float64(f.p99-d.p99)/float64(time.Millisecond))
		fmt.Fprintf(w, "facade_cpu_us_%s=%.1f\n", c, float64(f.cpuPerCall)/float64(time.Microsecond))
	}
	// Without a cold start (-cold-calls 0) there is no figure: a 0 would
	// read as a cold start that opened no connection.
	if len(cold) > 0 {
		fmt.Fprintf(w, "cold_start_max_conns=%d\n", maxConns(cold))
	}
	fmt.Fprintf(w, "facade_peak_rss_mib=%.1f\n", float64(rss)/(1<<20))
	for _, conc := range o.remoteConcurrency {
		printGCShare(w, "facade_grpc_"+strconv.Itoa(conc), med("facade_grpc@"+strconv.Itoa(conc)).sample)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "\ngoals, each judged within every round from figures measured back to back; the round at the median shown:")
	printGoals(w, byRound(o.rounds, func(r int) []goal {
		return remoteGoals(func(k string) remoteSample { return at(runs[k], r) }, cold, rss)
	}))
}

// reportRelayRSS prints the relay floor's peak RSS, with Go's defaults:
// what any relay on the facade's libraries holds at this load. When -only
// left the floor out of paths it carried no load, and its idle memory is
// no figure: nothing is printed.
func reportRelayRSS(w io.Writer, paths []path, rss int64) {
	if slices.ContainsFunc(paths, func(p path) bool { return p.name == "relay_floor" }) {
		fmt.Fprintf(w, "relay_floor_peak_rss_mib=%.1f\n", float64(rss)/(1<<20))
	}
}

// maxConns is the most TCP connections to Dintero any of cold opened.
func maxConns(cold []coldSample) int64 {
	var n int64
	for _, c := range cold {
		n = max(n, c.conns)
	}
	return n
}
