package deploy_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	authv1 "github.com/dintero-facade/dintero-facade/gen/dintero/auth/v1"
	"github.com/dintero-facade/dintero-facade/internal/dinteromock"
	"github.com/dintero-facade/dintero-facade/internal/dinterotest"
	"github.com/dintero-facade/dintero-facade/service"
)

// containerTestEnv turns the container test on; when it is set the test
// runs, and fails if podman, runc or root is missing.
const containerTestEnv = "DINTERO_FACADE_CONTAINER_TEST"

// podmanGlobal are podman's global flags: runc and cgroupfs work on a
// machine without systemd, as CI's. The containers.conf it needs there
// (default_ulimits = []) the test writes itself, unless CONTAINERS_CONF
// names one.
var podmanGlobal = []string{"--runtime", "runc", "--cgroup-manager", "cgroupfs"}

// containersConf is podman's configuration on a machine that may not set
// ulimits of its own, as a container in CI cannot.
const containersConf = "[containers]\ndefault_ulimits = []\n"

func podman(args ...string) *exec.Cmd {
	return exec.Command("podman", append(slices.Clone(podmanGlobal), args...)...)
}

// requireContainerRuntime skips unless the container test is asked for,
// and then fails without what it needs.
func requireContainerRuntime(t *testing.T) {
	t.Helper()
	if v := os.Getenv(containerTestEnv); v == "" || v == "0" {
		found := "podman is not installed"
		if _, err := exec.LookPath("podman"); err == nil {
			found = "podman is installed"
		}
		t.Skipf("the container test runs with %s=1 (%s; it needs podman, runc and root, which bash .ci/run sets up)", containerTestEnv, found)
	}
	for _, tool := range []string{"podman", "runc"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s=1 but %s is not installed (apt-get install podman runc; bash .ci/run does)", containerTestEnv, tool)
		}
	}
	if os.Geteuid() != 0 {
		t.Fatalf("%s=1 needs root: the test makes a network namespace and writes volumes owned by root, as the kubelet does", containerTestEnv)
	}
	if os.Getenv("CONTAINERS_CONF") == "" {
		conf := filepath.Join(t.TempDir(), "containers.conf")
		if err := os.WriteFile(conf, []byte(containersConf), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Setenv("CONTAINERS_CONF", conf)
	}
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// buildImage runs the manual's build block with IMAGE set to a name of
// this run's own, then its push block with an oci-archive destination (no
// registry is reachable here), and removes the image at the end.
func buildImage(t *testing.T, version string) string {
	t.Helper()
	image := "localhost/dintero-facade-test:" + version
	for _, step := range []struct{ block, suffix string }{
		{shipBlock(t, "build"), ""},
		{strings.TrimSpace(shipBlock(t, "push")), " oci-archive:" + filepath.Join(t.TempDir(), "image.tar")},
	} {
		cmd := exec.Command("bash", "-ec", step.block+step.suffix)
		cmd.Dir = repoRoot
		cmd.Env = append(os.Environ(), "IMAGE="+image, "VERSION="+version)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s%s: %v\n%s", step.block, step.suffix, err, out)
		}
	}
	t.Cleanup(func() { _ = podman("rmi", "--force", image).Run() })
	return image
}

// policyCase is a caller the shipped policy admits to one operation on one
// account: the identity for its client certificate's URI SAN.
type policyCase struct{ identity, account string }

// admitted finds, in the shipped policy, a caller and an account the policy
// lets use operation; a pattern's wildcards become letters.
func admitted(t *testing.T, p *service.Policy, operation string) policyCase {
	t.Helper()
	concrete := strings.NewReplacer("*", "test", "?", "x", "[", "", "]", "")
	for _, r := range p.Rules {
		if !slices.Contains(r.Operations, operation) || len(r.Accounts) == 0 {
			continue
		}
		c := policyCase{identity: concrete.Replace(r.Identity), account: strings.NewReplacer("*", "00000001", "?", "0").Replace(r.Accounts[0])}
		if p.Allows(c.identity, c.account, operation) {
			return c
		}
	}
	t.Fatalf("the shipped policy admits no caller to %s", operation)
	return policyCase{}
}

// upstream is the mock Dintero on the namespace's loopback, which records
// the clients that fetch tokens and holds one grant's deletion when asked.
type upstream struct {
	mock *dinteromock.Mock
	URL  string

	mu      sync.Mutex
	clients []string // client ids of the token requests, in order
	holdID  string
	hold    time.Duration
	arrived chan struct{}
	// tokens, while open, holds every token request: a slow Dintero.
	tokens chan struct{}
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasSuffix(r.URL.Path, "/auth/token") {
		id, _, _ := r.BasicAuth()
		u.mu.Lock()
		u.clients = append(u.clients, id)
		tokens := u.tokens
		u.mu.Unlock()
		if tokens != nil {
			select {
			case <-tokens:
			case <-r.Context().Done():
				return
			}
		}
	}
	u.mu.Lock()
	holdID, hold, arrived := u.holdID, u.hold, u.arrived
	u.mu.Unlock()
	if r.Method == http.MethodDelete && holdID != "" && path.Base(r.URL.Path) == holdID {
		close(arrived)
		select {
		case <-time.After(hold):
		case <-r.Context().Done():
			return
		}
	}
	u.mock.ServeHTTP(w, r)
}

// holdTokens holds the token requests until the returned function is
// called.
func (u *upstream) holdTokens() (release func()) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.tokens = make(chan struct{})
	tokens := u.tokens
	return sync.OnceFunc(func() { close(tokens) })
}

// tokenClients returns the client ids of the token requests since the
// n-th.
func (u *upstream) tokenClients(n int) []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.clients[n:])
}

func (u *upstream) tokenRequests() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.clients)
}

// holdDelete makes the deletion of grant id wait d at the mock; the channel
// closes when it arrives.
func (u *upstream) holdDelete(id string, d time.Duration) <-chan struct{} {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.holdID, u.hold, u.arrived = id, d, make(chan struct{})
	return u.arrived
}

func startUpstream(t *testing.T, ns *netns, m *dinteromock.Mock) *upstream {
	t.Helper()
	l, err := ns.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &upstream{mock: m, URL: "http://" + l.Addr().String() + "/v1"}
	srv := &http.Server{Handler: u, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return u
}

// container is the facade running in podman.
type container struct {
	name   string
	cmd    *exec.Cmd
	out    *dinterotest.LogBuffer
	exited chan struct{}
	err    error
}

// runArgs are podman run's flags for the pod's one container, from the
// rendered Deployment as the kubelet applies it: user, group, fsGroup and
// supplemental groups, read-only root (without podman's extra tmpfs
// mounts), dropped and added capabilities, no privilege escalation, the
// seccomp profile, memory and CPU limits, the environment and the grace
// period.
func runArgs(t *testing.T, r *rendered) []string {
	t.Helper()
	pod := r.Deployment.Spec.Template.Spec
	c := r.container(t)
	psc := pod.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	sc := c.SecurityContext
	if sc == nil {
		sc = &corev1.SecurityContext{}
	}
	args := []string{"--pull=never", "--read-only-tmpfs=false"}
	user, group := psc.RunAsUser, psc.RunAsGroup
	if sc.RunAsUser != nil {
		user = sc.RunAsUser
	}
	if sc.RunAsGroup != nil {
		group = sc.RunAsGroup
	}
	nonRoot := (psc.RunAsNonRoot != nil && *psc.RunAsNonRoot) || (sc.RunAsNonRoot != nil && *sc.RunAsNonRoot)
	switch {
	case user == nil && nonRoot:
		t.Fatal("runAsNonRoot without runAsUser: the kubelet would check the image's user; set runAsUser")
	case user != nil && *user == 0 && nonRoot:
		t.Fatal("runAsNonRoot with runAsUser 0: the kubelet would refuse to start the container")
	case user != nil && group != nil:
		args = append(args, "--user", fmt.Sprintf("%d:%d", *user, *group))
	case user != nil:
		args = append(args, "--user", strconv.FormatInt(*user, 10))
	}
	var groups []int64
	if psc.FSGroup != nil {
		groups = append(groups, *psc.FSGroup)
	}
	groups = append(groups, psc.SupplementalGroups...)
	for _, g := range groups {
		args = append(args, "--group-add", strconv.FormatInt(g, 10))
	}
	if sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem {
		args = append(args, "--read-only")
	}
	if sc.Privileged != nil && *sc.Privileged {
		t.Fatal("a privileged container: not mirrored here")
	}
	if sc.Capabilities != nil {
		for _, capability := range sc.Capabilities.Drop {
			args = append(args, "--cap-drop", string(capability))
		}
		for _, capability := range sc.Capabilities.Add {
			args = append(args, "--cap-add", string(capability))
		}
	}
	if sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation {
		args = append(args, "--security-opt", "no-new-privileges")
	}
	seccomp := psc.SeccompProfile
	if sc.SeccompProfile != nil {
		seccomp = sc.SeccompProfile
	}
	if seccomp == nil || seccomp.Type == corev1.SeccompProfileTypeUnconfined {
		args = append(args, "--security-opt", "seccomp=unconfined")
	} else if seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Fatalf("seccomp profile %s: not mirrored here", seccomp.Type)
	}
	if m := c.Resources.Limits.Memory(); !m.IsZero() {
		args = append(args, "--memory", strconv.FormatInt(m.Value(), 10))
	}
	if cpu := c.Resources.Limits.Cpu(); !cpu.IsZero() {
		args = append(args, "--cpus", strconv.FormatFloat(float64(cpu.MilliValue())/1000, 'f', 3, 64))
	}
	for _, e := range c.Env {
		if e.ValueFrom != nil {
			t.Fatalf("env %s: valueFrom is not mirrored here", e.Name)
		}
		args = append(args, "--env", e.Name+"="+e.Value)
	}
	if len(c.EnvFrom) > 0 || len(c.Command) > 0 {
		t.Fatal("envFrom and command are not mirrored here")
	}
	if g := pod.TerminationGracePeriodSeconds; g != nil {
		args = append(args, "--stop-timeout", strconv.FormatInt(*g, 10))
	}
	return args
}

// mountArgs mount each of the container's volumes, written on the host
// into volumes[name], read-only at its mountPath.
func mountArgs(t *testing.T, r *rendered, volumes map[string]string) []string {
	t.Helper()
	var args []string
	for _, m := range r.container(t).VolumeMounts {
		host, ok := volumes[m.Name]
		if !ok || m.SubPath != "" || m.SubPathExpr != "" {
			t.Fatalf("volume mount %s (subPath %q): no volume written for it", m.Name, m.SubPath)
		}
		// The kubelet mounts Secret and ConfigMap volumes read-only
		// whatever the mount says.
		args = append(args, "--volume", host+":"+m.MountPath+":ro")
	}
	return args
}

// start runs image in the namespace with podman's podArgs (runArgs,
// mountArgs) and the facade's facadeArgs; the container goes when the test
// ends.
func start(t *testing.T, ns *netns, image string, podArgs, facadeArgs []string) *container {
	t.Helper()
	ct := &container{name: "dintero-facade-test-" + randomHex(t, 6), out: &dinterotest.LogBuffer{}, exited: make(chan struct{})}
	args := append([]string{"run", "--name", ct.name, "--network", "ns:" + ns.Path}, podArgs...)
	args = append(append(args, image), facadeArgs...)
	ct.cmd = podman(args...)
	ct.cmd.Stdout, ct.cmd.Stderr = ct.out, ct.out
	if err := ct.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		ct.err = ct.cmd.Wait()
		close(ct.exited)
	}()
	t.Cleanup(func() {
		_ = podman("rm", "--force", "--time", "0", ct.name).Run()
		<-ct.exited
		if t.Failed() {
			t.Logf("%s's output:\n%s", ct.name, ct.out)
		}
	})
	return ct
}

// waitLog waits until the container's output has a line holding s.
func (ct *container) waitLog(t *testing.T, s string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !strings.Contains(ct.out.String(), s) {
		select {
		case <-ct.exited:
			t.Fatalf("the container exited (%v) before logging %s", ct.err, s)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("the container did not log %s within %v", s, d)
		}
	}
}

// probe runs p against the container as the kubelet does: gRPC health,
// HTTP GET (2xx or 3xx) or a TCP connect on the port it names, resolved
// on the container, within its timeoutSeconds.
func probe(ctx context.Context, ns *netns, c corev1.Container, p *corev1.Probe) error {
	timeout := time.Duration(max(p.TimeoutSeconds, 1)) * time.Second
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	switch {
	case p.GRPC != nil:
		port := containerPort(c, intstr.FromInt32(p.GRPC.Port))
		if port == 0 {
			return fmt.Errorf("gRPC probe port %d is not a container port", p.GRPC.Port)
		}
		conn, err := grpc.NewClient(fmt.Sprintf("passthrough:///127.0.0.1:%d", port),
			grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) { return ns.Dial(ctx, "tcp", a) }),
			grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return err
		}
		defer conn.Close()
		var svc string
		if p.GRPC.Service != nil {
			svc = *p.GRPC.Service
		}
		res, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
		if err != nil {
			return err
		}
		if res.Status != healthpb.HealthCheckResponse_SERVING {
			return fmt.Errorf("gRPC health of %q: %v", svc, res.Status)
		}
		return nil
	case p.HTTPGet != nil:
		port := containerPort(c, p.HTTPGet.Port)
		if port == 0 {
			return fmt.Errorf("HTTP probe port %s is not a container port", p.HTTPGet.Port.String())
		}
		scheme := strings.ToLower(string(p.HTTPGet.Scheme))
		if scheme == "" {
			scheme = "http"
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s://127.0.0.1:%d%s", scheme, port, p.HTTPGet.Path), nil)
		if err != nil {
			return err
		}
		for _, h := range p.HTTPGet.HTTPHeaders {
			req.Header.Set(h.Name, h.Value)
		}
		// The kubelet does not check the certificate of an HTTPS probe.
		tr := &http.Transport{DialContext: ns.Dial, TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec // as the kubelet
		defer tr.CloseIdleConnections()
		res, err := (&http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
		if err != nil {
			return err
		}
		defer res.Body.Close()
		if res.StatusCode < 200 || res.StatusCode >= 400 {
			return fmt.Errorf("GET %s: %s", req.URL, res.Status)
		}
		return nil
	case p.TCPSocket != nil:
		port := containerPort(c, p.TCPSocket.Port)
		conn, err := ns.Dial(ctx, "tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			return err
		}
		return conn.Close()
	}
	return errors.New("an exec probe cannot run in an image without a shell")
}

// waitReady probes readiness as the kubelet does, after the initial delay
// and every period, until it succeeds; within d, and while the container
// runs (the kubelet would restart it: a crash loop).
func (ct *container) waitReady(t *testing.T, ns *netns, c corev1.Container, d time.Duration) {
	t.Helper()
	p := c.ReadinessProbe
	if p == nil {
		t.Fatal("the container has no readiness probe")
	}
	deadline := time.Now().Add(d)
	wait := time.Duration(p.InitialDelaySeconds) * time.Second
	for {
		select {
		case <-ct.exited:
			t.Fatalf("the container exited (%v) before it was ready", ct.err)
		case <-time.After(wait):
		}
		err := probe(context.Background(), ns, c, p)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready within %v: %v", d, err)
		}
		wait = time.Duration(max(p.PeriodSeconds, 1)) * time.Second
	}
}

// watchLiveness probes liveness as the kubelet does, until stop closes,
// and reports the probes that passed and whether the kubelet would have
// restarted the container (failureThreshold failures in a row); passedOnce
// closes when a probe first passes.
func watchLiveness(ns *netns, c corev1.Container, stop <-chan struct{}) (result func() (passed int, restart error), passedOnce <-chan struct{}) {
	p := c.LivenessProbe
	var mu sync.Mutex
	var passed, failed int
	var restart error
	done := make(chan struct{})
	once := make(chan struct{})
	var onceClosed sync.Once
	go func() {
		defer close(done)
		select {
		case <-time.After(time.Duration(p.InitialDelaySeconds) * time.Second):
		case <-stop:
			return
		}
		for {
			err := probe(context.Background(), ns, c, p)
			mu.Lock()
			if err == nil {
				passed, failed = passed+1, 0
				onceClosed.Do(func() { close(once) })
			} else if failed++; failed >= int(max(p.FailureThreshold, 1)) && restart == nil {
				restart = fmt.Errorf("liveness failed %d times in a row: %w", failed, err)
			}
			mu.Unlock()
			select {
			case <-time.After(time.Duration(max(p.PeriodSeconds, 1)) * time.Second):
			case <-stop:
				return
			}
		}
	}()
	return func() (int, error) {
		<-done
		mu.Lock()
		defer mu.Unlock()
		return passed, restart
	}, once
}

// caller makes the calls of one identity over mutual TLS, by gRPC and
// through the gateway.
type caller struct {
	grpc authv1.AuthServiceClient
	http *http.Client
}

func newCaller(t *testing.T, ns *netns, pki *dinterotest.PKI, grpcAddr, identity string) *caller {
	t.Helper()
	cert := pki.Client(t, "caller", identity)
	conn, err := grpc.NewClient("passthrough:///"+grpcAddr,
		grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) { return ns.Dial(ctx, "tcp", a) }),
		grpc.WithTransportCredentials(credentials.NewTLS(pki.ClientTLS(cert))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	tr := &http.Transport{DialContext: ns.Dial, TLSClientConfig: pki.ClientTLS(cert), ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &caller{grpc: authv1.NewAuthServiceClient(conn), http: &http.Client{Transport: tr, Timeout: 20 * time.Second}}
}

func callCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// credentialsFile is the facade's --credentials-file for accounts, with
// one client's credentials.
func credentialsFile(accounts []string, c dinteromock.Client) []byte {
	var b bytes.Buffer
	for _, a := range accounts {
		fmt.Fprintf(&b, "- account_id: %s\n  client_id: %s\n  client_secret: %s\n", a, c.ID, c.Secret)
	}
	return b.Bytes()
}

// TestContainer builds the image with the manual's commands and runs it
// with podman under the Deployment's own settings, read from the rendered
// kustomization: first with --mock, then with the manual's command to try
// it (as written), then as the Deployment runs it, with its Secrets and
// ConfigMap mounted as the kubelet writes them, mutual TLS from the shipped
// layout, and the mock Dintero as the upstream. Each runs in a network
// namespace of its own, so the manifest's own ports are free and two runs
// at once do not collide.
func TestContainer(t *testing.T) {
	requireContainerRuntime(t)
	r := render(t, ".")
	c := r.container(t)
	version := "test-" + randomHex(t, 4)
	image := buildImage(t, version)
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	addr := func(name string) string {
		if ports[name] == 0 {
			t.Fatalf("the container declares no port %s", name)
		}
		return fmt.Sprintf("127.0.0.1:%d", ports[name])
	}

	t.Run("mock", func(t *testing.T) {
		// The entrypoint is the facade, and --mock serves on its default
		// ports, plain, under the Deployment's security settings.
		ns := newNetns(t)
		ct := start(t, ns, image, runArgs(t, r), []string{"--mock"})
		ct.waitLog(t, `"msg":"dintero-facade starting"`, 60*time.Second)
		if want := `"version":"` + version + `"`; !strings.Contains(ct.out.String(), want) {
			t.Errorf("the startup line lacks %s: the version is not stamped", want)
		}
		conn, err := grpc.NewClient("passthrough:///127.0.0.1:9090",
			grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) { return ns.Dial(ctx, "tcp", a) }),
			grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		grant := dinteromock.Defaults().Grants[dinteromock.DefaultAccount][0].ID
		res, err := authv1.NewAuthServiceClient(conn).DeleteClientGrant(callCtx(t), &authv1.DeleteClientGrantRequest{Oid: dinteromock.DefaultAccount, Id: grant})
		if err != nil || res.GetGrant().GetId() != grant {
			t.Fatalf("DeleteClientGrant against --mock: %v, %v", res, err)
		}
		if out, err := podman("stop", "--time", "10", ct.name).CombinedOutput(); err != nil {
			t.Fatalf("podman stop: %v\n%s", err, out)
		}
		<-ct.exited
		if ct.err != nil {
			t.Errorf("--mock exited with %v after SIGTERM; want 0", ct.err)
		}
	})

	t.Run("try", func(t *testing.T) {
		// The manual's block that tries the image, as written, with
		// podman's global flags for this machine, in a namespace of the
		// test's own: podman's host network is the namespace's, so the
		// facade listens on its default ports there without meeting
		// anything else on the machine. Ctrl-C stops it: SIGINT to the
		// block's process group, as a terminal sends it.
		ns := newNetns(t)
		script := "podman() { command podman " + strings.Join(podmanGlobal, " ") + ` "$@"; }` + "\n" + shipBlock(t, "try")
		cmd := exec.Command("nsenter", "--net="+ns.Path, "bash", "-ec", script)
		cmd.Dir = repoRoot
		cmd.Env = append(os.Environ(), "IMAGE="+image)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		out := &dinterotest.LogBuffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		left := func() []string {
			ids, _ := podman("ps", "--all", "--quiet", "--filter", "ancestor="+image).Output()
			return strings.Fields(string(ids))
		}
		stopped := false
		t.Cleanup(func() {
			if !stopped {
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				<-exited
			}
			for _, id := range left() {
				_ = podman("rm", "--force", "--time", "0", id).Run()
			}
			if t.Failed() {
				t.Logf("the try block's output:\n%s", out)
			}
		})
		for deadline := time.Now().Add(60 * time.Second); !strings.Contains(out.String(), `"msg":"dintero-facade starting"`); {
			select {
			case err := <-exited:
				stopped = true
				t.Fatalf("the try block exited (%v) before the facade started", err)
			case <-time.After(100 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatal("the try block's facade did not start within 60s")
			}
		}
		conn, err := grpc.NewClient("passthrough:///127.0.0.1:9090",
			grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) { return ns.Dial(ctx, "tcp", a) }),
			grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		grant := dinteromock.Defaults().Grants[dinteromock.DefaultAccount][0].ID
		res, err := authv1.NewAuthServiceClient(conn).DeleteClientGrant(callCtx(t), &authv1.DeleteClientGrantRequest{Oid: dinteromock.DefaultAccount, Id: grant}, grpc.WaitForReady(true))
		if err != nil || res.GetGrant().GetId() != grant {
			t.Errorf("DeleteClientGrant on the tried image's 127.0.0.1:9090: %v, %v", res, err)
		}
		tr := &http.Transport{DialContext: ns.Dial}
		defer tr.CloseIdleConnections()
		if resp, err := (&http.Client{Transport: tr, Timeout: 20 * time.Second}).Get("http://127.0.0.1:8080/healthz"); err != nil {
			t.Errorf("GET /healthz on the tried image's 127.0.0.1:8080: %v", err)
		} else if resp.Body.Close(); resp.StatusCode != http.StatusOK {
			t.Errorf("GET /healthz on the tried image's 127.0.0.1:8080: %d; want 200", resp.StatusCode)
		}
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
		select {
		case err := <-exited:
			stopped = true
			if err != nil {
				t.Errorf("Ctrl-C: the try block exited with %v; want 0", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("Ctrl-C did not stop the try block within 30s")
		}
		if ids := left(); len(ids) > 0 {
			t.Errorf("containers %v of the image remain after Ctrl-C; want none (--rm)", ids)
		}
	})

	t.Run("deployment", func(t *testing.T) {
		pod := r.Deployment.Spec.Template.Spec
		f := flags(t, c)
		policyVolume := r.volume(t, "policy")
		policy, err := service.ParsePolicy([]byte(r.ConfigMaps[policyVolume.ConfigMap.Name].Data[path.Base(f["policy-file"])]))
		if err != nil {
			t.Fatal(err)
		}
		deleter := admitted(t, policy, "DeleteClientGrant")
		authorizer := admitted(t, policy, "Authorize")
		const stranger = "spiffe://cluster.local/ns/elsewhere/sa/stranger"
		for _, op := range []string{"DeleteClientGrant", "Authorize"} {
			if policy.Allows(stranger, deleter.account, op) {
				t.Fatalf("the shipped policy lets %s %s; the test needs a stranger", stranger, op)
			}
		}
		accounts := []string{deleter.account}
		if authorizer.account != deleter.account {
			accounts = append(accounts, authorizer.account)
		}

		// The mock Dintero knows the facade's client before and after the
		// rotation, and an application with a verification code.
		before := dinteromock.Client{ID: "facade-before", Secret: randomHex(t, 16), Accounts: accounts, Scopes: []string{"admin:accounts"}}
		after := dinteromock.Client{ID: "facade-after", Secret: randomHex(t, 16), Accounts: accounts, Scopes: []string{"admin:accounts"}}
		app := dinteromock.Client{ID: "login-app", Secret: randomHex(t, 16), Accounts: accounts, Scopes: []string{"openid"}, Callbacks: []string{"https://app.example.com/cb"}}
		m, err := dinteromock.New(dinteromock.Options{Clients: []dinteromock.Client{before, after, app}, Grants: map[string][]dinteromock.Grant{}, Codes: []dinteromock.Code{}})
		if err != nil {
			t.Fatal(err)
		}
		grant := func() string {
			id := "c0ffee00-0000-4000-8000-" + randomHex(t, 6)
			if err := m.AddGrant(deleter.account, dinteromock.Grant{ID: id, ClientID: "some-client", Audience: dinteromock.Audience(deleter.account), Scope: []string{"read:accounts"}, CreatedAt: time.Now().UTC()}); err != nil {
				t.Fatal(err)
			}
			return id
		}
		m.AddCode(dinteromock.Code{Value: "424242", ClientID: app.ID, Account: authorizer.account, Subject: "user-1", Email: "user1@example.com", Name: "User One"})
		ns := newNetns(t)
		up := startUpstream(t, ns, m)

		// The Secrets and the ConfigMap, as the kubelet writes them: the
		// TLS Secret as cert-manager fills it (tls.crt, tls.key, ca.crt), the
		// credentials Secret under the documented name and key.
		pki := dinterotest.NewPKI(t)
		issued := map[string]bool{}
		for _, cert := range r.Certificates {
			issued[cert.Spec.SecretName] = true
		}
		example := credentialsExample(t)
		credsKey := path.Base(f["credentials-file"])
		if _, ok := example.StringData[credsKey]; !ok {
			t.Fatalf("the credentials Secret has no key %s", credsKey)
		}
		secretData := func(name string, creds dinteromock.Client) map[string][]byte {
			switch {
			case issued[name]:
				return map[string][]byte{"tls.crt": mustRead(t, pki.CertFile), "tls.key": mustRead(t, pki.KeyFile), "ca.crt": mustRead(t, pki.CAFile)}
			case name == example.Name:
				return map[string][]byte{credsKey: credentialsFile(accounts, creds)}
			}
			t.Fatalf("Secret %s is neither a Certificate's nor the credentials Secret", name)
			return nil
		}
		hostDirs := map[string]string{}
		written := map[string]*kubeletVolume{}
		for _, v := range pod.Volumes {
			dir := filepath.Join(t.TempDir(), v.Name)
			switch {
			case v.Secret != nil:
				kv := newKubeletVolume(t, dir, true, pod.SecurityContext.FSGroup)
				kv.Write(t, payloadFor(t, v.Secret.Items, v.Secret.DefaultMode, secretData(v.Secret.SecretName, before)))
				written[v.Name] = kv
			case v.ConfigMap != nil:
				cm, ok := r.ConfigMaps[v.ConfigMap.Name]
				if !ok {
					t.Fatalf("volume %s: ConfigMap %s is not in the render", v.Name, v.ConfigMap.Name)
				}
				data := map[string][]byte{}
				for k, d := range cm.Data {
					data[k] = []byte(d)
				}
				for k, d := range cm.BinaryData {
					data[k] = d
				}
				kv := newKubeletVolume(t, dir, false, pod.SecurityContext.FSGroup)
				kv.Write(t, payloadFor(t, v.ConfigMap.Items, v.ConfigMap.DefaultMode, data))
				written[v.Name] = kv
			default:
				t.Fatalf("volume %s is neither a Secret nor a ConfigMap", v.Name)
			}
			hostDirs[v.Name] = dir
		}
		// Secret files are for the container's user and groups alone.
		for _, v := range pod.Volumes {
			if v.Secret == nil {
				continue
			}
			entries, err := filepath.Glob(filepath.Join(hostDirs[v.Name], "..data", "*"))
			if err != nil || len(entries) == 0 {
				t.Fatalf("volume %s holds no files (%v)", v.Name, err)
			}
			for _, e := range entries {
				info, err := os.Stat(e)
				if err != nil {
					t.Fatal(err)
				}
				if info.Mode().Perm()&0o007 != 0 {
					t.Errorf("%s in volume %s has mode %v: readable by others than the container's user and groups", filepath.Base(e), v.Name, info.Mode().Perm())
				}
			}
		}

		// The Deployment's args, and the mock Dintero instead of Dintero,
		// slow at first: it holds the warm-up's token requests.
		args := append(slices.Clone(c.Args), "--dintero-url="+up.URL)
		release := up.holdTokens()
		defer release()
		ct := start(t, ns, image, append(runArgs(t, r), mountArgs(t, r, hostDirs)...), args)
		stopLiveness := make(chan struct{})
		liveness, livenessPassed := watchLiveness(ns, c, stopLiveness)
		livenessStopped := false
		defer func() {
			if !livenessStopped {
				close(stopLiveness)
			}
		}()

		// live probes liveness as the kubelet does: it restarts the
		// container after failureThreshold failures in a row.
		live := func() error {
			var err error
			for range max(c.LivenessProbe.FailureThreshold, 1) {
				if err = probe(context.Background(), ns, c, c.LivenessProbe); err == nil {
					return nil
				}
				time.Sleep(time.Second)
			}
			return err
		}
		if !t.Run("probes", func(t *testing.T) {
			// While Dintero holds the warm-up, the pod is alive and not
			// ready: a restart would cure nothing.
			ct.waitLog(t, `"msg":"dintero-facade starting"`, 60*time.Second)
			if err := live(); err != nil {
				t.Errorf("liveness during a slow warm-up: %v; the kubelet would restart the container", err)
			}
			if err := probe(context.Background(), ns, c, c.ReadinessProbe); err == nil {
				t.Error("readiness passes while the warm-up waits for Dintero; want NOT_SERVING")
			}
			if strings.Contains(ct.out.String(), `"msg":"warmed up`) {
				t.Fatal("the warm-up was over before the probes: the test tells nothing")
			}
			release()
			ct.waitReady(t, ns, c, 60*time.Second)
			ct.waitLog(t, `"msg":"warmed up`, 10*time.Second)
			// Liveness, as soon as ready (and watchLiveness probes on the
			// manifest's schedule until SIGTERM).
			if err := live(); err != nil {
				t.Errorf("liveness: %v", err)
			}
			// The manual's check, fed this pod's log as kubectl logs would.
			if out := runLogBlock(t, "check", ct); !strings.Contains(out, `"msg":"warmed up`) {
				t.Errorf("the manual's check printed %q; want the warmed-up line", out)
			}
			// Every declared port serves: metrics in plain HTTP.
			tr := &http.Transport{DialContext: ns.Dial}
			defer tr.CloseIdleConnections()
			res, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("http://" + addr("metrics") + "/metrics")
			if err != nil {
				t.Fatalf("/metrics: %v", err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("dintero_upstream_token_fetches_total")) {
				t.Errorf("/metrics: %s", res.Status)
			}
		}) {
			t.FailNow()
		}

		del := newCaller(t, ns, pki, addr("grpc"), deleter.identity)
		if !t.Run("calls", func(t *testing.T) {
			id := grant()
			res, err := del.grpc.DeleteClientGrant(callCtx(t), &authv1.DeleteClientGrantRequest{Oid: deleter.account, Id: id})
			if err != nil || res.GetGrant().GetId() != id || m.HasGrant(deleter.account, id) {
				t.Errorf("DeleteClientGrant as %s: %v, %v", deleter.identity, res, err)
			}
			auth := newCaller(t, ns, pki, addr("grpc"), authorizer.identity)
			ares, err := auth.grpc.Authorize(callCtx(t), &authv1.AuthorizeRequest{
				Oid: authorizer.account, Audience: dinteromock.Audience(authorizer.account), ResponseType: "authenticate",
				ClientId: app.ID, Scope: "openid", VerificationCode: "424242", RedirectUri: app.Callbacks[0], State: "s1",
			})
			if err != nil || ares.GetIdTokenVerification().GetResult() != authv1.IdTokenVerification_RESULT_VERIFIED || ares.GetState() != "s1" || !m.CodeUsed("424242") {
				t.Errorf("Authorize as %s: %v, %v", authorizer.identity, ares, err)
			}
			// JSON through the gateway, over mutual TLS too.
			id = grant()
			req, err := http.NewRequest(http.MethodDelete, fmt.Sprintf("https://%s/v1/accounts/%s/auth/client-grants/%s", addr("http"), deleter.account, id), nil)
			if err != nil {
				t.Fatal(err)
			}
			hres, err := del.http.Do(req)
			if err != nil {
				t.Fatalf("DELETE through the gateway: %v", err)
			}
			body, _ := io.ReadAll(hres.Body)
			hres.Body.Close()
			if hres.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(`"id":"`+id+`"`)) || m.HasGrant(deleter.account, id) {
				t.Errorf("DELETE through the gateway: %s %s", hres.Status, body)
			}
		}) {
			t.FailNow()
		}

		t.Run("policy", func(t *testing.T) {
			id := grant()
			s := newCaller(t, ns, pki, addr("grpc"), stranger)
			_, err := s.grpc.DeleteClientGrant(callCtx(t), &authv1.DeleteClientGrantRequest{Oid: deleter.account, Id: id})
			if status.Code(err) != codes.PermissionDenied || !m.HasGrant(deleter.account, id) {
				t.Errorf("DeleteClientGrant as %s: %v; want PermissionDenied and the grant kept", stranger, err)
			}
		})

		t.Run("policy reload", func(t *testing.T) {
			// Revoke the deleter: the ConfigMap updated as the kubelet
			// updates it, without the deleter's rule.
			var revoked service.Policy
			for _, rule := range policy.Rules {
				if ok, _ := path.Match(rule.Identity, deleter.identity); !ok {
					revoked.Rules = append(revoked.Rules, rule)
				}
			}
			if len(revoked.Rules) == 0 {
				t.Fatal("the shipped policy has no rule but the deleter's: nothing to keep")
			}
			writePolicy := func(doc []byte) {
				t.Helper()
				cm := r.ConfigMaps[policyVolume.ConfigMap.Name]
				data := map[string][]byte{}
				for k, d := range cm.Data {
					data[k] = []byte(d)
				}
				data[path.Base(f["policy-file"])] = doc
				written[policyVolume.Name].Write(t, payloadFor(t, policyVolume.ConfigMap.Items, policyVolume.ConfigMap.DefaultMode, data))
			}
			reloaded := strings.Count(ct.out.String(), `"msg":"policy reloaded"`)
			writePolicy(mustYAML(t, revoked))
			ct.waitLog(t, fmt.Sprintf(`"msg":"policy reloaded","why":"file changed","rules":%d`, len(revoked.Rules)), 30*time.Second)
			id := grant()
			if _, err := del.grpc.DeleteClientGrant(callCtx(t), &authv1.DeleteClientGrantRequest{Oid: deleter.account, Id: id}); status.Code(err) != codes.PermissionDenied || !m.HasGrant(deleter.account, id) {
				t.Errorf("DeleteClientGrant as the revoked %s: %v; want PermissionDenied and the grant kept", deleter.identity, err)
			}
			// A policy that does not load: the revocation stands, and the
			// manual's why block shows the reason.
			writePolicy([]byte("rules: []\n"))
			ct.waitLog(t, `"msg":"policy not reloaded: keeping the previous one"`, 30*time.Second)
			if _, err := del.grpc.DeleteClientGrant(callCtx(t), &authv1.DeleteClientGrantRequest{Oid: deleter.account, Id: id}); status.Code(err) != codes.PermissionDenied {
				t.Errorf("after a policy that does not load: %v; want PermissionDenied, the last good policy", err)
			}
			if out := runLogBlock(t, "why", ct); !strings.Contains(out, `"level":"ERROR","msg":"policy not reloaded: keeping the previous one"`) || !strings.Contains(out, "the policy has no rules") {
				t.Errorf("the manual's why block printed %q; want the refused policy and what is wrong with it", out)
			}
			// The shipped policy again, for what follows.
			writePolicy([]byte(r.ConfigMaps[policyVolume.ConfigMap.Name].Data[path.Base(f["policy-file"])]))
			deadline := time.Now().Add(30 * time.Second)
			for strings.Count(ct.out.String(), `"msg":"policy reloaded"`) < reloaded+2 {
				if time.Now().After(deadline) {
					t.Fatal("the shipped policy was not reloaded within 30s")
				}
				time.Sleep(100 * time.Millisecond)
			}
			if _, err := del.grpc.DeleteClientGrant(callCtx(t), &authv1.DeleteClientGrantRequest{Oid: deleter.account, Id: id}); err != nil {
				t.Errorf("after the policy was restored: %v", err)
			}
		})

		t.Run("credentials reload", func(t *testing.T) {
			// Dintero rotates the facade's client: the old one is gone.
			if err := m.SetClients([]dinteromock.Client{after, app}); err != nil {
				t.Fatal(err)
			}
			reloads := strings.Count(ct.out.String(), `"msg":"credentials reloaded"`)
			for _, v := range pod.Volumes {
				if v.Secret != nil && v.Secret.SecretName == example.Name {
					written[v.Name].Write(t, payloadFor(t, v.Secret.Items, v.Secret.DefaultMode, secretData(v.Secret.SecretName, after)))
				}
			}
			deadline := time.Now().Add(30 * time.Second)
			for strings.Count(ct.out.String(), `"msg":"credentials reloaded"`) == reloads {
				if time.Now().After(deadline) {
					t.Fatal("the facade did not reload its credentials within 30s of the Secret's swap")
				}
				time.Sleep(100 * time.Millisecond)
			}
			n := up.tokenRequests()
			id := grant()
			if _, err := del.grpc.DeleteClientGrant(callCtx(t), &authv1.DeleteClientGrantRequest{Oid: deleter.account, Id: id}); err != nil || m.HasGrant(deleter.account, id) {
				t.Errorf("DeleteClientGrant after the rotation: %v", err)
			}
			if got := up.tokenClients(n); !slices.Contains(got, after.ID) || slices.Contains(got, before.ID) {
				t.Errorf("token requests after the swap came from %v; want %s's, the new Secret's", got, after.ID)
			}
			if out := runLogBlock(t, "reloaded", ct); !strings.Contains(out, `"msg":"credentials reloaded"`) || !strings.Contains(out, `"msg":"policy reloaded"`) {
				t.Errorf("the manual's reloaded block printed %q; want the reloads of the credentials and the policy", out)
			}
		})

		t.Run("drain", func(t *testing.T) {
			grace := time.Duration(*pod.TerminationGracePeriodSeconds) * time.Second
			delay, err := time.ParseDuration(f["shutdown-delay"])
			if err != nil {
				t.Fatalf("--shutdown-delay: %v", err)
			}
			// A call that is still in flight when the listeners close.
			id := grant()
			hold := delay + 2*time.Second
			arrived := up.holdDelete(id, hold)
			result := make(chan error, 1)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), hold+20*time.Second)
				defer cancel()
				_, err := del.grpc.DeleteClientGrant(ctx, &authv1.DeleteClientGrantRequest{Oid: deleter.account, Id: id})
				result <- err
			}()
			select {
			case <-arrived:
			case <-time.After(20 * time.Second):
				t.Fatal("the call did not reach the mock")
			}
			// The kubelet's own liveness probes have passed at least once
			// (after initialDelaySeconds) before it stops them for a
			// terminating container.
			lp := c.LivenessProbe
			select {
			case <-livenessPassed:
			case <-time.After(time.Duration(lp.InitialDelaySeconds+2*max(lp.PeriodSeconds, 1)) * time.Second):
				t.Error("no liveness probe on the manifest's schedule passed")
			}
			close(stopLiveness) // the kubelet stops probing a terminating container
			livenessStopped = true
			// The kubelet stops a container as podman stop does: SIGTERM,
			// then SIGKILL once the grace period is over.
			sigterm := time.Now()
			stopped := make(chan error, 1)
			go func() {
				out, err := podman("stop", "--time", strconv.Itoa(int(grace/time.Second)), ct.name).CombinedOutput()
				if err != nil {
					err = fmt.Errorf("%w: %s", err, out)
				}
				stopped <- err
			}()
			ct.waitLog(t, `"msg":"shutting down`, 15*time.Second)
			if err := probe(context.Background(), ns, c, c.ReadinessProbe); err == nil {
				t.Error("readiness still passes after SIGTERM; want NOT_SERVING while endpoints update")
			}
			if err := <-result; err != nil {
				t.Errorf("the call in flight at SIGTERM: %v; want it finished", err)
			}
			if err := <-stopped; err != nil {
				t.Errorf("podman stop: %v", err)
			}
			<-ct.exited
			if took := time.Since(sigterm); ct.err != nil || took >= grace {
				t.Errorf("the container exited with %v, %v after SIGTERM; want 0 within terminationGracePeriodSeconds %v", ct.err, took.Round(time.Millisecond), grace)
			}
			if m.HasGrant(deleter.account, id) {
				t.Error("the grant deleted in flight is still there")
			}
		})

		passed, restart := liveness()
		if restart != nil || passed == 0 {
			t.Errorf("liveness passed %d times; the kubelet would have restarted the container: %v", passed, restart)
		}
	})
}

// runLogBlock runs the manual's block name (kubectl logs … | grep …) with
// the container's log as kubectl logs --prefix prints a pod's, and returns
// what it printed.
func runLogBlock(t *testing.T, name string, ct *container) string {
	t.Helper()
	var logs strings.Builder
	for _, l := range strings.SplitAfter(ct.out.String(), "\n") {
		if l != "" {
			logs.WriteString("[pod/dintero-facade-7d9f8b6c4-x2x9q/dintero-facade] " + l)
		}
	}
	r, err := runDoc(t, repoRoot, shipBlock(t, name), logs.String())
	if err != nil {
		t.Errorf("the manual's %s block: %v", name, err)
	}
	return r.Out
}

// mustYAML is p as a policy file.
func mustYAML(t *testing.T, p service.Policy) []byte {
	t.Helper()
	b, err := yaml.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
