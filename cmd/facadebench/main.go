// Command facadebench measures the facade against the floor and against
// proxies that only copy bytes, in one run on one machine: a stub Dintero,
// the real dintero-facade binary, Go's httputil.ReverseProxy, (when
// installed) nginx, and a gRPC server that does nothing each run as their
// own process, and the same DeleteClientGrant work is driven through each,
// interleaved in rounds, at one call in flight and at saturation.
//
//	go run ./cmd/facadebench            # 3 rounds, 64 in flight
//	go run ./cmd/facadebench -rounds 5 -duration 5s
//
// It prints a table, with the CPU time per call of every process on each
// path, and, last, machine-readable "ratio" lines. The gRPC floor's lines
// bound what any grpc-go facade can reach on the machine.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protojson"

	authv1 "github.com/dintero-facade/dintero-facade/gen/dintero/auth/v1"
	"github.com/dintero-facade/dintero-facade/internal/dinteromock"
)

// grantJSON is a Dintero grant of the size the real API returns (541 bytes).
const grantJSON = `{"id":"3d5c2f3a-6a1e-4e55-9d2f-2f1b8f0c9a77","client_id":"0d5f2f0e-2d0a-4b8e-8b8a-5e3f3c1f9e21","audience":"https://api.dintero.com/v1/accounts/T12345678","scope":["admin:accounts","write:checkout","read:checkout"],"type":"authorization_code","oidc":{"client_id":"oidc-client-7d1f","client_secret":"oidc-secret-not-a-real-one","authority":"https://identityserver.example.com/access"},"created_at":"2024-01-02T03:04:05.123456+02:00","updated_at":"2024-01-02T03:04:05Z","deleted_at":"2026-11-26T06:00:00.5Z","created_by":"user-creator-0001","deleted_by":"client-deleter-0001"}`

const grantPath = "/v1/accounts/T12345678/auth/client-grants/3d5c2f3a-6a1e-4e55-9d2f-2f1b8f0c9a77"

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
		}
	}
	var o options
	flag.IntVar(&o.rounds, "rounds", 3, "interleaved rounds; the report takes the median")
	flag.DurationVar(&o.duration, "duration", 3*time.Second, "length of each saturation run")
	flag.DurationVar(&o.latencyDuration, "latency-duration", 2*time.Second, "length of each one-in-flight run")
	flag.DurationVar(&o.warmup, "warmup", time.Second, "warm-up of each path before the rounds")
	flag.IntVar(&o.concurrency, "concurrency", 64, "calls in flight at saturation")
	flag.IntVar(&o.grpcConns, "grpc-conns", 4, "gRPC connections the load spreads over at saturation")
	flag.StringVar(&o.facadeBin, "facade-bin", "", "dintero-facade binary; empty builds ./cmd/dintero-facade")
	flag.BoolVar(&o.nginx, "nginx", true, "include nginx when it is installed")
	flag.StringVar(&o.facadeArgs, "facade-args", "", "extra flags for the facade, space-separated")
	flag.StringVar(&o.facadeEnv, "facade-env", "", "extra environment for the facade, space-separated KEY=VALUE (GOGC=200, say)")
	flag.StringVar(&o.only, "only", "", "comma-separated paths to run (direct, goproxy, nginx, grpc_floor, facade_grpc, facade_gateway, facade_authorize_grpc); empty: all")
	flag.Parse()
	fatal(run(o))
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
}

func fatal(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "facadebench:", err)
		os.Exit(1)
	}
}

// serveStub is the stub Dintero: the one fake Dintero, internal/dinteromock,
// in its fast stateless mode (every DELETE finds its grant, codes are not
// spent, tokens are checked against a cache of verified ones).
func serveStub(addr string) error {
	m, err := dinteromock.New(dinteromock.Options{Stateless: true})
	if err != nil {
		return err
	}
	return (&http.Server{Addr: addr, Handler: m, ReadHeaderTimeout: 5 * time.Second}).ListenAndServe()
}

// stubToken gets an access token from the stub with the mock's client
// credentials, for the callers that bring their own.
func stubToken(addr string) (string, error) {
	body := `{"grant_type":"client_credentials","audience":"` + dinteromock.Audience(dinteromock.DefaultAccount) + `"}`
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/v1/accounts/"+dinteromock.DefaultAccount+"/auth/token", strings.NewReader(body))
	if err != nil {
		return "", err
	}
	req.SetBasicAuth(dinteromock.DefaultClientID, dinteromock.DefaultClientSecret)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var at struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&at); err != nil || at.AccessToken == "" {
		return "", fmt.Errorf("no token from the stub (HTTP %d): %v", resp.StatusCode, err)
	}
	return at.AccessToken, nil
}

// serveGoProxy is Go's httputil.ReverseProxy in front of target, with a
// pool sized for the load (the default keeps two idle connections per host,
// which would make it a strawman).
func serveGoProxy(addr, target string) error {
	u, err := url.Parse(target)
	if err != nil {
		return err
	}
	p := &httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(u) },
		Transport: &http.Transport{MaxIdleConns: 512, MaxIdleConnsPerHost: 256, IdleConnTimeout: 90 * time.Second},
	}
	return (&http.Server{Addr: addr, Handler: p, ReadHeaderTimeout: 5 * time.Second}).ListenAndServe()
}

// serveGRPCFloor is the cheapest gRPC server for the call: grpc-go with
// its defaults, answering DeleteClientGrant with a grant decoded once at
// start, and calling nothing. The facade over gRPC cannot be faster than
// this, so it bounds what the facade can reach on the machine.
func serveGRPCFloor(addr string) error {
	f, err := newFloorServer()
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	gs := grpc.NewServer()
	authv1.RegisterAuthServiceServer(gs, f)
	return gs.Serve(l)
}

// newFloorServer decodes the grant the floor answers with.
func newFloorServer() (floorServer, error) {
	grant := &authv1.ClientGrant{}
	if err := protojson.Unmarshal([]byte(grantJSON), grant); err != nil {
		return floorServer{}, fmt.Errorf("the grant JSON as a ClientGrant: %w", err)
	}
	return floorServer{resp: &authv1.DeleteClientGrantResponse{Grant: grant}}, nil
}

// floorServer answers DeleteClientGrant with resp; Authorize is left
// unimplemented.
type floorServer struct {
	authv1.UnimplementedAuthServiceServer
	resp *authv1.DeleteClientGrantResponse
}

func (f floorServer) DeleteClientGrant(context.Context, *authv1.DeleteClientGrantRequest) (*authv1.DeleteClientGrantResponse, error) {
	return f.resp, nil
}

// proc is a process the benchmark started.
type proc struct {
	name string
	cmd  *exec.Cmd
}

func (p *proc) stop() {
	if p.cmd.Process != nil {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = p.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = p.cmd.Process.Kill()
		}
	}
}

func start(name string, logTo io.Writer, bin string, args ...string) (*proc, error) {
	return startEnv(name, logTo, nil, bin, args...)
}

func startEnv(name string, logTo io.Writer, env []string, bin string, args ...string) (*proc, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logTo, logTo
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	return &proc{name: name, cmd: cmd}, nil
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func waitTCP(addr string) error {
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("%s did not start listening", addr)
}

// path is one way to make the DeleteClientGrant call.
type path struct {
	name string
	// call makes one call; worker says which of the concurrent callers.
	call func(ctx context.Context, worker int) error
	// pid is the process between the load generator and the stub (a
	// proxy, the facade, the gRPC floor), 0 if none.
	pid int
	// stubPID is the stub Dintero's process, 0 if the path does not reach it.
	stubPID int
}

type sample struct {
	rps           float64
	p50, p90, p99 time.Duration
	errors        int64
	// The CPU time per call of the process in the middle, of the stub and
	// of the load generator (this process).
	cpuPerCall, stubCPU, loadCPU time.Duration
}

func run(o options) error {
	dir, err := os.MkdirTemp("", "facadebench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	logs, err := os.Create(filepath.Join(dir, "processes.log"))
	if err != nil {
		return err
	}
	defer logs.Close()

	self, err := os.Executable()
	if err != nil {
		return err
	}
	bin := o.facadeBin
	if bin == "" {
		bin = filepath.Join(dir, "dintero-facade")
		fmt.Fprintln(os.Stderr, "building ./cmd/dintero-facade ...")
		if out, err := exec.Command("go", "build", "-o", bin, "./cmd/dintero-facade").CombinedOutput(); err != nil {
			return fmt.Errorf("go build: %v\n%s", err, out)
		}
	}

	var procs []*proc
	defer func() {
		for i := len(procs) - 1; i >= 0; i-- {
			procs[i].stop()
		}
	}()
	addrs := map[string]string{}
	for _, n := range []string{"stub", "goproxy", "nginx", "grpcfloor", "grpc", "http"} {
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
		floor: floor.cmd.Process.Pid, facade: facade.cmd.Process.Pid,
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

func startNginx(bin, dir, listen, upstream string, logTo io.Writer) (*proc, error) {
	nd := filepath.Join(dir, "nginx")
	if err := os.MkdirAll(filepath.Join(nd, "logs"), 0o755); err != nil {
		return nil, err
	}
	conf := fmt.Sprintf(`worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  upstream stub { server %[2]s; keepalive 256; }
  server {
    listen %[3]s;
    location / {
      proxy_pass http://stub;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`, nd, upstream, listen)
	cf := filepath.Join(nd, "nginx.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	return start("nginx", logTo, bin, "-p", nd, "-c", cf, "-g", "daemon off;")
}

// pids are the processes the benchmark started; 0 for one that did not run.
type pids struct {
	stub, goproxy, nginx, floor, facade int
}

func makePaths(o options, addrs map[string]string, ps pids) ([]path, func(), error) {
	token, err := stubToken(addrs["stub"])
	if err != nil {
		return nil, nil, err
	}
	var closers []func()
	closeAll := func() {
		for _, c := range closers {
			c()
		}
	}
	httpPath := func(name, base string, pid int) path {
		tr := &http.Transport{MaxIdleConns: 512, MaxIdleConnsPerHost: 256, DisableCompression: true}
		closers = append(closers, tr.CloseIdleConnections)
		client := &http.Client{Transport: tr}
		u := "http://" + base + grantPath
		return path{name: name, pid: pid, stubPID: ps.stub, call: func(ctx context.Context, _ int) error {
			req, err := http.NewRequestWithContext(ctx, http.MethodDelete, u, nil)
			if err != nil {
				return err
			}
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := client.Do(req)
			if err != nil {
				return err
			}
			n, err := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err != nil {
				return err
			}
			if resp.StatusCode != 200 || n < 100 {
				return fmt.Errorf("HTTP %d, %d bytes", resp.StatusCode, n)
			}
			return nil
		}}
	}
	grpcClients := func(addr string) ([]authv1.AuthServiceClient, error) {
		cs := make([]authv1.AuthServiceClient, o.grpcConns)
		for i := range cs {
			cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				return nil, err
			}
			closers = append(closers, func() { cc.Close() })
			cs[i] = authv1.NewAuthServiceClient(cc)
		}
		return cs, nil
	}
	md := metadata.Pairs("authorization", "Bearer "+token)
	del := &authv1.DeleteClientGrantRequest{Oid: "T12345678", Id: "3d5c2f3a-6a1e-4e55-9d2f-2f1b8f0c9a77"}
	grpcDelete := func(name string, cs []authv1.AuthServiceClient, pid, stubPID int) path {
		return path{name: name, pid: pid, stubPID: stubPID, call: func(ctx context.Context, w int) error {
			resp, err := cs[w%len(cs)].DeleteClientGrant(metadata.NewOutgoingContext(ctx, md), del)
			if err == nil && resp.GetGrant().GetId() == "" {
				err = errors.New("no grant")
			}
			return err
		}}
	}

	direct := httpPath("direct", addrs["stub"], 0)
	paths := []path{direct, httpPath("goproxy", addrs["goproxy"], ps.goproxy)}
	if ps.nginx != 0 {
		paths = append(paths, httpPath("nginx", addrs["nginx"], ps.nginx))
	}
	floor, err := grpcClients(addrs["grpcfloor"])
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	facade, err := grpcClients(addrs["grpc"])
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	paths = append(paths,
		grpcDelete("grpc_floor", floor, ps.floor, 0),
		grpcDelete("facade_grpc", facade, ps.facade, ps.stub),
		httpPath("facade_gateway", addrs["http"], ps.facade),
	)
	authz := &authv1.AuthorizeRequest{Oid: dinteromock.DefaultAccount, Audience: dinteromock.Audience(dinteromock.DefaultAccount), ResponseType: "authenticate",
		ClientId: dinteromock.DefaultApp, VerificationCode: "123456", State: "st", RedirectUri: dinteromock.DefaultCallback}
	paths = append(paths, path{name: "facade_authorize_grpc", pid: ps.facade, stubPID: ps.stub, call: func(ctx context.Context, w int) error {
		resp, err := facade[w%len(facade)].Authorize(metadata.NewOutgoingContext(ctx, md), authz)
		if err == nil && resp.GetIdToken() == "" {
			err = errors.New("no id_token")
		}
		return err
	}})
	return paths, closeAll, nil
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
		lats[w] = make([]time.Duration, 0, 1<<14)
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

// childOf returns a child process of pid, found by scanning /proc (the
// kernel here has no /proc/PID/task/TID/children), or pid itself if it has
// none. nginx serves from a worker process that its master forks.
func childOf(pid int) int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return pid
	}
	for _, e := range ents {
		c, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c))
		if err != nil {
			continue
		}
		// The fields after the command name: state, then the parent's pid.
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			return c
		}
	}
	return pid
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
	fmt.Fprintf(w, "facade_cpu_us_per_call=%.1f\n", float64(grpcS.cpuPerCall)/float64(time.Microsecond))
	fmt.Fprintf(w, "facade_peak_rss_mib=%.1f\n", float64(rss)/(1<<20))
}
