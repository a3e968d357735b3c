//go:build unix

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dintero-facade/dintero-facade/internal/dinterotest"
	"github.com/dintero-facade/dintero-facade/internal/reload"
	"github.com/dintero-facade/dintero-facade/service"
)

// The documents' code blocks, and what makes each one true. Every fenced
// block of README.md and docs/*.md carries, on the line before it, a
// marker that says what it is and so what checks it; a block without one
// fails TestDocBlocks, so that a new example cannot go unchecked:
//
//	<!-- doc:start ENV -->   a command that starts a server of ENV; TestDocExamples runs it as written
//	<!-- doc:run ENV -->     commands run as written against ENV's servers (blank lines part them); each must succeed
//	<!-- doc:fail ENV -->    a mistake's command, run as written against ENV's servers: it must fail, and say what the answer after it shows
//	<!-- doc:answer -->      what the last command of the block before it answers; compared, "…" standing for anything
//	<!-- doc:ci -->          commands .ci/run runs, word for word (TestDocBlocks checks it does)
//	<!-- doc:config FILE --> a credentials-file or policy-file, read by the facade's own reader
//	<!-- doc:dintero -->     commands that need a real Dintero, its token and a deployment: not run
//	<!-- doc:benchmark -->   a benchmark's commands, run by hand on a quiet machine: their packages and flags are checked
//	<!-- doc:output -->      what a command printed (a benchmark's table): nothing to run
//	<!-- doc:record -->      the commands of a past measurement at an earlier commit, its record: not runnable as they are
//	<!-- doc:diagram -->     a diagram
//	<!-- ship:STEP -->       a step of "Shipping it", run by deploy/'s TestShippingDoc and TestContainer
//
// The environments: mock is the README's `go run ./cmd/dintero-facade
// --mock`; dintero-mock is `go run ./cmd/dintero-mock` and the facade
// command it prints. The only change to a command is its addresses:
// localhost:9090, localhost:8080 and 127.0.0.1:8000 become the ports the
// servers got (set to :0 through their variables), so that the tests run
// beside anything else.

// docFiles are the documents whose blocks are checked.
func docFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no docs: %v", err)
	}
	return append([]string{filepath.Join(repoRoot, "README.md")}, files...)
}

// repoRoot is the repository, from this package.
const repoRoot = "../.."

// docBlock is one fenced block of a document.
type docBlock struct {
	file   string
	line   int    // of the opening fence
	lang   string // after the fence
	marker string // the marker's words, such as "doc:run mock"; "" without one
	indent string // the fence's indentation (a list item's)
	text   string // the content, freed of the fence's indentation
}

func (b docBlock) String() string { return fmt.Sprintf("%s:%d", filepath.Base(b.file), b.line) }

// markerLine is a marker: an HTML comment alone on its line.
var markerLine = regexp.MustCompile(`^\s*<!--\s*(\S+(?:\s+[^>]*?)?)\s*-->\s*$`)

// parseBlocks returns file's fenced blocks, with the marker of each (the
// nearest line before its fence that is not blank, when it is a marker).
func parseBlocks(t *testing.T, file string) []docBlock {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	var out []docBlock
	for i := 0; i < len(lines); i++ {
		trimmed := strings.TrimSpace(lines[i])
		if !strings.HasPrefix(trimmed, "```") {
			continue
		}
		blk := docBlock{file: file, line: i + 1, lang: strings.TrimPrefix(trimmed, "```")}
		for j := i - 1; j >= 0; j-- {
			if strings.TrimSpace(lines[j]) == "" {
				continue
			}
			if m := markerLine.FindStringSubmatch(lines[j]); m != nil {
				blk.marker = strings.Join(strings.Fields(m[1]), " ")
			}
			break
		}
		indent := lines[i][:len(lines[i])-len(strings.TrimLeft(lines[i], " "))]
		blk.indent = indent
		var body []string
		closed := false
		for i++; i < len(lines); i++ {
			if strings.TrimSpace(lines[i]) == "```" {
				closed = true
				break
			}
			body = append(body, strings.TrimPrefix(lines[i], indent))
		}
		if !closed {
			t.Fatalf("%s: the block is never closed", blk)
		}
		blk.text = strings.Join(body, "\n") + "\n"
		out = append(out, blk)
	}
	return out
}

// envs are the environments examples run in.
var envs = []string{"mock", "dintero-mock"}

// TestDocBlocks: every block of the documents has a marker, and what the
// marker promises without a server holds: .ci/run runs the doc:ci
// commands, the facade reads the doc:config files, deploy's tests know the
// ship steps, the benchmarks' packages and flags exist, an answer follows
// a command, and each environment is started before it is used.
func TestDocBlocks(t *testing.T) {
	ciRun, err := os.ReadFile(filepath.Join(repoRoot, ".ci", "run"))
	if err != nil {
		t.Fatal(err)
	}
	steps := shipSteps(t)
	benchFlags := facadebenchFlags(t)
	started := map[string]int{}
	count := 0
	for _, file := range docFiles(t) {
		var prev, bench *docBlock
		for _, b := range parseBlocks(t, file) {
			count++
			kind, arg, _ := strings.Cut(b.marker, " ")
			switch kind {
			case "doc:start", "doc:run", "doc:fail":
				if !slices.Contains(envs, arg) {
					t.Errorf("%s: %s %q: the environments are %v", b, kind, arg, envs)
				}
				if b.lang != "sh" {
					t.Errorf("%s: a command block is ```sh", b)
				}
				if kind == "doc:start" {
					started[arg]++
				} else if started[arg] == 0 {
					t.Errorf("%s: runs in %s before any block starts it", b, arg)
				}
			case "doc:answer":
				if prev == nil || (!strings.HasPrefix(prev.marker, "doc:run ") && !strings.HasPrefix(prev.marker, "doc:start ") && !strings.HasPrefix(prev.marker, "doc:fail ")) {
					t.Errorf("%s: an answer must follow a doc:run, doc:fail or doc:start block", b)
				}
			case "doc:ci":
				for _, cmd := range commands(b.text) {
					if !containsLine(string(ciRun), cmd) {
						t.Errorf("%s: .ci/run does not run %q", b, cmd)
					}
				}
			case "doc:config":
				checkConfig(t, b, arg)
			case "doc:output":
				// A report's rounds are those of the benchmark block above
				// it, with its scenario.
				for _, m := range roundsReport.FindAllStringSubmatch(b.text, -1) {
					if bench == nil {
						t.Errorf("%s: a report of %s rounds under no benchmark block", b, m[2])
						continue
					}
					if got := benchRounds(*bench, benchFlags)[m[1]]; !slices.Contains(got, m[2]) {
						t.Errorf("%s: the report says %s rounds; the commands of %s (scenario %q) run %v (facadebench's -rounds defaults to %s)", b, m[2], bench, m[1], got, benchFlags["rounds"])
					}
				}
			case "doc:dintero", "doc:record", "doc:diagram":
			case "doc:benchmark":
				checkBenchmark(t, b, benchFlags)
				bench = &b
			default:
				if step, ok := strings.CutPrefix(kind, "ship:"); ok {
					if !slices.Contains(steps, step) {
						t.Errorf("%s: ship:%s is no step deploy's tests run (%v)", b, step, steps)
					}
					break
				}
				t.Errorf("%s: a block without a marker that says what runs or checks it (see examples_test.go): %q", b, b.marker)
			}
			if heredoc.MatchString(b.text) && b.indent != "" {
				t.Errorf("%s: a block with a heredoc is indented %d spaces (in a list?): pasted from the raw Markdown, its indented end marker does not end the heredoc and the shell waits for input; put the block at column 0", b, len(b.indent))
			}
			prev = &b
		}
	}
	for _, env := range envs {
		if started[env] == 0 {
			t.Errorf("no block starts %s", env)
		}
	}
	if count < 20 {
		t.Errorf("found %d blocks; the parser is broken", count)
	}
}

// heredoc finds a shell here-document (<<EOF, <<-'EOF'), not a here-string
// (<<<) or a shift.
var heredoc = regexp.MustCompile(`(^|[^<])<<-?[ \t]*['"]?[A-Za-z_]`)

// containsLine reports whether text has a line that is cmd, spaces aside.
func containsLine(text, cmd string) bool {
	for _, l := range strings.Split(text, "\n") {
		if strings.Join(strings.Fields(l), " ") == strings.Join(strings.Fields(cmd), " ") {
			return true
		}
	}
	return false
}

// commands splits a block into its commands: blank lines part them, and a
// line ending in a backslash goes on.
func commands(text string) []string {
	var out []string
	for _, chunk := range strings.Split(strings.TrimSpace(text), "\n\n") {
		if c := strings.TrimSpace(chunk); c != "" {
			out = append(out, c)
		}
	}
	return out
}

// shellLines splits a block into the lines the shell reads, a line ending
// in a backslash joined with the next; blank lines are left out.
func shellLines(text string) []string {
	var out []string
	cur := ""
	for _, l := range strings.Split(text, "\n") {
		if c, ok := strings.CutSuffix(l, "\\"); ok {
			cur += c + " "
			continue
		}
		if l = strings.TrimSpace(cur + l); l != "" {
			out = append(out, l)
		}
		cur = ""
	}
	return out
}

// checkConfig reads a doc:config block with the facade's reader of file.
func checkConfig(t *testing.T, b docBlock, file string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "f.yaml")
	if err := os.WriteFile(path, []byte(b.text), 0o600); err != nil {
		t.Fatal(err)
	}
	switch file {
	case "credentials-file":
		creds, err := reload.LoadCredentials(path, nil)
		if err != nil || len(creds) == 0 {
			t.Errorf("%s: --credentials-file refuses it: %v", b, err)
		}
	case "policy-file":
		if _, err := service.LoadPolicy(path); err != nil {
			t.Errorf("%s: --policy-file refuses it: %v", b, err)
		}
	default:
		t.Errorf("%s: doc:config %q: want credentials-file or policy-file", b, file)
	}
}

// shipSteps are the steps deploy's TestShippingDoc runs: its shipSteps.
func shipSteps(t *testing.T) []string {
	t.Helper()
	return stringList(t, filepath.Join(repoRoot, "deploy", "docs_test.go"), "shipSteps")
}

// stringList returns the strings of the composite literal assigned to
// variable name in a Go file.
func stringList(t *testing.T, file, name string) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	ast.Inspect(f, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok || len(vs.Names) != 1 || vs.Names[0].Name != name || len(vs.Values) != 1 {
			return true
		}
		if cl, ok := vs.Values[0].(*ast.CompositeLit); ok {
			for _, e := range cl.Elts {
				if lit, ok := e.(*ast.BasicLit); ok {
					s, _ := strconv.Unquote(lit.Value)
					out = append(out, s)
				}
			}
		}
		return false
	})
	if len(out) == 0 {
		t.Fatalf("%s has no %s", file, name)
	}
	return out
}

// facadebenchFlags are the flags cmd/facadebench defines, each with its
// default as main.go writes it.
func facadebenchFlags(t *testing.T) map[string]string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(repoRoot, "cmd", "facadebench", "main.go"), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok || len(call.Args) < 3 {
			return true
		}
		if sel, ok := call.Fun.(*ast.SelectorExpr); ok && strings.HasSuffix(sel.Sel.Name, "Var") {
			if x, ok := sel.X.(*ast.Ident); ok && x.Name == "flag" {
				if lit, ok := call.Args[1].(*ast.BasicLit); ok {
					s, _ := strconv.Unquote(lit.Value)
					def := ""
					if d, ok := call.Args[2].(*ast.BasicLit); ok {
						def = d.Value
					}
					out[s] = def
				}
			}
		}
		return true
	})
	return out
}

// benchRounds gives the rounds of each facadebench command of a benchmark
// block, by its -scenario ("" for loopback): -rounds, else its default.
func benchRounds(b docBlock, benchFlags map[string]string) map[string][]string {
	out := map[string][]string{}
	for _, cmd := range shellLines(b.text) {
		cmd, _, _ = strings.Cut(cmd, "#")
		words := strings.Fields(cmd)
		if len(words) < 3 || words[0] != "go" || words[1] != "run" || words[2] != "./cmd/facadebench" {
			continue
		}
		scenario, rounds := "", benchFlags["rounds"]
		for i, w := range words[3:] {
			name, value, hasValue := strings.Cut(strings.TrimLeft(w, "-"), "=")
			if !hasValue && 3+i+1 < len(words) {
				value = words[3+i+1]
			}
			switch name {
			case "scenario":
				scenario = value
			case "rounds":
				rounds = value
			}
		}
		if scenario == "loopback" {
			scenario = ""
		}
		out[scenario] = append(out[scenario], rounds)
	}
	return out
}

// roundsClaim finds what a comment or a report's first line says of the
// rounds: "3 rounds", and the report's scenario.
var (
	roundsComment = regexp.MustCompile(`#.*?\b(\d+) rounds\b`)
	roundsReport  = regexp.MustCompile(`(?m)^facadebench(?: -scenario (\w+))?: (?:.*?; )?(\d+) rounds\b`)
)

// checkBenchmark checks a benchmark's commands: facadebench's flags exist,
// and go test's packages are directories with benchmarks.
func checkBenchmark(t *testing.T, b docBlock, benchFlags map[string]string) {
	t.Helper()
	for _, cmd := range shellLines(b.text) {
		if m := roundsComment.FindStringSubmatch(cmd); m != nil {
			if got := benchRounds(docBlock{text: cmd}, benchFlags); !slices.Contains(slices.Concat(slices.Collect(maps.Values(got))...), m[1]) {
				t.Errorf("%s: %q says %s rounds; the command runs %v (facadebench's -rounds defaults to %s)", b, cmd, m[1], got, benchFlags["rounds"])
			}
		}
		cmd, _, _ = strings.Cut(cmd, "#")
		words := strings.Fields(cmd)
		switch {
		case len(words) >= 3 && words[0] == "go" && words[1] == "run" && words[2] == "./cmd/facadebench":
			for _, w := range words[3:] {
				name, _, _ := strings.Cut(strings.TrimLeft(w, "-"), "=")
				if _, ok := benchFlags[name]; strings.HasPrefix(w, "-") && !ok {
					t.Errorf("%s: facadebench has no flag -%s", b, name)
				}
			}
		case len(words) >= 2 && words[0] == "go" && words[1] == "test":
			for _, w := range words[2:] {
				if !strings.HasPrefix(w, "./") {
					continue
				}
				tests, _ := filepath.Glob(filepath.Join(repoRoot, w, "*_test.go"))
				found := false
				for _, f := range tests {
					src, _ := os.ReadFile(f)
					found = found || bytes.Contains(src, []byte("func Benchmark"))
				}
				if !found {
					t.Errorf("%s: %s has no benchmark", b, w)
				}
			}
		default:
			t.Errorf("%s: %q is no benchmark command this test knows", b, cmd)
		}
	}
}

// example is a command of a doc:run or doc:fail block, and the answer
// shown for it.
type example struct {
	block  docBlock
	cmd    string
	answer *docBlock
	// fails: the command must fail (doc:fail), and its answer is what it
	// writes to both outputs.
	fails bool
}

// examplesOf collects, in the documents' order, the start and run blocks
// of env and the answers shown for them.
func examplesOf(t *testing.T, env string) (starts, runs []example) {
	t.Helper()
	for _, file := range docFiles(t) {
		blocks := parseBlocks(t, file)
		for i, b := range blocks {
			kind, arg, _ := strings.Cut(b.marker, " ")
			if arg != env || (kind != "doc:start" && kind != "doc:run" && kind != "doc:fail") {
				continue
			}
			var answer *docBlock
			if i+1 < len(blocks) && blocks[i+1].marker == "doc:answer" {
				answer = &blocks[i+1]
			}
			cmds := commands(b.text)
			for j, c := range cmds {
				e := example{block: b, cmd: c, fails: kind == "doc:fail"}
				if j == len(cmds)-1 {
					e.answer = answer
				}
				if kind == "doc:start" {
					starts = append(starts, e)
				} else {
					runs = append(runs, e)
				}
			}
		}
	}
	return starts, runs
}

// TestDocExamples runs every example of the documents as written, in
// shuffled order, against the servers their doc:start blocks start, and
// compares their answers with those shown.
func TestDocExamples(t *testing.T) {
	grpcurl := grpcurlDir(t)
	for _, env := range envs {
		t.Run(env, func(t *testing.T) {
			starts, runs := examplesOf(t, env)
			if len(starts) == 0 || len(runs) == 0 {
				t.Fatalf("%s has %d start and %d run commands", env, len(starts), len(runs))
			}
			addrs := map[string]string{}
			for _, s := range starts {
				startExample(t, s, addrs, grpcurl)
			}
			rand.Shuffle(len(runs), func(i, j int) { runs[i], runs[j] = runs[j], runs[i] })
			for _, r := range runs {
				t.Logf("%s: %s", r.block, firstLine(r.cmd))
				out := runExample(t, r, addrs, grpcurl)
				if r.answer != nil {
					compareAnswer(t, *r.answer, out, addrs)
					continue
				}
				var doc map[string]any
				if err := json.Unmarshal(out, &doc); err != nil || doc["error"] != nil || len(doc) == 0 {
					t.Errorf("%s: %s answered %s; want a success", r.block, firstLine(r.cmd), out)
				}
			}
		})
	}
}

func firstLine(s string) string { l, _, _ := strings.Cut(s, "\n"); return l }

// docAddrs are the addresses the documents show, each standing for the
// port its server got.
var docAddrs = []string{"localhost:9090", "localhost:8080", "127.0.0.1:8000"}

// substitute puts the servers' addresses in place of the documents'.
func substitute(s string, addrs map[string]string) string {
	for _, a := range docAddrs {
		if got, ok := addrs[a]; ok {
			s = strings.ReplaceAll(s, a, got)
		}
	}
	return s
}

// unsubstitute puts the documents' addresses in place of the servers'.
func unsubstitute(s string, addrs map[string]string) string {
	for _, a := range docAddrs {
		if got, ok := addrs[a]; ok {
			s = strings.ReplaceAll(s, got, a)
		}
	}
	return s
}

// commandEnv is the environment of the examples: this one, less the
// facade's and the mock's variables, with grpcurl on the PATH and the
// servers' ports chosen by the system.
func commandEnv(grpcurl string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "DINTERO_") || strings.HasPrefix(kv, "OTEL_") || strings.HasPrefix(kv, "PATH=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "PATH="+grpcurl+string(os.PathListSeparator)+os.Getenv("PATH"),
		"DINTERO_FACADE_GRPC_ADDR=127.0.0.1:0", "DINTERO_FACADE_HTTP_ADDR=127.0.0.1:0", "DINTERO_MOCK_ADDR=127.0.0.1:0")
}

// The lines by which a started server says where it listens.
var (
	facadeStarting = regexp.MustCompile(`"msg":"dintero-facade starting".*"grpc_addr":"([^"]+)","http_addr":"([^"]+)"`)
	mockServing    = regexp.MustCompile(`serves Dintero's auth API at http://(\S+)/v1`)
	mockCommand    = regexp.MustCompile(`(?m)^\s+(DINTERO_ACCOUNT_ID=.* go run ./cmd/dintero-facade .*)$`)
)

// startExample runs a doc:start command as written, in a process group of
// its own that ends with the test, and waits until it serves.
func startExample(t *testing.T, e example, addrs map[string]string, grpcurl string) {
	t.Helper()
	cmdline := strings.ReplaceAll(e.cmd, "\\\n", " ")
	if printed, ok := addrs["printed"]; ok && strings.Contains(cmdline, "go run ./cmd/dintero-facade") {
		if strings.Join(strings.Fields(cmdline), " ") != printed {
			t.Errorf("%s: the facade command shown is not the one dintero-mock printed:\n%s\n%s", e.block, cmdline, printed)
		}
	}
	cmd := exec.Command("bash", "-c", substitute(cmdline, addrs))
	cmd.Dir = repoRoot
	cmd.Env = commandEnv(grpcurl)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out := &dinterotest.LogBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	})
	// A cold go run compiles first: on a busy machine, minutes.
	deadline := time.Now().Add(5 * time.Minute)
	for {
		select {
		case err := <-exited:
			t.Fatalf("%s: %s exited: %v\n%s", e.block, firstLine(e.cmd), err, out)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s did not start:\n%s", e.block, firstLine(e.cmd), out)
		}
		if m := facadeStarting.FindStringSubmatch(out.String()); m != nil {
			addrs["localhost:9090"], addrs["localhost:8080"] = m[1], m[2]
			waitHealthy(t, e, "http://"+m[2]+"/healthz", out)
			break
		}
		if m := mockServing.FindStringSubmatch(out.String()); m != nil {
			addrs["127.0.0.1:8000"] = m[1]
			if c := mockCommand.FindStringSubmatch(out.String()); c != nil {
				addrs["printed"] = unsubstitute(c[1], addrs)
			}
			checkMockPID(t, out)
			break
		}
	}
	if e.answer != nil {
		compareAnswer(t, *e.answer, []byte(out.String()), addrs)
	}
}

// waitHealthy waits for a facade's /healthz to answer 200: it has warmed up.
func waitHealthy(t *testing.T, e example, url string, out *dinterotest.LogBuffer) {
	t.Helper()
	c := &http.Client{Timeout: time.Second}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := c.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the facade never became healthy:\n%s", e.block, out)
		}
	}
}

// checkMockPID: the PID the mock printed is its own, not go run's: a
// SIGUSR1 to it rotates the signing key, as the banner says.
func checkMockPID(t *testing.T, out *dinterotest.LogBuffer) {
	t.Helper()
	m := regexp.MustCompile(`\(pid (\d+)\)`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("the mock printed no pid:\n%s", out)
	}
	pid, _ := strconv.Atoi(m[1])
	if err := syscall.Kill(pid, syscall.SIGUSR1); err != nil {
		t.Errorf("kill -USR1 %d: %v", pid, err)
	}
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(out.String(), "signing key rotated"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Errorf("kill -USR1 %d did not rotate the mock's key:\n%s", pid, out)
			return
		}
	}
}

// runExample runs a doc:run command as written and returns its output;
// it must succeed. A doc:fail command must fail, on its own (not killed),
// and its output is both of its outputs.
func runExample(t *testing.T, e example, addrs map[string]string, grpcurl string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", substitute(e.cmd, addrs))
	cmd.Dir = repoRoot
	cmd.Env = commandEnv(grpcurl)
	if e.fails {
		out, err := cmd.CombinedOutput()
		if e.answer == nil {
			t.Errorf("%s: a doc:fail block needs the answer that shows what the mistake is told", e.block)
		}
		if ctx.Err() != nil || err == nil {
			t.Errorf("%s: %s: %v (%v); want it to fail, and at once\n%s", e.block, firstLine(e.cmd), err, ctx.Err(), out)
		}
		return out
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Errorf("%s: %s: %v\n%s%s", e.block, firstLine(e.cmd), err, out, stderr.String())
	}
	return out
}

// compareAnswer compares output with the answer shown: JSON as JSON
// (the line of a log whose msg is the answer's, for a server), text line
// by line in order; "…" stands for anything, a time in RFC 3339 for any
// time.
func compareAnswer(t *testing.T, answer docBlock, output []byte, addrs map[string]string) {
	t.Helper()
	output = []byte(unsubstitute(string(output), addrs))
	var want any
	if answer.lang == "json" {
		if err := json.Unmarshal([]byte(answer.text), &want); err != nil {
			t.Fatalf("%s: the answer shown is not JSON: %v", answer, err)
		}
		got, ok := jsonAnswer(output, want)
		if !ok {
			t.Errorf("%s: no answer like the one shown in:\n%s", answer, output)
			return
		}
		if diff := matchJSON(want, got, "$"); diff != "" {
			t.Errorf("%s: the answer differs from the one shown: %s\ngot %s", answer, diff, output)
		}
		return
	}
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(output))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := strings.TrimRight(sc.Text(), "\r")
		var compact bytes.Buffer
		if json.Compact(&compact, []byte(l)) == nil {
			l = compact.String()
		}
		lines = append(lines, l)
	}
	next := 0
	for _, w := range strings.Split(answer.text, "\n") {
		if strings.TrimSpace(w) == "" {
			continue
		}
		found := false
		for ; next < len(lines); next++ {
			if glob(strings.TrimSpace(w), strings.TrimSpace(lines[next])) {
				found, next = true, next+1
				break
			}
		}
		if !found {
			t.Errorf("%s: the output has no line %q after the lines before it:\n%s", answer, w, strings.Join(lines, "\n"))
			return
		}
	}
}

// jsonAnswer finds in output the JSON answer to compare with want: the
// whole output, or the line of a log whose msg is want's.
func jsonAnswer(output []byte, want any) (any, bool) {
	var got any
	if json.Unmarshal(output, &got) == nil {
		return got, true
	}
	msg, _ := want.(map[string]any)["msg"].(string)
	for _, l := range strings.Split(string(output), "\n") {
		var line map[string]any
		if json.Unmarshal([]byte(l), &line) == nil && msg != "" && line["msg"] == msg {
			return line, true
		}
	}
	return nil, false
}

// matchJSON compares got with the answer shown, want, and describes the
// first difference.
func matchJSON(want, got any, at string) string {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return fmt.Sprintf("%s: got %v; want an object", at, got)
		}
		_, open := w["…"]
		for k, v := range w {
			if k == "…" {
				continue
			}
			if _, ok := g[k]; !ok {
				return fmt.Sprintf("%s: no %q", at, k)
			}
			if d := matchJSON(v, g[k], at+"."+k); d != "" {
				return d
			}
		}
		for k := range g {
			if _, ok := w[k]; !ok && !open {
				return fmt.Sprintf("%s: %q, which the answer shown does not have", at, k)
			}
		}
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return fmt.Sprintf("%s: got %v; want %d items", at, got, len(w))
		}
		for i := range w {
			if d := matchJSON(w[i], g[i], fmt.Sprintf("%s[%d]", at, i)); d != "" {
				return d
			}
		}
	case string:
		g, ok := got.(string)
		if _, err := time.Parse(time.RFC3339, w); err == nil && ok {
			if _, err := time.Parse(time.RFC3339, g); err != nil {
				return fmt.Sprintf("%s: got %q; want a time", at, g)
			}
			return ""
		}
		if !ok || !glob(w, g) {
			return fmt.Sprintf("%s: got %v; want %q", at, got, w)
		}
	default:
		if fmt.Sprint(want) != fmt.Sprint(got) {
			return fmt.Sprintf("%s: got %v; want %v", at, got, want)
		}
	}
	return ""
}

// glob matches s against pattern, where "…" stands for any text.
func glob(pattern, s string) bool {
	parts := strings.Split(pattern, "…")
	if len(parts) == 1 {
		return pattern == s
	}
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(s, p)
		if i < 0 {
			return false
		}
		s = s[i+len(p):]
	}
	return strings.HasSuffix(s, parts[len(parts)-1])
}

// grpcurlVersion is the grpcurl the examples run, as .ci/run installs it.
const grpcurlVersion = "v1.9.4"

// grpcurlDir returns a directory holding grpcurl grpcurlVersion: the one
// on the PATH when it is that version, else one installed once (with go
// install) in the user's cache.
func grpcurlDir(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("grpcurl"); err == nil {
		if out, err := exec.Command(p, "-version").CombinedOutput(); err == nil && strings.Contains(string(out), grpcurlVersion) {
			return filepath.Dir(p)
		}
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "dintero-facade-tests", "grpcurl@"+grpcurlVersion)
	if _, err := os.Stat(filepath.Join(dir, "grpcurl")); err == nil {
		return dir
	}
	// Installed beside, then renamed: two test runs at once never see half
	// a binary.
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	tmp, err := os.MkdirTemp(dir, "install-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	install := exec.Command("go", "install", "github.com/fullstorydev/grpcurl/cmd/grpcurl@"+grpcurlVersion)
	install.Env = append(os.Environ(), "GOBIN="+tmp)
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("installing grpcurl %s: %v\n%s", grpcurlVersion, err, out)
	}
	if err := os.Rename(filepath.Join(tmp, "grpcurl"), filepath.Join(dir, "grpcurl")); err != nil {
		t.Fatal(err)
	}
	return dir
}
