// Package deploy_test checks the Kubernetes manifests offline, by decoding
// them into the Kubernetes API types, against the facade's own flags and
// policy parser: what ships is the secure setup (mutual TLS, a policy, a
// network policy, probes and metrics on plain listeners of their own).
package deploy_test

import (
	"os"
	"os/exec"
	"path"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"

	"github.com/dintero-facade/dintero-facade/service"
)

// decode reads a manifest strictly: an unknown or misspelt field fails.
func decode(t *testing.T, file string, into any) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(b, into); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

func deployment(t *testing.T) (appsv1.Deployment, corev1.Container) {
	t.Helper()
	var d appsv1.Deployment
	decode(t, "deployment.yaml", &d)
	if len(d.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("got %d containers; want 1", len(d.Spec.Template.Spec.Containers))
	}
	return d, d.Spec.Template.Spec.Containers[0]
}

// flags returns the container's --name=value arguments.
func flags(t *testing.T, c corev1.Container) map[string]string {
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

func TestDeployment(t *testing.T) {
	d, c := deployment(t)
	if d.Kind != "Deployment" || d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Errorf("want a Deployment with 2 replicas, got %s with %v", d.Kind, d.Spec.Replicas)
	}
	if got, want := d.Spec.Selector.MatchLabels["app.kubernetes.io/name"], d.Spec.Template.Labels["app.kubernetes.io/name"]; got == "" || got != want {
		t.Errorf("selector %q does not match the pod labels %q", got, want)
	}
	pod := d.Spec.Template.Spec
	if pod.SecurityContext == nil || pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot {
		t.Error("the pod must run as non-root")
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Error("the pod must not mount a service account token: it talks to no Kubernetes API")
	}
	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" {
		t.Errorf("container security context %+v; want read-only root, no privilege escalation, non-root, all capabilities dropped", sc)
	}
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if c.Resources.Requests.Name(r, "").IsZero() || c.Resources.Limits.Name(r, "").IsZero() {
			t.Errorf("%s needs a request and a limit", r)
		}
	}
	if pod.TerminationGracePeriodSeconds == nil || *pod.TerminationGracePeriodSeconds < 25 {
		t.Errorf("terminationGracePeriodSeconds %v; want room for --shutdown-delay 5s + --shutdown-grace 20s", pod.TerminationGracePeriodSeconds)
	}
}

// TestSecureByDefault: both service listeners need a client certificate,
// the facade's credentials are bound by a policy, and the probes and the
// metrics have plain listeners of their own.
func TestSecureByDefault(t *testing.T) {
	_, c := deployment(t)
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
		if want := ":" + itoa(ports[name]); f[flag] != want {
			t.Errorf("--%s is %q; want %s, the %s port", flag, f[flag], want, name)
		}
	}
	if len(ports) != 4 {
		t.Errorf("got ports %v; want grpc, http, health and metrics", ports)
	}
	// The kubelet has no client certificate: both probes go to the plain
	// probe listener, never to a service port.
	if r := c.ReadinessProbe; r == nil || r.GRPC == nil || r.GRPC.Port != ports["health"] || r.GRPC.Service == nil || *r.GRPC.Service != "dintero.auth.v1.AuthService" {
		t.Errorf("readiness: got %+v; want gRPC health of dintero.auth.v1.AuthService on the health port", r)
	}
	if l := c.LivenessProbe; l == nil || l.HTTPGet == nil || l.HTTPGet.Path != "/healthz" || l.HTTPGet.Port.String() != "health" || l.HTTPGet.Scheme == corev1.URISchemeHTTPS {
		t.Errorf("liveness: got %+v; want plain GET /healthz on the health port", l)
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
	volumes := map[string]corev1.Volume{}
	d, _ := deployment(t)
	for _, v := range d.Spec.Template.Spec.Volumes {
		volumes[v.Name] = v
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
		v := volumes[want.volume]
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
	_, c := deployment(t)
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
	var cert struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name string `json:"name"`
		} `json:"metadata"`
		Spec struct {
			SecretName  string   `json:"secretName"`
			Duration    string   `json:"duration"`
			RenewBefore string   `json:"renewBefore"`
			Usages      []string `json:"usages"`
			DNSNames    []string `json:"dnsNames"`
			PrivateKey  struct {
				Algorithm      string `json:"algorithm"`
				Size           int    `json:"size"`
				RotationPolicy string `json:"rotationPolicy"`
			} `json:"privateKey"`
			IssuerRef struct {
				Kind string `json:"kind"`
				Name string `json:"name"`
			} `json:"issuerRef"`
		} `json:"spec"`
	}
	decode(t, "certificate.yaml", &cert)
	if cert.APIVersion != "cert-manager.io/v1" || cert.Kind != "Certificate" || cert.Spec.SecretName != "dintero-facade-tls" {
		t.Errorf("got %s %s into %s; want a cert-manager Certificate into dintero-facade-tls", cert.APIVersion, cert.Kind, cert.Spec.SecretName)
	}
	if !slices.Contains(cert.Spec.Usages, "server auth") || cert.Spec.IssuerRef.Name == "" || cert.Spec.PrivateKey.RotationPolicy != "Always" {
		t.Errorf("got %+v; want a server certificate from an issuer, its key rotated", cert.Spec)
	}
	var s corev1.Service
	decode(t, "service.yaml", &s)
	if !slices.Contains(cert.Spec.DNSNames, s.Name) {
		t.Errorf("dnsNames %v lack the Service's name %s", cert.Spec.DNSNames, s.Name)
	}
}

// TestNetworkPolicy: the service ports admit only the callers'
// namespaces, /metrics only the scraper, and egress only DNS and HTTPS.
func TestNetworkPolicy(t *testing.T) {
	var np networkingv1.NetworkPolicy
	decode(t, "networkpolicy.yaml", &np)
	d, _ := deployment(t)
	if np.Spec.PodSelector.MatchLabels["app.kubernetes.io/name"] != d.Spec.Template.Labels["app.kubernetes.io/name"] {
		t.Errorf("selects %v; want the facade's pods", np.Spec.PodSelector.MatchLabels)
	}
	if !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) || !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) {
		t.Errorf("policy types %v; want Ingress and Egress", np.Spec.PolicyTypes)
	}
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
		for _, p := range rule.Ports {
			egressPorts = append(egressPorts, p.Port.String())
		}
	}
	slices.Sort(egressPorts)
	if want := []string{"443", "53", "53"}; !slices.Equal(egressPorts, want) {
		t.Errorf("egress ports %v; want DNS and HTTPS only", egressPorts)
	}
}

func TestService(t *testing.T) {
	var s corev1.Service
	decode(t, "service.yaml", &s)
	ports := map[string]int32{}
	for _, p := range s.Spec.Ports {
		ports[p.Name] = p.Port
		if p.TargetPort.String() != p.Name {
			t.Errorf("port %s targets %s; want the container port of the same name", p.Name, p.TargetPort.String())
		}
	}
	if ports["grpc"] != 9090 || ports["http"] != 8080 || ports["metrics"] != 9102 || len(ports) != 3 {
		t.Errorf("got ports %v; want grpc 9090, http 8080 and metrics 9102, not the probe port", ports)
	}
	if s.Spec.Selector["app.kubernetes.io/name"] != "dintero-facade" {
		t.Errorf("selector %v", s.Spec.Selector)
	}
}

// TestPolicy: the shipped policy is one the facade loads.
func TestPolicy(t *testing.T) {
	var cm corev1.ConfigMap
	decode(t, "policy.yaml", &cm)
	p, err := service.ParsePolicy([]byte(cm.Data["policy.yaml"]))
	if err != nil {
		t.Fatalf("the facade refuses the shipped policy: %v", err)
	}
	if len(p.Rules) == 0 || p.Allows("", "P00000001", "DeleteClientGrant") {
		t.Errorf("got %+v; want rules that admit no caller without an identity", p)
	}
}

func TestPodDisruptionBudget(t *testing.T) {
	var p policyv1.PodDisruptionBudget
	decode(t, "pdb.yaml", &p)
	if p.Spec.MinAvailable == nil || p.Spec.MinAvailable.IntValue() != 1 || p.Spec.Selector.MatchLabels["app.kubernetes.io/name"] != "dintero-facade" {
		t.Errorf("got %+v; want minAvailable 1 for the facade's pods", p.Spec)
	}
}

func TestHorizontalPodAutoscaler(t *testing.T) {
	var h autoscalingv2.HorizontalPodAutoscaler
	decode(t, "hpa.yaml", &h)
	if h.Spec.ScaleTargetRef.Kind != "Deployment" || h.Spec.ScaleTargetRef.Name != "dintero-facade" {
		t.Errorf("scales %+v; want the facade's Deployment", h.Spec.ScaleTargetRef)
	}
	if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 2 || h.Spec.MaxReplicas < *h.Spec.MinReplicas {
		t.Errorf("replicas %v..%d; want at least 2", h.Spec.MinReplicas, h.Spec.MaxReplicas)
	}
	if len(h.Spec.Metrics) != 1 || h.Spec.Metrics[0].Resource == nil || h.Spec.Metrics[0].Resource.Name != corev1.ResourceCPU {
		t.Errorf("metrics %+v; want CPU", h.Spec.Metrics)
	}
}

// TestCredentialsExample: the example Secret has the key the Deployment
// reads, and placeholders only.
func TestCredentialsExample(t *testing.T) {
	var s corev1.Secret
	decode(t, "credentials.example.yaml", &s)
	d, c := deployment(t)
	var vol corev1.Volume
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.Name == "credentials" {
			vol = v
		}
	}
	if vol.Secret == nil || vol.Secret.SecretName != s.Name {
		t.Errorf("the credentials volume reads %+v; the example Secret is %q", vol.VolumeSource, s.Name)
	}
	file := path.Base(flags(t, c)["credentials-file"])
	content, ok := s.StringData[file]
	if !ok {
		t.Fatalf("the example Secret has no key %q, the file --credentials-file reads", file)
	}
	if !strings.Contains(content, "client_secret: REPLACE_ME") || strings.Count(content, "REPLACE_ME") != 2 {
		t.Errorf("the example's credentials must be placeholders:\n%s", content)
	}
}

func itoa(n int32) string { return strconv.Itoa(int(n)) }
