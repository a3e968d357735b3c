package deploy_test

import (
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// manual is the operator's manual, whose section "Shipping it" shows the
// commands that ship the facade.
const manual = "../docs/operating.md"

// shipSteps are the marked blocks of "Shipping it", in the order an
// operator runs them.
var shipSteps = []string{"image", "build", "push", "credentials", "apply", "tracing", "check"}

// shipBlock returns the sh block after <!-- ship:name --> in the manual,
// its lines freed of the list's indentation.
func shipBlock(t testing.TB, name string) string {
	t.Helper()
	lines := strings.Split(string(mustRead(t, manual)), "\n")
	for i, l := range lines {
		if strings.TrimSpace(l) != "<!-- ship:"+name+" -->" {
			continue
		}
		for j := i + 1; j < len(lines); j++ {
			fence := strings.TrimSpace(lines[j])
			if fence == "" {
				continue
			}
			if fence != "```sh" {
				t.Fatalf("%s: ship:%s is not followed by a sh block", manual, name)
			}
			indent := lines[j][:len(lines[j])-len(strings.TrimLeft(lines[j], " "))]
			var out []string
			for _, b := range lines[j+1:] {
				if strings.TrimSpace(b) == "```" {
					return strings.Join(out, "\n") + "\n"
				}
				out = append(out, strings.TrimPrefix(b, indent))
			}
			t.Fatalf("%s: ship:%s's block is not closed", manual, name)
		}
	}
	t.Fatalf("%s has no <!-- ship:%s --> block", manual, name)
	return ""
}

// TestShippingDoc: the manual ships the facade in order (name, build,
// push, credentials, apply, check), and what can run without a cluster
// runs: the image's name, the overlay that sets it, rendered as kubectl
// apply -k renders it, and the credentials Secret the Deployment mounts.
// TestTracingComponent runs the tracing block, TestContainer the build and
// push blocks, and stands in for the check.
func TestShippingDoc(t *testing.T) {
	doc := string(mustRead(t, manual))
	last := -1
	for _, s := range shipSteps {
		i := strings.Index(doc, "<!-- ship:"+s+" -->")
		if i < last {
			t.Errorf("%s: ship:%s comes before the step it follows", manual, s)
		}
		last = i
	}
	base := render(t, ".")

	t.Run("image", func(t *testing.T) {
		cmd := exec.Command("bash", "-ec", shipBlock(t, "image")+`printf %s "$IMAGE"`)
		cmd.Dir = repoRoot
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("the IMAGE line: %v", err)
		}
		name, tag, _ := strings.Cut(string(out), ":")
		if registry, _, ok := strings.Cut(name, "/"); !ok || !strings.Contains(registry, ".") || tag == "" {
			t.Errorf("IMAGE=%s; want registry/name:version", out)
		}
	})

	t.Run("credentials", func(t *testing.T) {
		block := strings.ReplaceAll(shipBlock(t, "credentials"), "\\\n", " ")
		apply := regexp.MustCompile(`kubectl apply -f deploy/(\S+)`).FindStringSubmatch(block)
		if apply == nil {
			t.Fatalf("the credentials step creates no namespace first:\n%s", block)
		}
		var ns corev1.Namespace
		decode(t, apply[1], &ns)
		m := regexp.MustCompile(`kubectl -n (\S+) create secret generic (\S+) +--from-file=([^=\s]+)=`).FindStringSubmatch(block)
		if m == nil {
			t.Fatalf("the credentials step creates no Secret from a file:\n%s", block)
		}
		vol := base.volume(t, "credentials")
		want := []string{base.Namespace.Name, base.Namespace.Name, vol.Secret.SecretName, path.Base(flags(t, base.container(t))["credentials-file"])}
		if got := []string{ns.Name, m[1], m[2], m[3]}; ns.Kind != "Namespace" || !reflect.DeepEqual(got, want) {
			t.Errorf("the credentials step makes namespace %s, then Secret %s/%s with key %s; want %v", got[0], got[1], got[2], got[3], want)
		}
	})

	t.Run("apply", func(t *testing.T) {
		const image = "registry.example.org:5000/team/dintero-facade:v9.8.7-3-gabcdef"
		root := stage(t)
		dir := runUntilApply(t, root, shipBlock(t, "apply"), "IMAGE="+image)
		r := render(t, dir)
		if got := r.container(t).Image; got != image {
			t.Errorf("kubectl apply -k %s would run image %q; want %q", dir, got, image)
		}
		// The image changed, and nothing else.
		if len(r.Objects) != len(base.Objects) {
			t.Fatalf("%s renders %d objects; deploy/ %d", dir, len(r.Objects), len(base.Objects))
		}
		baseImage := base.container(t).Image
		for i, o := range r.Objects {
			b := base.Objects[i]
			if o.Kind != b.Kind || o.Name != b.Name || strings.ReplaceAll(string(o.YAML), image, baseImage) != string(b.YAML) {
				t.Errorf("%s %s differs from deploy/'s beyond the image", o.Kind, o.Name)
			}
		}
	})
}

// runUntilApply runs block in root with bash, up to its kubectl apply -k
// if it has one, and returns the directory that would be applied.
func runUntilApply(t testing.TB, root, block string, env ...string) string {
	t.Helper()
	script, dir, _ := strings.Cut(block, "kubectl apply -k ")
	cmd := exec.Command("bash", "-ec", script)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", block, err, out)
	}
	return filepath.Join(root, strings.TrimSpace(dir))
}
