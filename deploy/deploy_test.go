// Package deploy_test checks the Kubernetes manifests offline, by decoding
// them into the Kubernetes API types.
package deploy_test

import (
	"os"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"
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

func TestDeployment(t *testing.T) {
	var d appsv1.Deployment
	decode(t, "deployment.yaml", &d)
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
	if len(pod.Containers) != 1 {
		t.Fatalf("got %d containers; want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if ports["grpc"] != 9090 || ports["http"] != 8080 {
		t.Errorf("got ports %v; want grpc 9090 and http 8080", ports)
	}
	if r := c.ReadinessProbe; r == nil || r.GRPC == nil || r.GRPC.Port != 9090 {
		t.Errorf("readiness: got %+v; want gRPC health on 9090", r)
	}
	if l := c.LivenessProbe; l == nil || l.HTTPGet == nil || l.HTTPGet.Path != "/healthz" || l.HTTPGet.Port.String() != "http" {
		t.Errorf("liveness: got %+v; want GET /healthz on the http port", l)
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
	secrets := map[string]bool{}
	for _, e := range c.Env {
		if e.Value != "" && (e.Name == "DINTERO_CLIENT_SECRET" || e.Name == "DINTERO_CLIENT_ID") {
			t.Errorf("%s is set in the manifest; it must come from a Secret", e.Name)
		}
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			secrets[e.Name] = true
		}
	}
	for _, n := range []string{"DINTERO_CLIENT_ID", "DINTERO_CLIENT_SECRET", "DINTERO_ACCOUNT_ID"} {
		if !secrets[n] {
			t.Errorf("%s does not come from a Secret", n)
		}
	}
	if pod.TerminationGracePeriodSeconds == nil || *pod.TerminationGracePeriodSeconds < 25 {
		t.Errorf("terminationGracePeriodSeconds %v; want room for --shutdown-delay 5s + --shutdown-grace 20s", pod.TerminationGracePeriodSeconds)
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
	if ports["grpc"] != 9090 || ports["http"] != 8080 {
		t.Errorf("got ports %v; want grpc 9090 and http 8080", ports)
	}
	if s.Spec.Selector["app.kubernetes.io/name"] != "dintero-facade" {
		t.Errorf("selector %v", s.Spec.Selector)
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

func TestSecretExample(t *testing.T) {
	var s corev1.Secret
	decode(t, "secret.example.yaml", &s)
	for _, k := range []string{"client-id", "client-secret", "account-id"} {
		if s.StringData[k] != "REPLACE_ME" {
			t.Errorf("the example Secret's %s must be a placeholder", k)
		}
	}
	// The Deployment reads exactly this Secret's keys.
	var d appsv1.Deployment
	decode(t, "deployment.yaml", &d)
	for _, e := range d.Spec.Template.Spec.Containers[0].Env {
		if ref := e.ValueFrom; ref != nil && ref.SecretKeyRef != nil {
			if ref.SecretKeyRef.Name != s.Name {
				t.Errorf("%s reads Secret %q; the example is %q", e.Name, ref.SecretKeyRef.Name, s.Name)
			}
			if _, ok := s.StringData[ref.SecretKeyRef.Key]; !ok {
				t.Errorf("%s reads key %q, which the example Secret lacks", e.Name, ref.SecretKeyRef.Key)
			}
		}
	}
}
