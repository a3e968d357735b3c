package deploy_test

import (
	"bytes"
	"crypto/sha256"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// manual is the operator's manual, whose section "Shipping it" shows the
// commands that ship the facade.
const manual = "../docs/operating.md"

// shipSteps are the marked blocks of "Shipping it", in the order an
// operator runs them.
var shipSteps = []string{"image", "build", "try", "push", "credentials", "overlay", "tracing", "apply", "check", "why", "reloaded"}

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

// kubectlStub stands in for kubectl, which needs a cluster: a shell
// function that records each call's arguments (one call a line, each
// argument ended by \x1f) and, for apply -f -, what it read; for
// logs it prints $KUBECTL_LOGS, as kubectl logs prints a pod's log; it
// succeeds otherwise. create … -o yaml prints a marker, so that a test
// sees what apply -f - was piped.
const kubectlStub = `kubectl() {
  local a call=
  for a in "$@"; do call+="$a"$'\x1f'; done
  # One write, whole, though the two ends of a pipe record at once.
  printf '%s\n' "$call" >> "$KUBECTL_CALLS"
  case " $* " in
    *" logs "*) cat "$KUBECTL_LOGS" ;;
    *" -o yaml "*) printf 'piped-from-create\n' ;;
    *" apply -f - "*) cat >> "$KUBECTL_STDIN" ;;
  esac
}
`

// docRun is what running blocks of the manual did.
type docRun struct {
	// Calls are kubectl's calls, their arguments expanded.
	Calls [][]string
	// Stdin is what kubectl apply -f - read.
	Stdin string
	// Out is the blocks' standard output.
	Out string
}

// runDoc runs script (blocks of the manual) with bash -e in dir, with
// kubectlStub for kubectl, logs as what kubectl logs prints, and env.
func runDoc(t testing.TB, dir, script, logs string, env ...string) (docRun, error) {
	t.Helper()
	tmp := t.TempDir()
	files := map[string]string{"KUBECTL_CALLS": "calls", "KUBECTL_LOGS": "logs", "KUBECTL_STDIN": "stdin"}
	for v, f := range files {
		env = append(env, v+"="+filepath.Join(tmp, f))
	}
	if err := os.WriteFile(filepath.Join(tmp, "logs"), []byte(logs), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", "-ec", kubectlStub+script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Logf("%s\nstderr: %s", script, stderr.String())
	}
	var r docRun
	r.Out = string(out)
	calls, _ := os.ReadFile(filepath.Join(tmp, "calls"))
	for _, l := range strings.Split(strings.TrimSuffix(string(calls), "\n"), "\n") {
		if l != "" {
			r.Calls = append(r.Calls, strings.Split(strings.TrimSuffix(l, "\x1f"), "\x1f"))
		}
	}
	stdin, _ := os.ReadFile(filepath.Join(tmp, "stdin"))
	r.Stdin = string(stdin)
	return r, err
}

// applied is the directory the run's kubectl apply -k would apply.
func (r docRun) applied(t testing.TB) string {
	t.Helper()
	for _, c := range r.Calls {
		if len(c) == 3 && c[0] == "apply" && c[1] == "-k" {
			return c[2]
		}
	}
	t.Fatalf("the manual's blocks ran no kubectl apply -k (calls %q)", r.Calls)
	return ""
}

// snapshot hashes every file under dir, by path.
func snapshot(t testing.TB, dir string) map[string][32]byte {
	t.Helper()
	out := map[string][32]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		out[p] = sha256.Sum256(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// shipOverlay runs the manual's overlay block (and then the blocks named)
// and its apply block on a copy of the clone, with IMAGE set to image,
// checks that they left the copy as it was, and returns the directory they
// would apply.
func shipOverlay(t *testing.T, root, image string, more ...string) string {
	t.Helper()
	before := snapshot(t, root)
	script := shipBlock(t, "overlay")
	for _, b := range more {
		script += shipBlock(t, b)
	}
	r, err := runDoc(t, root, script+shipBlock(t, "apply"), "", "IMAGE="+image)
	if err != nil {
		t.Fatalf("the overlay, %v and apply blocks: %v", more, err)
	}
	if after := snapshot(t, root); !maps.Equal(before, after) {
		t.Errorf("the manual's commands changed the clone: files %v before, %v after", slices.Sorted(maps.Keys(before)), slices.Sorted(maps.Keys(after)))
	}
	dir := r.applied(t)
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(root, dir)
	}
	if rel, err := filepath.Rel(root, dir); err != nil || !strings.HasPrefix(rel, "..") {
		t.Errorf("the overlay %s is inside the clone %s", dir, root)
	}
	return dir
}

// withoutRelease is an object's YAML with the image and the version label
// an overlay sets put back as the base has them.
func withoutRelease(y, image, baseImage, tag string) string {
	y = strings.ReplaceAll(y, image, baseImage)
	return regexp.MustCompile(`(?m)^ *app\.kubernetes\.io/version: "?`+regexp.QuoteMeta(tag)+`"?\n`).ReplaceAllString(y, "")
}

// TestShippingDoc: the manual ships the facade in order (name, build,
// push, credentials, overlay, tracing, apply, check), and what can run
// without a cluster runs, kubectl recorded: the image's name; the
// credentials Secret the Deployment mounts, from a file outside the clone;
// the overlay, rendered as kubectl apply -k renders it, with the image,
// version and policy of the operator's and nothing else changed, leaving
// the clone as it was; the log commands read every pod of the
// Deployment. TestContainer runs the build, try and push blocks, and feeds the
// container's log to the check, why and reloaded blocks.
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
	k := kustomization(t)

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
		outside := filepath.Join(t.TempDir(), "credentials.yaml")
		r, err := runDoc(t, repoRoot, shipBlock(t, "credentials"), "", "CREDENTIALS="+outside)
		if err != nil {
			t.Fatalf("the credentials block: %v", err)
		}
		ns := namespaceManifest(t)
		vol := base.volume(t, "credentials")
		key := path.Base(flags(t, base.container(t))["credentials-file"])
		want := [][]string{
			{"apply", "-f", "deploy/namespace.yaml"},
			{"-n", k.Namespace, "create", "secret", "generic", vol.Secret.SecretName, "--from-file=" + key + "=" + outside, "--dry-run=client", "-o", "yaml"},
			{"apply", "-f", "-"},
		}
		// The two ends of the pipe run at once, so they record in either
		// order.
		sortPipe := func(calls [][]string) [][]string {
			calls = slices.Clone(calls)
			if len(calls) > 1 {
				slices.SortFunc(calls[1:], func(a, b []string) int { return strings.Compare(strings.Join(a, " "), strings.Join(b, " ")) })
			}
			return calls
		}
		if !reflect.DeepEqual(sortPipe(r.Calls), sortPipe(want)) || ns.Name != k.Namespace {
			t.Errorf("the credentials block ran kubectl %q (namespace.yaml makes %s); want %q: the namespace first, then the Secret %s the Deployment mounts, in the kustomization's namespace, under the key --credentials-file reads, from $CREDENTIALS", r.Calls, ns.Name, want, vol.Secret.SecretName)
		}
		if r.Stdin != "piped-from-create\n" {
			t.Errorf("kubectl apply -f - read %q; want create's output, so that the one command creates and updates", r.Stdin)
		}
	})

	t.Run("overlay", func(t *testing.T) {
		const image, tag = "registry.example.org:5000/team/dintero-facade:v9.8.7-3-gabcdef", "v9.8.7-3-gabcdef"
		root := stage(t)
		dir := shipOverlay(t, root, image)
		r := render(t, dir)
		if got := r.container(t).Image; got != image {
			t.Errorf("kubectl apply -k %s would run image %q; want %q", dir, got, image)
		}
		for _, labels := range []map[string]string{r.Deployment.Labels, r.Deployment.Spec.Template.Labels, r.Service.Labels} {
			if labels["app.kubernetes.io/version"] != tag {
				t.Errorf("labels %v; want app.kubernetes.io/version %s", labels, tag)
			}
		}
		// The image and the version changed, and nothing else.
		if len(r.Objects) != len(base.Objects) {
			t.Fatalf("%s renders %d objects; deploy/ %d", dir, len(r.Objects), len(base.Objects))
		}
		baseImage := base.container(t).Image
		for i, o := range r.Objects {
			b := base.Objects[i]
			if o.Kind != b.Kind || o.Name != b.Name || withoutRelease(string(o.YAML), image, baseImage, tag) != string(b.YAML) {
				t.Errorf("%s %s differs from deploy/'s beyond the image and version:\n%s", o.Kind, o.Name, o.YAML)
			}
		}

		// The operator's policy, which the next release keeps.
		policyFile := filepath.Join(dir, "policy.yaml")
		const caller = "spiffe://cluster.local/ns/billing/sa/refunder"
		edited := strings.Replace(string(mustRead(t, policyFile)), "rules:\n", "rules:\n      - identity: "+caller+"\n        accounts: [\"P00000001\"]\n        operations: [DeleteClientGrant]\n", 1)
		if err := os.WriteFile(policyFile, []byte(edited), 0o644); err != nil {
			t.Fatal(err)
		}
		const next = "registry.example.org:5000/team/dintero-facade:v9.9.0"
		if again := shipOverlay(t, root, next); again != dir {
			t.Fatalf("the next release's overlay is %s; want %s", again, dir)
		}
		r = render(t, dir)
		p := r.policy(t)
		if r.container(t).Image != next || !p.Allows(caller, "P00000001", "DeleteClientGrant") {
			t.Errorf("after the next release's overlay: image %s, policy %+v; want %s and the operator's rule kept", r.container(t).Image, p.Rules, next)
		}
	})

	t.Run("logs", func(t *testing.T) {
		// The log commands read every pod of the Deployment, whole, in its
		// namespace, each line named by its pod.
		for _, name := range []string{"check", "why", "reloaded"} {
			r, _ := runDoc(t, repoRoot, shipBlock(t, name), "")
			var logs []string
			for _, c := range r.Calls {
				if slices.Contains(c, "logs") {
					logs = c
				}
			}
			selector := map[string]string{}
			for i, a := range logs {
				if a == "-l" && i+1 < len(logs) {
					for _, kv := range strings.Split(logs[i+1], ",") {
						k, v, _ := strings.Cut(kv, "=")
						selector[k] = v
					}
				}
			}
			if !slices.Contains(logs, "--prefix") || len(selector) == 0 || !slices.Contains(logs, k.Namespace) ||
				(!slices.Contains(logs, "--tail=-1") && !slices.ContainsFunc(logs, func(a string) bool { return strings.HasPrefix(a, "--since=") })) {
				t.Errorf("ship:%s runs kubectl %q; want logs of every pod (-l), --prefix, the whole log (--tail=-1, as -l keeps 10 lines) or --since, in namespace %s", name, logs, k.Namespace)
			}
			for key, v := range selector {
				if base.Deployment.Spec.Template.Labels[key] != v {
					t.Errorf("ship:%s selects %v; the pods are labelled %v", name, selector, base.Deployment.Spec.Template.Labels)
				}
			}
		}
	})
}

// namespaceManifest is namespace.yaml, which the credentials step applies.
func namespaceManifest(t testing.TB) corev1.Namespace {
	t.Helper()
	var ns corev1.Namespace
	decode(t, "namespace.yaml", &ns)
	return ns
}
