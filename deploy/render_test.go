package deploy_test

import (
	"os"
	"path"
	"path/filepath"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/dintero-facade/dintero-facade/service"
)

// certificate is cert-manager's Certificate, the fields the facade relies on.
type certificate struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string            `json:"name"`
		Namespace string            `json:"namespace"`
		Labels    map[string]string `json:"labels"`
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

// object is one rendered object, as kubectl apply -k would send it.
type object struct {
	Kind, Name, Namespace string
	Labels                map[string]string
	YAML                  []byte
}

// rendered is a kustomization's output, decoded strictly into the
// Kubernetes API types: an unknown or misspelt field fails.
type rendered struct {
	Objects       []object
	Deployment    appsv1.Deployment
	Service       corev1.Service
	NetworkPolicy networkingv1.NetworkPolicy
	PDB           policyv1.PodDisruptionBudget
	HPA           autoscalingv2.HorizontalPodAutoscaler
	ConfigMaps    map[string]corev1.ConfigMap
	Secrets       map[string]corev1.Secret
	Certificates  map[string]certificate
}

// render runs the kustomization in dir with kustomize's Go API, which
// kubectl apply -k embeds.
func render(t testing.TB, dir string) *rendered {
	t.Helper()
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize %s: %v", dir, err)
	}
	r := &rendered{ConfigMaps: map[string]corev1.ConfigMap{}, Secrets: map[string]corev1.Secret{}, Certificates: map[string]certificate{}}
	seen := map[string]int{}
	for _, res := range m.Resources() {
		b, err := res.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		o := object{Kind: res.GetKind(), Name: res.GetName(), Namespace: res.GetNamespace(), Labels: res.GetLabels(), YAML: b}
		r.Objects = append(r.Objects, o)
		seen[o.Kind]++
		strict := func(into any) {
			if err := yaml.UnmarshalStrict(b, into); err != nil {
				t.Fatalf("rendered %s %s: %v", o.Kind, o.Name, err)
			}
		}
		switch o.Kind {
		case "Deployment":
			strict(&r.Deployment)
		case "Service":
			strict(&r.Service)
		case "NetworkPolicy":
			strict(&r.NetworkPolicy)
		case "PodDisruptionBudget":
			strict(&r.PDB)
		case "HorizontalPodAutoscaler":
			strict(&r.HPA)
		case "ConfigMap":
			var cm corev1.ConfigMap
			strict(&cm)
			r.ConfigMaps[cm.Name] = cm
		case "Secret":
			var s corev1.Secret
			strict(&s)
			r.Secrets[s.Name] = s
		case "Certificate":
			var c certificate
			strict(&c)
			r.Certificates[c.Metadata.Name] = c
		default:
			t.Errorf("rendered a %s (%s) the tests know nothing of", o.Kind, o.Name)
		}
	}
	for _, kind := range []string{"Deployment", "Service", "NetworkPolicy", "PodDisruptionBudget", "HorizontalPodAutoscaler"} {
		if seen[kind] != 1 {
			t.Fatalf("%s renders %d %s objects; want 1", dir, seen[kind], kind)
		}
	}
	return r
}

// container is the Deployment's one container.
func (r *rendered) container(t testing.TB) corev1.Container {
	t.Helper()
	cs := r.Deployment.Spec.Template.Spec.Containers
	if len(cs) != 1 {
		t.Fatalf("got %d containers; want 1", len(cs))
	}
	return cs[0]
}

// volume is the pod's volume of that name.
func (r *rendered) volume(t testing.TB, name string) corev1.Volume {
	t.Helper()
	for _, v := range r.Deployment.Spec.Template.Spec.Volumes {
		if v.Name == name {
			return v
		}
	}
	t.Fatalf("the pod has no volume %q", name)
	return corev1.Volume{}
}

// policy is the policy the pod reads: the mounted ConfigMap's key that
// --policy-file names, as the facade parses it.
func (r *rendered) policy(t testing.TB) *service.Policy {
	t.Helper()
	v := r.volume(t, "policy")
	file := path.Base(flags(t, r.container(t))["policy-file"])
	p, err := service.ParsePolicy([]byte(r.ConfigMaps[v.ConfigMap.Name].Data[file]))
	if err != nil {
		t.Fatalf("the facade refuses the rendered policy: %v", err)
	}
	return p
}

// decode reads a manifest file strictly: for the one the kustomization
// leaves out, credentials.example.yaml.
func decode(t testing.TB, file string, into any) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(b, into); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

// credentialsExample is the documented Secret the operator creates out of
// band.
func credentialsExample(t testing.TB) corev1.Secret {
	t.Helper()
	var s corev1.Secret
	decode(t, "credentials.example.yaml", &s)
	return s
}

// stage copies deploy/'s manifests, its components and its go.mod (for
// go tool kustomize) into a new directory's deploy/, with the facade's
// go.mod beside it, which deploy/go.mod's replace names: where a test runs
// the manual's kustomize commands without touching deploy/.
func stage(t testing.TB) string {
	t.Helper()
	root := t.TempDir()
	copyFile := func(from, to string) error {
		b, err := os.ReadFile(from)
		if err != nil {
			return err
		}
		return os.WriteFile(to, b, 0o644)
	}
	err := filepath.WalkDir(".", func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(root, "deploy", p), 0o755)
		}
		if !slices.Contains([]string{".yaml", ".yml"}, filepath.Ext(p)) && p != "go.mod" && p != "go.sum" {
			return nil
		}
		return copyFile(p, filepath.Join(root, "deploy", p))
	})
	for _, f := range []string{"go.mod", "go.sum"} {
		if err == nil {
			err = copyFile(filepath.Join("..", f), filepath.Join(root, f))
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	return root
}
