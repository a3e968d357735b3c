package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	authv1 "github.com/dintero-facade/dintero-facade/gen/dintero/auth/v1"
	"github.com/dintero-facade/dintero-facade/internal/dinteromock"
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
	paths := []path{{name: "direct", stubPID: 2}, {name: "nginx", pid: 3, stubPID: 2}, {name: "goproxy"}, {name: "grpc_floor", pid: 4},
		{name: "relay_floor", pid: 5, stubPID: 2}, {name: "facade_grpc", pid: 1, stubPID: 2}, {name: "facade_gateway", pid: 1}}
	sat := map[string][]sample{
		"direct":         {{rps: 1000}},
		"nginx":          {{rps: 500}},
		"goproxy":        {{rps: 250}},
		"grpc_floor":     {{rps: 1200}},
		"relay_floor":    {{rps: 450, cpuPerCall: 40 * time.Microsecond}},
		"facade_grpc":    {{rps: 400, cpuPerCall: 50 * time.Microsecond, stubCPU: 15 * time.Microsecond, loadCPU: 12500 * time.Nanosecond}},
		"facade_gateway": {{rps: 300}},
	}
	lat := map[string][]sample{
		"direct":      {{p50: 100 * time.Microsecond, p99: 200 * time.Microsecond}},
		"grpc_floor":  {{p50: 90 * time.Microsecond, p99: 180 * time.Microsecond}},
		"facade_grpc": {{p50: 250 * time.Microsecond, p99: 600 * time.Microsecond}},
	}
	var out bytes.Buffer
	report(&out, options{rounds: 1, concurrency: 64}, paths, sat, lat, 40<<20, true)
	for _, want := range []string{
		"ratio grpc_vs_direct_rps=0.40\n", "ratio gateway_vs_direct_rps=0.30\n", "ratio grpc_vs_nginx_rps=0.80\n",
		"ratio grpc_vs_goproxy_rps=1.60\n", "ratio grpc_floor_vs_direct_rps=1.20\n", "ratio grpc_floor_vs_nginx_rps=2.40\n",
		"ratio grpc_vs_grpc_floor_rps=0.33\n", "added_p50_us=150\n", "added_p99_us=400\n",
		"grpc_floor_p50_us=90\n", "grpc_floor_p99_us=180\n", "facade_cpu_us_per_call=50.0\n", "facade_peak_rss_mib=40.0\n",
		"ratio relay_floor_vs_nginx_rps=0.90\n", "ratio grpc_vs_relay_floor_rps=0.89\n", "ratio facade_vs_relay_floor_cpu=1.25\n", "relay_floor_cpu_us_per_call=40.0\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
	// The facade's row ends with its own CPU, the stub's, the load
	// generator's and their sum.
	if row := regexp.MustCompile(`(?m)^ *facade_grpc .*\| +50\.0 +15\.0 +12\.5 +77\.5 *$`); !row.MatchString(out.String()) {
		t.Errorf("report lacks the facade's CPU columns 50.0, 15.0, 12.5, 77.5:\n%s", out.String())
	}
}

func TestChildOf(t *testing.T) {
	cmd := exec.Command("sleep", "10")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	if got, want := childOf(os.Getpid()), cmd.Process.Pid; got != want {
		t.Errorf("childOf(this test) = %d; want the sleep, %d", got, want)
	}
	if got, want := childOf(cmd.Process.Pid), cmd.Process.Pid; got != want {
		t.Errorf("childOf(a process without children) = %d; want itself, %d", got, want)
	}
}

func TestFloorAnswersTheGrant(t *testing.T) {
	f, err := newFloorServer()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := f.DeleteClientGrant(context.Background(), &authv1.DeleteClientGrantRequest{})
	if err != nil {
		t.Fatal(err)
	}
	g := resp.GetGrant()
	if g.GetId() != "3d5c2f3a-6a1e-4e55-9d2f-2f1b8f0c9a77" || len(g.GetScope()) != 3 || g.GetOidc().GetAuthority() == "" || g.GetDeletedAt().AsTime().IsZero() {
		t.Errorf("the floor's grant = %v; want the whole grant JSON", g)
	}
}

func TestRelayFloorSendsTheCallOn(t *testing.T) {
	f, err := newFloorServer()
	if err != nil {
		t.Fatal(err)
	}
	var got string
	status := http.StatusOK
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Method + " " + r.URL.Path + " " + r.Header.Get("Authorization")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, grantJSON)
	}))
	defer srv.Close()
	rf := relayFloor{floorServer: f, client: srv.Client(), url: srv.URL + grantPath}
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer tok"))
	resp, err := rf.DeleteClientGrant(ctx, &authv1.DeleteClientGrantRequest{})
	if err != nil || resp.GetGrant().GetId() != "3d5c2f3a-6a1e-4e55-9d2f-2f1b8f0c9a77" {
		t.Fatalf("got %v, %v; want the grant", resp, err)
	}
	if want := "DELETE " + grantPath + " Bearer tok"; got != want {
		t.Errorf("the stub got %q; want %q", got, want)
	}
	status = http.StatusNotFound
	if _, err := rf.DeleteClientGrant(ctx, &authv1.DeleteClientGrantRequest{}); err == nil {
		t.Error("a 404 was answered as a grant")
	}
}

func TestReportRemoteRatios(t *testing.T) {
	paths := []path{{name: "direct", stubPID: 2}, {name: "nginx", pid: 3, stubPID: 2}, {name: "facade_grpc", pid: 1, stubPID: 2}, {name: "relay_floor", pid: 4, stubPID: 2}}
	runs := map[string][]remoteSample{
		"direct@1000":      {{sample: sample{rps: 16000, p50: 60 * time.Millisecond, p99: 90 * time.Millisecond}}},
		"nginx@1000":       {{sample: sample{rps: 14000, cpuPerCall: 40 * time.Microsecond}}},
		"facade_grpc@1000": {{sample: sample{rps: 10000, cpuPerCall: 90 * time.Microsecond, p50: 80 * time.Millisecond, p99: 150 * time.Millisecond}, conns: 3}},
		"relay_floor@1000": {{sample: sample{rps: 12000, cpuPerCall: 72 * time.Microsecond}}},
	}
	var out bytes.Buffer
	reportRemote(&out, options{rounds: 1, latency: 50 * time.Millisecond, remoteConcurrency: []int{1000}, coldCalls: 1000}, paths, runs, []coldSample{{calls: 1000, conns: 3}}, 90<<20)
	for _, want := range []string{
		"ratio facade_little_1000=0.50\n", "ratio nginx_little_1000=0.70\n", "ratio facade_vs_nginx_cpu_1000=2.25\n",
		"ratio relay_floor_little_1000=0.60\n", "ratio facade_vs_relay_floor_cpu_1000=1.25\n", "ratio relay_floor_vs_nginx_cpu_1000=1.80\n",
		"added_p50_ms_1000=20.00\n", "added_p99_ms_1000=60.00\n", "cold_start_max_conns=3\n", "facade_peak_rss_mib=90.0\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
	// -cold-calls 0: no cold start, so no figure of one.
	out.Reset()
	reportRemote(&out, options{rounds: 1, latency: 50 * time.Millisecond, remoteConcurrency: []int{1000}}, paths, runs, nil, 90<<20)
	if strings.Contains(out.String(), "cold_start_max_conns") {
		t.Errorf("a report without a cold start gives its connections:\n%s", out.String())
	}
}

// TestReportRelayRSS: the relay floor's peak RSS is a figure only when
// the floor carried the load (-only may leave it out).
func TestReportRelayRSS(t *testing.T) {
	var out bytes.Buffer
	reportRelayRSS(&out, []path{{name: "direct"}, {name: "relay_floor"}}, 15<<20)
	if got := out.String(); got != "relay_floor_peak_rss_mib=15.0\n" {
		t.Errorf("with the floor run: got %q", got)
	}
	out.Reset()
	reportRelayRSS(&out, []path{{name: "direct"}, {name: "facade_grpc"}}, 15<<20)
	if got := out.String(); got != "" {
		t.Errorf("with the floor left out by -only: got %q; want nothing", got)
	}
}

func TestFeaturesFloorRelaysWithItsFeatures(t *testing.T) {
	m, err := dinteromock.New(dinteromock.Options{Stateless: true})
	if err != nil {
		t.Fatal(err)
	}
	var sent atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sent.Add(1)
		m.ServeHTTP(w, r)
	}))
	defer srv.Close()
	token, err := stubTokenAt(srv.URL, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	var lines bytes.Buffer
	f, err := newFeaturesFloor(srv.URL, &lines)
	if err != nil {
		t.Fatal(err)
	}
	info := &grpc.UnaryServerInfo{FullMethod: "/dintero.auth.v1.AuthService/DeleteClientGrant"}
	call := func(req *authv1.DeleteClientGrantRequest) (*authv1.DeleteClientGrantResponse, error) {
		ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+token, "x-request-id", "rid-1"))
		resp, err := f.intercept(ctx, req, info, func(ctx context.Context, req any) (any, error) {
			return f.DeleteClientGrant(ctx, req.(*authv1.DeleteClientGrantRequest))
		})
		r, _ := resp.(*authv1.DeleteClientGrantResponse)
		return r, err
	}
	sent.Store(0)
	resp, err := call(&authv1.DeleteClientGrantRequest{Oid: dinteromock.DefaultAccount, Id: "g-1"})
	if err != nil {
		t.Fatalf("got %v; want the grant", err)
	}
	if resp.GetGrant().GetId() != "g-1" || resp.GetGrant().GetOidc().GetClientSecret() != "" || resp.GetOutcome() != authv1.DeleteClientGrantResponse_OUTCOME_DELETED {
		t.Errorf("got %v; want grant g-1, deleted, with no client secret", resp)
	}
	if got := strings.Count(lines.String(), "\n"); got != 1 || !strings.Contains(lines.String(), `"request_id":"rid-1"`) || !strings.Contains(lines.String(), `"oid":"T12345678"`) {
		t.Errorf("lines %q; want one audit line with the request id and oid", lines.String())
	}
	if got := sent.Load(); got != 1 {
		t.Errorf("%d requests sent; want 1", got)
	}
	sent.Store(0)
	if _, err := call(&authv1.DeleteClientGrantRequest{Oid: "X1", Id: "g-1"}); status.Code(err) != codes.InvalidArgument || sent.Load() != 0 {
		t.Errorf("a bad oid: got %v, %d sent; want InvalidArgument, nothing sent", err, sent.Load())
	}
}

func TestFeaturesFloorWithholdsTheClientSecret(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, grantJSON)
	}))
	defer srv.Close()
	f, err := newFeaturesFloor(srv.URL, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer tok"))
	resp, err := f.DeleteClientGrant(ctx, &authv1.DeleteClientGrantRequest{Oid: "T12345678", Id: "3d5c2f3a-6a1e-4e55-9d2f-2f1b8f0c9a77"})
	if err != nil {
		t.Fatal(err)
	}
	if g := resp.GetGrant(); g.GetOidc().GetAuthority() == "" || g.GetOidc().GetClientSecret() != "" || len(g.GetScope()) != 3 || g.GetDeletedAt().AsTime().IsZero() || g.GetDeletedBy() == "" {
		t.Errorf("got %v; want the whole grant, its client secret withheld", g)
	}
}
