package deploy_test

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"debug/buildinfo"
	"debug/elf"
	"encoding/json"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// repoRoot is the facade's module, which the image is built from.
const repoRoot = ".."

// instruction is one Dockerfile instruction: its keyword and arguments.
type instruction struct {
	Keyword string
	Args    []string
}

// stages reads the Dockerfile into its stages' instructions, joining
// continued lines and skipping comments.
func stages(t testing.TB) [][]instruction {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var out [][]instruction
	var line string
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if line == "" && (l == "" || strings.HasPrefix(l, "#")) {
			continue
		}
		if cont, ok := strings.CutSuffix(l, `\`); ok {
			line += cont + " "
			continue
		}
		line += l
		f := strings.Fields(line)
		line = ""
		in := instruction{Keyword: strings.ToUpper(f[0]), Args: f[1:]}
		if in.Keyword == "FROM" {
			out = append(out, nil)
		}
		if len(out) == 0 {
			if in.Keyword == "ARG" {
				continue
			}
			t.Fatalf("Dockerfile: %s before FROM", in.Keyword)
		}
		out[len(out)-1] = append(out[len(out)-1], in)
	}
	return out
}

// buildStage is the stage named build, which compiles the facade.
func buildStage(t testing.TB) []instruction {
	t.Helper()
	for _, s := range stages(t) {
		if f := s[0].Args; len(f) == 3 && strings.EqualFold(f[1], "AS") && f[2] == "build" {
			return s
		}
	}
	t.Fatal("Dockerfile has no stage named build")
	return nil
}

// copies are the build stage's COPY instructions from the build context:
// each source (as Docker cleans it) and its destination.
func copies(t testing.TB, stage []instruction) (sources []string, dest map[string]string) {
	t.Helper()
	dest = map[string]string{}
	for _, in := range stage {
		if in.Keyword != "COPY" && in.Keyword != "ADD" {
			continue
		}
		args := in.Args
		for len(args) > 0 && strings.HasPrefix(args[0], "--") {
			if strings.HasPrefix(args[0], "--from") {
				args = nil
				break
			}
			args = args[1:]
		}
		if len(args) < 2 {
			continue
		}
		d := args[len(args)-1]
		srcs := args[:len(args)-1]
		for _, src := range srcs {
			src = path.Clean(src)
			sources = append(sources, src)
			// A directory's contents go into d; a file goes into d when d
			// is a directory (a trailing slash, or several sources), else
			// becomes d.
			info, err := os.Stat(filepath.Join(repoRoot, filepath.FromSlash(src)))
			switch {
			case err != nil:
				t.Errorf("Dockerfile: COPY %s: %v", src, err)
			case !info.IsDir() && (strings.HasSuffix(d, "/") || len(srcs) > 1):
				dest[src] = path.Join(d, path.Base(src))
			default:
				dest[src] = path.Clean(d)
			}
		}
	}
	return sources, dest
}

// ignored reports whether .dockerignore keeps file (a slash path relative
// to the context) out of the build context.
func ignored(t testing.TB) func(file string) bool {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatal(err)
	}
	return func(file string) bool {
		m, err := pm.MatchesOrParentMatches(file)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
}

// covered reports whether the COPY sources bring file into the build.
func covered(sources []string, file string) bool {
	for _, s := range sources {
		if s == "." || file == s || strings.HasPrefix(file, s+"/") {
			return true
		}
	}
	return false
}

// TestDockerfileCopiesEveryPackage: the build stage copies go.mod, go.sum
// and the directory of every package of this module that the facade
// imports, as go list -deps finds them now (so a package moved or added
// is checked too), and .dockerignore keeps none of them out.
func TestDockerfileCopiesEveryPackage(t *testing.T) {
	sources, _ := copies(t, buildStage(t))
	isIgnored := ignored(t)
	cmd := exec.Command("go", "list", "-deps", "-f", "{{with .Module}}{{if .Main}}{{$.Dir}}{{end}}{{end}}", "./cmd/dintero-facade")
	cmd.Dir = repoRoot
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	need := []string{"go.mod", "go.sum"}
	for _, dir := range strings.Fields(string(out)) {
		rel, err := filepath.Rel(root, dir)
		if err != nil {
			t.Fatal(err)
		}
		need = append(need, filepath.ToSlash(rel))
	}
	if len(need) < 4 {
		t.Fatalf("go list found packages %v; want the facade's", need)
	}
	for _, n := range need {
		if !covered(sources, n) {
			t.Errorf("the Dockerfile's build stage does not COPY %s, which dintero-facade needs (COPY sources: %v)", n, sources)
		}
		if isIgnored(n) {
			t.Errorf(".dockerignore keeps %s, which dintero-facade needs, out of the build context", n)
		}
	}
}

// TestDockerfileBuildsWhatImageBuilds: the Dockerfile's build stage, given
// only what it copies from the build context, makes the same files as
// .ci/image from the whole tree, byte for byte: the same binary from the
// same inputs (one set of flags: .ci/image's rootfs step, which the build
// stage runs), and the last stage is the image .ci/image builds.
func TestDockerfileBuildsWhatImageBuilds(t *testing.T) {
	build := buildStage(t)
	var run string
	for _, in := range build {
		if in.Keyword == "RUN" && strings.Contains(strings.Join(in.Args, " "), ".ci/image rootfs") {
			run = strings.Join(in.Args, " ")
		}
	}
	if !strings.HasSuffix(run, ".ci/image rootfs /rootfs") {
		t.Fatalf("the build stage does not make its files with .ci/image rootfs /rootfs (got RUN %q)", run)
	}
	all := stages(t)
	last := all[len(all)-1]
	if strings.Join(last[0].Args, " ") != "scratch" || !containsInstruction(last, "COPY --from=build /rootfs/ /") {
		t.Errorf("the last stage %v is not FROM scratch with COPY --from=build /rootfs/ /", last)
	}

	// The build context, as Docker would send it, then the COPY lines.
	sources, dest := copies(t, build)
	isIgnored := ignored(t)
	context := t.TempDir()
	for _, src := range sources {
		err := filepath.WalkDir(filepath.Join(repoRoot, src), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(repoRoot, p)
			if err != nil {
				return err
			}
			rel = filepath.ToSlash(rel)
			if isIgnored(rel) {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if d.IsDir() {
				return nil
			}
			target := filepath.Join(context, filepath.FromSlash(dest[src]), strings.TrimPrefix(strings.TrimPrefix(rel, src), "/"))
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			return os.WriteFile(target, b, info.Mode().Perm())
		})
		if err != nil {
			t.Fatalf("COPY %s: %v", src, err)
		}
	}

	fromDockerfile := rootfs(t, context)
	fromImage := rootfs(t, repoRoot)
	if len(fromImage) < 4 {
		t.Fatalf(".ci/image rootfs made %v; want the binary, the CA bundle, passwd and group", slices.Sorted(maps.Keys(fromImage)))
	}
	for name, sum := range fromImage {
		if fromDockerfile[name] != sum {
			t.Errorf("%s differs between the Dockerfile's build and .ci/image's", name)
		}
	}
	if len(fromDockerfile) != len(fromImage) {
		t.Errorf("the Dockerfile's build made %v; .ci/image made %v", slices.Sorted(maps.Keys(fromDockerfile)), slices.Sorted(maps.Keys(fromImage)))
	}
}

func containsInstruction(stage []instruction, want string) bool {
	for _, in := range stage {
		if in.Keyword+" "+strings.Join(in.Args, " ") == want {
			return true
		}
	}
	return false
}

// rootfs runs .ci/image rootfs in dir and returns the files it made, by
// path, with their modes and contents hashed.
func rootfs(t testing.TB, dir string) map[string][32]byte {
	t.Helper()
	out := t.TempDir()
	cmd := exec.Command("bash", ".ci/image", "rootfs", out)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "VERSION=image-test")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: .ci/image rootfs: %v\n%s", dir, err, b)
	}
	files := map[string][32]byte{}
	err := filepath.WalkDir(out, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(out, p)
		files[rel] = sha256.Sum256(append(b, []byte(info.Mode().String())...))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(mustRead(t, filepath.Join(out, "etc", "passwd")), []byte("nonroot:x:65532:65532:")) ||
		!bytes.Contains(mustRead(t, filepath.Join(out, "etc", "group")), []byte("nonroot:x:65532:")) {
		t.Errorf("/etc/passwd and /etc/group do not name the user and group 65532")
	}
	if !x509.NewCertPool().AppendCertsFromPEM(mustRead(t, filepath.Join(out, "etc", "ssl", "certs", "ca-certificates.crt"))) {
		t.Errorf("the image's CA bundle holds no certificate")
	}
	// Built with the Go release the image ships, whatever Go runs the
	// test.
	info, err := buildinfo.ReadFile(filepath.Join(out, "dintero-facade"))
	if err != nil {
		t.Fatal(err)
	}
	if want := goRelease(t); info.GoVersion != want {
		t.Errorf("the image's binary is built with %s; want %s, go.mod's toolchain line", info.GoVersion, want)
	}
	// Static: FROM scratch has no dynamic loader.
	bin, err := elf.Open(filepath.Join(out, "dintero-facade"))
	if err != nil {
		t.Fatal(err)
	}
	defer bin.Close()
	for _, p := range bin.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("the binary needs a dynamic loader, which the image lacks")
		}
	}
	return files
}

// goRelease is the Go release the image ships: go.mod's toolchain line.
func goRelease(t testing.TB) string {
	t.Helper()
	cmd := exec.Command("go", "mod", "edit", "-json")
	cmd.Dir = repoRoot
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go mod edit -json: %v", err)
	}
	var m struct{ Toolchain string }
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^go1\.\d+\.\d+$`).MatchString(m.Toolchain) {
		t.Fatalf("go.mod's toolchain line is %q; want the exact Go release the image ships, such as go1.26.10", m.Toolchain)
	}
	return m.Toolchain
}

// TestImageGoRelease: one Go release ships, go.mod's toolchain line. The
// Dockerfile's build stage starts FROM it (so .ci/image's build step, which
// it runs, fetches nothing), and .ci/image, where the Go at hand is another
// release and the release cannot be fetched, stops and names both rather
// than ship another (rootfs checks the binary it builds otherwise).
func TestImageGoRelease(t *testing.T) {
	release := goRelease(t)
	from := buildStage(t)[0].Args[0]
	m := regexp.MustCompile(`^golang:(\d+\.\d+\.\d+)(-.*)?$`).FindStringSubmatch(from)
	if m == nil || "go"+m[1] != release {
		t.Errorf("the Dockerfile's build stage is FROM %s; want golang:%s, go.mod's toolchain line", from, strings.TrimPrefix(release, "go"))
	}

	local := exec.Command("go", "env", "GOVERSION")
	local.Env = append(os.Environ(), "GOTOOLCHAIN=local")
	have, err := local.Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(have)) == release {
		t.Logf("the Go at hand is %s, the release shipped: nothing to refuse", release)
		return
	}
	// No proxy and an empty module cache: the release cannot be had.
	cmd := exec.Command("bash", ".ci/image", "rootfs", t.TempDir())
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "GOPROXY=off", "GOMODCACHE="+t.TempDir(), "GOTOOLCHAIN=local", "VERSION=image-test")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf(".ci/image rootfs built with %s at hand and %s unavailable; want it refused:\n%s", strings.TrimSpace(string(have)), release, out)
	}
	for _, want := range []string{release, strings.TrimSpace(string(have)), "toolchain line"} {
		if !strings.Contains(string(out), want) {
			t.Errorf(".ci/image's refusal does not name %s:\n%s", want, out)
		}
	}
}

// TestDockerfileExposesEveryPort: the image declares every port the
// Deployment's container does.
func TestDockerfileExposesEveryPort(t *testing.T) {
	all := stages(t)
	var exposed []int32
	for _, in := range all[len(all)-1] {
		if in.Keyword != "EXPOSE" {
			continue
		}
		for _, a := range in.Args {
			n, err := strconv.ParseInt(strings.TrimSuffix(a, "/tcp"), 10, 32)
			if err != nil {
				t.Fatalf("EXPOSE %s: %v", a, err)
			}
			exposed = append(exposed, int32(n))
		}
	}
	for _, p := range render(t, ".").container(t).Ports {
		if !slices.Contains(exposed, p.ContainerPort) {
			t.Errorf("the Dockerfile does not EXPOSE %d (%s), a port of the Deployment's container", p.ContainerPort, p.Name)
		}
	}
}

// TestCredentialsIgnored: a credentials.yaml in the clone, where the
// manual's commands run, is neither committed by git add -A nor sent to a
// builder in the Dockerfile's build context.
func TestCredentialsIgnored(t *testing.T) {
	isIgnored := ignored(t)
	for _, f := range []string{"credentials.yaml", "deploy/credentials.yaml", "cmd/dintero-facade/credentials.yaml"} {
		if !isIgnored(f) {
			t.Errorf(".dockerignore sends %s to the builder", f)
		}
		cmd := exec.Command("git", "check-ignore", "--no-index", "-q", f)
		cmd.Dir = repoRoot
		if err := cmd.Run(); err != nil {
			t.Errorf("git does not ignore %s (git check-ignore: %v)", f, err)
		}
	}
	cmd := exec.Command("git", "check-ignore", "--no-index", "-q", "deploy/credentials.example.yaml")
	cmd.Dir = repoRoot
	if err := cmd.Run(); err == nil {
		t.Error("git ignores deploy/credentials.example.yaml, the example")
	}
}
