// Package deploy_test checks the Kubernetes manifests offline. It renders
// the kustomization as kubectl apply -k would, decodes what it renders into
// the Kubernetes API types, and checks that against the facade's own flags
// and policy parser: what ships is the secure setup (mutual TLS, a policy,
// a network policy, probes and metrics on plain listeners of their own), in
// one namespace, with the operator's image. container_test.go runs it.
package deploy_test

import (
	"bytes"
	"fmt"
	"maps"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	psaapi "k8s.io/pod-security-admission/api"
	psapolicy "k8s.io/pod-security-admission/policy"
	"sigs.k8s.io/kustomize/api/types"
)

// flags returns the container's --name=value arguments.
func flags(t testing.TB, c corev1.Container) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, a := range c.Args {
		name, value, ok := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !strings.HasPrefix(a, "--") || !ok {
			t.Errorf("argument %q is not --name=value", a)
		}
		out[name] = value
	}
	return out
}

// kustomization reads deploy/kustomization.yaml.
func kustomization(t testing.TB) types.Kustomization {
	t.Helper()
	var k types.Kustomization
	decode(t, "kustomization.yaml", &k)
	return k
}

// recommendedLabels are the labels the kustomization puts on every object
// and pod, besides app.kubernetes.io/name, which the manifests set and the
// selectors use; an overlay adds app.kubernetes.io/version.
var recommendedLabels = []string{"app.kubernetes.io/instance", "app.kubernetes.io/part-of", "app.kubernetes.io/component", "app.kubernetes.io/managed-by"}

// TestKustomization: the kustomization renders every manifest but the
// example credentials and the namespace, all in the namespace
// namespace.yaml makes (the one the Certificate's names assume), which it
// does not own; it leaves the image to an overlay (the Deployment names
// dintero-facade, which images: replaces); every object and pod carries
// the recommended labels, and the selectors the name alone.
func TestKustomization(t *testing.T) {
	r := render(t, ".")
	k := kustomization(t)
	ns := namespaceManifest(t)
	if ns.Name == "" || ns.Name != k.Namespace {
		t.Errorf("namespace.yaml makes namespace %q; kustomization.yaml sets %q", ns.Name, k.Namespace)
	}
	for _, o := range r.Objects {
		if o.Kind == "Namespace" {
			t.Errorf("the render holds Namespace %s: kubectl delete -k would delete it, and the Secrets in it", o.Name)
		}
		if o.Namespace != k.Namespace {
			t.Errorf("%s %s is in namespace %q; want %q", o.Kind, o.Name, o.Namespace, k.Namespace)
		}
		if bytes.Contains(o.YAML, []byte("REPLACE_ME")) {
			t.Errorf("%s %s holds a placeholder", o.Kind, o.Name)
		}
		for _, l := range recommendedLabels {
			if o.Labels[l] == "" {
				t.Errorf("%s %s lacks the label %s (has %v)", o.Kind, o.Name, l, o.Labels)
			}
		}
	}
	if len(r.Secrets) != 0 {
		t.Errorf("the render holds Secrets %v; credentials are created out of band, TLS by cert-manager", slices.Sorted(maps.Keys(r.Secrets)))
	}
	// Every manifest in deploy/ is applied, but the example and the
	// namespace.
	files, err := filepath.Glob("*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		switch {
		case f == "kustomization.yaml":
		case f == "credentials.example.yaml" || f == "namespace.yaml":
			if slices.Contains(k.Resources, f) {
				t.Errorf("kustomization.yaml applies %s", f)
			}
		case !slices.Contains(k.Resources, f):
			t.Errorf("kustomization.yaml does not apply %s", f)
		}
	}
	// The Certificate names the Service in this namespace.
	for _, c := range r.Certificates {
		for _, want := range []string{r.Service.Name + "." + k.Namespace + ".svc", r.Service.Name + "." + k.Namespace + ".svc.cluster.local"} {
			if !slices.Contains(c.Spec.DNSNames, want) {
				t.Errorf("Certificate %s's dnsNames %v lack %s", c.Metadata.Name, c.Spec.DNSNames, want)
			}
		}
	}
	// The overlay names the image: the base sets none, or the overlay's
	// images: would not match the name the base had replaced.
	if len(k.Images) != 0 {
		t.Errorf("kustomization.yaml sets images %+v; the operator's overlay does (docs/operating.md)", k.Images)
	}
	if c := r.container(t); c.Image != "dintero-facade" {
		t.Errorf("the container runs %q; want dintero-facade, the name an overlay's images: replaces", c.Image)
	}
	// Labels on the pods; selectors the name alone, which a Deployment
	// cannot change.
	pod := r.Deployment.Spec.Template.Labels
	for _, l := range recommendedLabels {
		if pod[l] == "" {
			t.Errorf("the pods lack the label %s (have %v)", l, pod)
		}
	}
	name := map[string]string{"app.kubernetes.io/name": "dintero-facade"}
	for what, sel := range map[string]map[string]string{
		"Deployment":    r.Deployment.Spec.Selector.MatchLabels,
		"Service":       r.Service.Spec.Selector,
		"PDB":           r.PDB.Spec.Selector.MatchLabels,
		"NetworkPolicy": r.NetworkPolicy.Spec.PodSelector.MatchLabels,
	} {
		if !maps.Equal(sel, name) {
			t.Errorf("the %s selects %v; want %v alone", what, sel, name)
		}
	}
}

// TestNamespace: Pod Security restricted is enforced, warned of and
// audited, each at a version, and the rendered pod meets what is
// enforced, as the admission controller would judge it.
func TestNamespace(t *testing.T) {
	ns := namespaceManifest(t)
	for _, mode := range []string{"enforce", "warn", "audit"} {
		if ns.Labels["pod-security.kubernetes.io/"+mode] != "restricted" || ns.Labels["pod-security.kubernetes.io/"+mode+"-version"] == "" {
			t.Errorf("namespace labels %v; want %s restricted at a version", ns.Labels, mode)
		}
	}
	policy, errs := psaapi.PolicyToEvaluate(ns.Labels, psaapi.Policy{})
	if len(errs) != 0 {
		t.Fatalf("namespace labels %v: %v", ns.Labels, errs)
	}
	eval, err := psapolicy.NewEvaluator(psapolicy.DefaultChecks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	pod := render(t, ".").Deployment.Spec.Template
	for _, lv := range []psaapi.LevelVersion{policy.Enforce, policy.Warn, policy.Audit} {
		if res := psapolicy.AggregateCheckResults(eval.EvaluatePod(lv, &pod.ObjectMeta, &pod.Spec)); !res.Allowed {
			t.Errorf("Pod Security %s refuses the pod: %s (%s)", lv, res.ForbiddenReason(), res.ForbiddenDetail())
		}
	}
}

// TestVolumesExist: every volume's ConfigMap is in the render, and every
// Secret is either issued by a Certificate in the render or the documented
// out-of-band credentials Secret.
func TestVolumesExist(t *testing.T) {
	r := render(t, ".")
	example := credentialsExample(t)
	issued := map[string]bool{}
	for _, c := range r.Certificates {
		issued[c.Spec.SecretName] = true
	}
	for _, v := range r.Deployment.Spec.Template.Spec.Volumes {
		switch {
		case v.ConfigMap != nil:
			if _, ok := r.ConfigMaps[v.ConfigMap.Name]; !ok {
				t.Errorf("volume %s: ConfigMap %s is not in the render", v.Name, v.ConfigMap.Name)
			}
		case v.Secret != nil:
			if !issued[v.Secret.SecretName] && v.Secret.SecretName != example.Name {
				t.Errorf("volume %s: Secret %s is neither a Certificate's nor the documented credentials Secret %s", v.Name, v.Secret.SecretName, example.Name)
			}
		default:
			t.Errorf("volume %s is neither a Secret nor a ConfigMap", v.Name)
		}
	}
}

func TestDeployment(t *testing.T) {
	r := render(t, ".")
	d, c := r.Deployment, r.container(t)
	// The HorizontalPodAutoscaler owns the count: a replicas of the
	// manifest's would reset its scale at every kubectl apply.
	if d.Spec.Replicas != nil {
		t.Errorf("replicas %d; want none, the HPA's minReplicas covers it", *d.Spec.Replicas)
	}
	if got, want := d.Spec.Selector.MatchLabels["app.kubernetes.io/name"], d.Spec.Template.Labels["app.kubernetes.io/name"]; got == "" || got != want {
		t.Errorf("selector %q does not match the pod labels %q", got, want)
	}
	pod := d.Spec.Template.Spec
	psc := pod.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
		t.Fatal("the pod must run as a non-root user")
	}
	// The kubelet writes Secret and ConfigMap files owned by root: the
	// facade reads them through fsGroup, which owns them.
	if psc.FSGroup == nil {
		t.Error("no fsGroup: user", *psc.RunAsUser, "cannot read the root-owned Secret files")
	}
	for _, v := range pod.Volumes {
		if v.Secret == nil {
			continue
		}
		mode := int32(corev1.SecretVolumeSourceDefaultMode)
		if v.Secret.DefaultMode != nil {
			mode = *v.Secret.DefaultMode
		}
		if mode&0o040 == 0 || mode&0o007 != 0 {
			t.Errorf("volume %s: defaultMode %#o; want group read (fsGroup) and nothing for others", v.Name, mode)
		}
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Error("the pod must not mount a service account token: it talks to no Kubernetes API")
	}
	if psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("seccomp %+v; want RuntimeDefault (Pod Security restricted)", psc.SeccompProfile)
	}
	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" {
		t.Errorf("container security context %+v; want read-only root, no privilege escalation, non-root, all capabilities dropped", sc)
	}
	for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if c.Resources.Requests.Name(res, "").IsZero() || c.Resources.Limits.Name(res, "").IsZero() {
			t.Errorf("%s needs a request and a limit", res)
		}
	}
	if pod.TerminationGracePeriodSeconds == nil || *pod.TerminationGracePeriodSeconds < 25 {
		t.Errorf("terminationGracePeriodSeconds %v; want room for --shutdown-delay 5s + --shutdown-grace 20s", pod.TerminationGracePeriodSeconds)
	}
	// Spread over zones and nodes, never left pending for it.
	spread := map[string]corev1.UnsatisfiableConstraintAction{}
	for _, tsc := range pod.TopologySpreadConstraints {
		if tsc.LabelSelector == nil || !maps.Equal(tsc.LabelSelector.MatchLabels, d.Spec.Selector.MatchLabels) {
			t.Errorf("topology spread over %s selects %v; want the facade's pods", tsc.TopologyKey, tsc.LabelSelector)
		}
		spread[tsc.TopologyKey] = tsc.WhenUnsatisfiable
	}
	for _, key := range []string{"topology.kubernetes.io/zone", "kubernetes.io/hostname"} {
		if spread[key] != corev1.ScheduleAnyway {
			t.Errorf("topology spread %v; want over %s, ScheduleAnyway", spread, key)
		}
	}
	// Scraped by annotation, on the metrics port.
	ann := d.Spec.Template.Annotations
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/port"] != strconv.Itoa(int(ports["metrics"])) || ann["prometheus.io/path"] != "/metrics" {
		t.Errorf("pod annotations %v; want prometheus.io/scrape, port %d (metrics), path /metrics", ann, ports["metrics"])
	}
}

// containerPort resolves a probe's port, by number or by name, to a port
// the container declares; 0 when it declares none such.
func containerPort(c corev1.Container, p intstr.IntOrString) int32 {
	for _, cp := range c.Ports {
		if (p.Type == intstr.String && cp.Name == p.StrVal) || (p.Type == intstr.Int && cp.ContainerPort == p.IntVal) {
			return cp.ContainerPort
		}
	}
	return 0
}

// TestSecureByDefault: both service listeners need a client certificate,
// the facade's credentials are bound by a policy, and the probes and the
// metrics have plain listeners of their own.
func TestSecureByDefault(t *testing.T) {
	r := render(t, ".")
	c := r.container(t)
	f := flags(t, c)
	for _, name := range []string{"tls-cert", "tls-key", "client-ca", "policy-file", "credentials-file", "health-addr", "metrics-addr"} {
		if f[name] == "" {
			t.Errorf("--%s is not set: the shipped deployment must run with mutual TLS, a policy and separate probe and metrics listeners", name)
		}
	}
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	for name, flag := range map[string]string{"grpc": "grpc-addr", "http": "http-addr", "health": "health-addr", "metrics": "metrics-addr"} {
		if want := ":" + strconv.Itoa(int(ports[name])); f[flag] != want {
			t.Errorf("--%s is %q; want %s, the %s port", flag, f[flag], want, name)
		}
	}
	if len(ports) != 4 {
		t.Errorf("got ports %v; want grpc, http, health and metrics", ports)
	}
	// The kubelet has no client certificate: both probes go to a port the
	// container declares, the plain probe listener, never a service port.
	if rp := c.ReadinessProbe; rp == nil || rp.GRPC == nil || rp.GRPC.Port != ports["health"] || rp.GRPC.Service == nil || *rp.GRPC.Service != "dintero.auth.v1.AuthService" {
		t.Errorf("readiness: got %+v; want gRPC health of dintero.auth.v1.AuthService on the health port", rp)
	} else if containerPort(c, intstr.FromInt32(rp.GRPC.Port)) == 0 {
		t.Errorf("readiness probes port %d, which the container does not declare", rp.GRPC.Port)
	}
	// Liveness is /livez, which the warm-up and the drain leave at 200
	// (TestContainer checks), not /healthz, which follows readiness.
	if l := c.LivenessProbe; l == nil || l.HTTPGet == nil || l.HTTPGet.Path != "/livez" || containerPort(c, l.HTTPGet.Port) != ports["health"] || l.HTTPGet.Scheme == corev1.URISchemeHTTPS {
		t.Errorf("liveness: got %+v; want plain GET /livez on the health port", l)
	}
	// One slow answer on a busy node does not take a pod out of the
	// endpoints, and every probe has a timeout of its choosing.
	if rp := c.ReadinessProbe; rp != nil && (rp.FailureThreshold < 2 || rp.TimeoutSeconds == 0) {
		t.Errorf("readiness: failureThreshold %d, timeoutSeconds %d; want at least 2, and a timeout set", rp.FailureThreshold, rp.TimeoutSeconds)
	}
	if l := c.LivenessProbe; l != nil && (l.TimeoutSeconds == 0 || l.FailureThreshold < 2) {
		t.Errorf("liveness: failureThreshold %d, timeoutSeconds %d; want at least 2, and a timeout set", l.FailureThreshold, l.TimeoutSeconds)
	}
	// No secret in the environment or the arguments.
	for _, e := range c.Env {
		if e.Value != "" && strings.Contains(e.Name, "SECRET") {
			t.Errorf("%s is set in the manifest", e.Name)
		}
	}
	// Every file the flags name lies in a read-only mount of the volume
	// that holds it.
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m
	}
	for flag, want := range map[string]struct{ volume, secret, configMap string }{
		"tls-cert":         {"tls", "dintero-facade-tls", ""},
		"tls-key":          {"tls", "dintero-facade-tls", ""},
		"client-ca":        {"tls", "dintero-facade-tls", ""},
		"credentials-file": {"credentials", "dintero-facade-credentials", ""},
		"policy-file":      {"policy", "", "dintero-facade-policy"},
	} {
		m, ok := mounts[want.volume]
		if !ok || !m.ReadOnly || path.Dir(f[flag]) != m.MountPath {
			t.Errorf("--%s=%s is not in the read-only mount of volume %s (%+v)", flag, f[flag], want.volume, m)
		}
		v := r.volume(t, want.volume)
		switch {
		case want.secret != "" && (v.Secret == nil || v.Secret.SecretName != want.secret):
			t.Errorf("volume %s: got %+v; want Secret %s", want.volume, v.VolumeSource, want.secret)
		case want.configMap != "" && (v.ConfigMap == nil || v.ConfigMap.Name != want.configMap):
			t.Errorf("volume %s: got %+v; want ConfigMap %s", want.volume, v.VolumeSource, want.configMap)
		}
	}
}

// TestFlagsExist: every argument is a flag the facade has (its --help).
func TestFlagsExist(t *testing.T) {
	c := render(t, ".").container(t)
	cmd := exec.Command("go", "run", "./cmd/dintero-facade", "--help")
	cmd.Dir = ".."
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("dintero-facade --help: %v\n%s", err, out)
	}
	for name := range flags(t, c) {
		if !strings.Contains(string(out), "  -"+name+" ") && !strings.Contains(string(out), "  -"+name+"\n") {
			t.Errorf("--%s is not a flag of dintero-facade", name)
		}
	}
}

// TestCertificate: cert-manager issues the server certificate into the
// Secret the Deployment mounts, for the Service's names.
func TestCertificate(t *testing.T) {
	r := render(t, ".")
	if len(r.Certificates) != 1 {
		t.Fatalf("got %d Certificates; want 1", len(r.Certificates))
	}
	var cert certificate
	for _, c := range r.Certificates {
		cert = c
	}
	if cert.APIVersion != "cert-manager.io/v1" || cert.Spec.SecretName != r.volume(t, "tls").Secret.SecretName {
		t.Errorf("got %s into %s; want a cert-manager Certificate into the tls volume's Secret", cert.APIVersion, cert.Spec.SecretName)
	}
	if !slices.Contains(cert.Spec.Usages, "server auth") || cert.Spec.IssuerRef.Name == "" || cert.Spec.PrivateKey.RotationPolicy != "Always" {
		t.Errorf("got %+v; want a server certificate from an issuer, its key rotated", cert.Spec)
	}
	// Every name a caller writes: in the namespace, from another, and the
	// full forms.
	ns := kustomization(t).Namespace
	for _, name := range []string{r.Service.Name, r.Service.Name + "." + ns, r.Service.Name + "." + ns + ".svc", r.Service.Name + "." + ns + ".svc.cluster.local"} {
		if !slices.Contains(cert.Spec.DNSNames, name) {
			t.Errorf("dnsNames %v lack %s", cert.Spec.DNSNames, name)
		}
	}
}

// checkNetworkPolicy: the service ports admit only the callers'
// namespaces, /metrics only the scraper, and egress goes to DNS, HTTPS and
// the extra ports given.
func checkNetworkPolicy(t *testing.T, r *rendered, extraEgress ...string) {
	t.Helper()
	np := r.NetworkPolicy
	if np.Spec.PodSelector.MatchLabels["app.kubernetes.io/name"] != r.Deployment.Spec.Template.Labels["app.kubernetes.io/name"] {
		t.Errorf("selects %v; want the facade's pods", np.Spec.PodSelector.MatchLabels)
	}
	if !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) || !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) {
		t.Errorf("policy types %v; want Ingress and Egress", np.Spec.PolicyTypes)
	}
	c := r.container(t)
	admitted := map[string][]networkingv1.NetworkPolicyPeer{}
	for _, rule := range np.Spec.Ingress {
		if len(rule.From) == 0 || len(rule.Ports) == 0 {
			t.Errorf("ingress rule %+v admits every source or every port", rule)
		}
		for _, peer := range rule.From {
			if peer.IPBlock != nil || peer.NamespaceSelector == nil || len(peer.NamespaceSelector.MatchLabels)+len(peer.NamespaceSelector.MatchExpressions) == 0 {
				t.Errorf("ingress peer %+v is not a labelled namespace", peer)
			}
		}
		for _, p := range rule.Ports {
			if containerPort(c, *p.Port) == 0 {
				t.Errorf("ingress admits port %s, which the container does not declare", p.Port.String())
			}
			admitted[p.Port.String()] = append(admitted[p.Port.String()], rule.From...)
		}
	}
	if len(admitted["grpc"]) == 0 || len(admitted["http"]) == 0 || len(admitted["metrics"]) == 0 || len(admitted["health"]) != 0 {
		t.Errorf("admitted %v; want grpc, http and metrics admitted, the probe port not", admitted)
	}
	for _, peer := range admitted["metrics"] {
		if peer.PodSelector == nil || peer.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != "monitoring" {
			t.Errorf("/metrics admits %+v; want only the scraper's pods in the monitoring namespace", peer)
		}
	}
	for _, peer := range admitted["grpc"] {
		if peer.NamespaceSelector.MatchLabels["dintero-facade/caller"] != "true" {
			t.Errorf("the gRPC port admits %+v; want only namespaces labelled dintero-facade/caller=true", peer)
		}
	}
	var egressPorts []string
	for _, rule := range np.Spec.Egress {
		if len(rule.To) == 0 {
			t.Errorf("egress rule %+v lets out to anywhere", rule)
		}
		for _, p := range rule.Ports {
			egressPorts = append(egressPorts, p.Port.String())
			switch p.Port.String() {
			case "443":
				checkHTTPSEgress(t, rule)
			case "53":
				checkDNSEgress(t, rule)
			}
		}
	}
	slices.Sort(egressPorts)
	want := append([]string{"443", "53", "53"}, extraEgress...)
	slices.Sort(want)
	if !slices.Equal(egressPorts, want) {
		t.Errorf("egress ports %v; want %v", egressPorts, want)
	}
}

// checkHTTPSEgress: HTTPS goes out to public addresses only, not to the
// private, shared and link-local ranges where pods, Services, the API
// server and a cloud's metadata endpoint are.
func checkHTTPSEgress(t *testing.T, rule networkingv1.NetworkPolicyEgressRule) {
	t.Helper()
	private := []string{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16", "fc00::/7", "fe80::/10"}
	excepted := map[string]bool{}
	for _, peer := range rule.To {
		if peer.IPBlock == nil || peer.NamespaceSelector != nil || peer.PodSelector != nil {
			t.Errorf("HTTPS egress peer %+v; want address blocks only", peer)
			continue
		}
		if peer.IPBlock.CIDR != "0.0.0.0/0" && peer.IPBlock.CIDR != "::/0" {
			t.Errorf("HTTPS egress to %s; want the public internet, minus the private ranges", peer.IPBlock.CIDR)
		}
		for _, e := range peer.IPBlock.Except {
			excepted[e] = true
		}
	}
	for _, p := range private {
		if !excepted[p] {
			t.Errorf("HTTPS egress does not except %s (excepts %v)", p, slices.Sorted(maps.Keys(excepted)))
		}
	}
}

// checkDNSEgress: DNS goes to the cluster's DNS pods and NodeLocal
// DNSCache's address.
func checkDNSEgress(t *testing.T, rule networkingv1.NetworkPolicyEgressRule) {
	t.Helper()
	var dnsPods, nodeLocal bool
	for _, peer := range rule.To {
		switch {
		case peer.IPBlock != nil:
			nodeLocal = nodeLocal || peer.IPBlock.CIDR == "169.254.20.10/32"
		case peer.NamespaceSelector != nil && peer.PodSelector != nil:
			dnsPods = dnsPods || (peer.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] == "kube-system" && peer.PodSelector.MatchLabels["k8s-app"] == "kube-dns")
		default:
			t.Errorf("DNS egress peer %+v is neither the DNS pods nor NodeLocal DNSCache", peer)
		}
	}
	if !dnsPods || !nodeLocal {
		t.Errorf("DNS egress to %+v; want kube-dns in kube-system and NodeLocal DNSCache (169.254.20.10)", rule.To)
	}
}

func TestNetworkPolicy(t *testing.T) {
	checkNetworkPolicy(t, render(t, "."))
}

// TestTracingComponent: the manual's commands that add the tracing
// component to the overlay turn tracing on, sampling as the manual says,
// and let OTLP out to the collector's namespace, the one the endpoint
// names; without it, tracing stays off (and TestNetworkPolicy: no egress
// but DNS and HTTPS).
func TestTracingComponent(t *testing.T) {
	r := render(t, shipOverlay(t, stage(t), "registry.example.org/team/dintero-facade:v1", "tracing"))
	checkNetworkPolicy(t, r, "4317")
	env := map[string]string{}
	for _, e := range r.container(t).Env {
		env[e.Name] = e.Value
	}
	endpoint := env["OTEL_EXPORTER_OTLP_ENDPOINT"]
	// A caller's sampled trace is traced; of those that start here, a
	// fraction.
	ratio, err := strconv.ParseFloat(env["OTEL_TRACES_SAMPLER_ARG"], 64)
	if env["OTEL_TRACES_SAMPLER"] != "parentbased_traceidratio" || err != nil || ratio <= 0 || ratio > 1 {
		t.Errorf("OTEL_TRACES_SAMPLER %q, OTEL_TRACES_SAMPLER_ARG %q; want parentbased_traceidratio and a ratio in (0, 1]", env["OTEL_TRACES_SAMPLER"], env["OTEL_TRACES_SAMPLER_ARG"])
	}
	u, err := url.Parse(endpoint)
	if err != nil || u.Port() != "4317" {
		t.Fatalf("OTEL_EXPORTER_OTLP_ENDPOINT %q; want an OTLP/gRPC endpoint on 4317", endpoint)
	}
	// host is service.namespace[.svc…]: the egress rule admits that namespace.
	labels := strings.Split(u.Hostname(), ".")
	if len(labels) < 2 {
		t.Fatalf("endpoint host %q names no namespace", u.Hostname())
	}
	found := false
	for _, rule := range r.NetworkPolicy.Spec.Egress {
		for _, p := range rule.Ports {
			if p.Port.String() != "4317" {
				continue
			}
			for _, peer := range rule.To {
				if peer.NamespaceSelector != nil && peer.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] == labels[1] {
					found = true
				}
			}
		}
	}
	if !found {
		t.Errorf("no egress rule lets 4317 out to namespace %s, the endpoint's", labels[1])
	}
	for _, e := range render(t, ".").container(t).Env {
		if strings.HasPrefix(e.Name, "OTEL_") {
			t.Errorf("the base sets %s: tracing must be off unless the component is used", e.Name)
		}
	}
}

func TestService(t *testing.T) {
	r := render(t, ".")
	c := r.container(t)
	ports := map[string]int32{}
	for _, p := range r.Service.Spec.Ports {
		ports[p.Name] = p.Port
		if p.TargetPort.String() != p.Name || containerPort(c, p.TargetPort) == 0 {
			t.Errorf("port %s targets %s; want the container port of the same name", p.Name, p.TargetPort.String())
		}
	}
	if ports["grpc"] != 9090 || ports["http"] != 8080 || ports["metrics"] != 9102 || len(ports) != 3 {
		t.Errorf("got ports %v; want grpc 9090, http 8080 and metrics 9102, not the probe port", ports)
	}
	for k, v := range r.Service.Spec.Selector {
		if r.Deployment.Spec.Template.Labels[k] != v {
			t.Errorf("selector %v does not select the pods %v", r.Service.Spec.Selector, r.Deployment.Spec.Template.Labels)
		}
	}
}

// TestPolicy: the shipped policy, as mounted, is one the facade loads.
func TestPolicy(t *testing.T) {
	p := render(t, ".").policy(t)
	if len(p.Rules) == 0 || p.Allows("", "P00000001", "DeleteClientGrant") {
		t.Errorf("got %+v; want rules that admit no caller without an identity", p)
	}
}

// TestPodDisruptionBudget: a drain takes at most one replica at a time,
// however many the HPA has scaled to.
func TestPodDisruptionBudget(t *testing.T) {
	p := render(t, ".").PDB
	if p.Spec.MinAvailable != nil || p.Spec.MaxUnavailable == nil || p.Spec.MaxUnavailable.String() != "1" || p.Spec.Selector.MatchLabels["app.kubernetes.io/name"] != "dintero-facade" {
		t.Errorf("got %+v; want maxUnavailable 1 for the facade's pods", p.Spec)
	}
}

func TestHorizontalPodAutoscaler(t *testing.T) {
	r := render(t, ".")
	h := r.HPA
	if h.Spec.ScaleTargetRef.Kind != "Deployment" || h.Spec.ScaleTargetRef.Name != r.Deployment.Name {
		t.Errorf("scales %+v; want the facade's Deployment", h.Spec.ScaleTargetRef)
	}
	if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 2 || h.Spec.MaxReplicas < *h.Spec.MinReplicas {
		t.Errorf("replicas %v..%d; want at least 2", h.Spec.MinReplicas, h.Spec.MaxReplicas)
	}
	if len(h.Spec.Metrics) != 1 || h.Spec.Metrics[0].Resource == nil || h.Spec.Metrics[0].Resource.Name != corev1.ResourceCPU {
		t.Errorf("metrics %+v; want CPU", h.Spec.Metrics)
	}
}

// TestCredentialsExample: the example Secret, which the kustomization
// leaves out, has the name and key the Deployment reads, and placeholders
// only.
func TestCredentialsExample(t *testing.T) {
	s := credentialsExample(t)
	r := render(t, ".")
	vol := r.volume(t, "credentials")
	if vol.Secret == nil || vol.Secret.SecretName != s.Name {
		t.Errorf("the credentials volume reads %+v; the example Secret is %q", vol.VolumeSource, s.Name)
	}
	file := path.Base(flags(t, r.container(t))["credentials-file"])
	content, ok := s.StringData[file]
	if !ok {
		t.Fatalf("the example Secret has no key %q, the file --credentials-file reads", file)
	}
	if !strings.Contains(content, "client_secret: REPLACE_ME") || strings.Count(content, "REPLACE_ME") != 2 {
		t.Errorf("the example's credentials must be placeholders:\n%s", content)
	}
	if want := fmt.Sprintf("-n %s create secret generic %s", kustomization(t).Namespace, s.Name); !strings.Contains(string(mustRead(t, "credentials.example.yaml")), want) {
		t.Errorf("credentials.example.yaml does not show %q", want)
	}
}

func mustRead(t testing.TB, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
