//go:build ignore

// vulnreport reads govulncheck's JSON from stdin and decides: a finding in
// any module of the project's (not the standard library) fails; findings in
// the standard library are listed, and fail only when the Dockerfile's Go
// release does not fix them. Run: go run .ci/vulnreport.go Dockerfile < scan.json
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

type finding struct {
	OSV          string `json:"osv"`
	FixedVersion string `json:"fixed_version"`
	Trace        []struct {
		Module   string `json:"module"`
		Package  string `json:"package"`
		Function string `json:"function"`
	} `json:"trace"`
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: go run .ci/vulnreport.go Dockerfile < scan.json")
		os.Exit(2)
	}
	df, err := os.ReadFile(os.Args[1])
	if err != nil {
		fail(err)
	}
	m := regexp.MustCompile(`FROM golang:(\d+\.\d+\.\d+)`).FindSubmatch(df)
	if m == nil {
		fail(fmt.Errorf("%s: no FROM golang:X.Y.Z line", os.Args[1]))
	}
	imageGo := string(m[1])

	type key struct{ osv, module string }
	level := map[key]string{}
	fixed := map[key]string{}
	dec := json.NewDecoder(os.Stdin)
	for {
		var msg struct {
			Finding *finding `json:"finding"`
		}
		if err := dec.Decode(&msg); err == io.EOF {
			break
		} else if err != nil {
			fail(err)
		}
		f := msg.Finding
		if f == nil || len(f.Trace) == 0 {
			continue
		}
		t := f.Trace[0]
		k := key{f.OSV, t.Module}
		l := "required"
		if t.Function != "" {
			l = "called"
		} else if t.Package != "" && level[k] != "called" {
			l = "imported"
		}
		if rank(l) > rank(level[k]) {
			level[k] = l
		}
		fixed[k] = f.FixedVersion
	}
	keys := make([]key, 0, len(level))
	for k := range level {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].osv < keys[j].osv })
	bad := false
	for _, k := range keys {
		fix := fixed[k]
		verdict := "fails CI: upgrade the module"
		if k.module == "stdlib" {
			verdict = "stdlib of the Go that ran the scan; the Dockerfile builds on go" + imageGo
			if fix == "" || newer(strings.TrimPrefix(fix, "v"), imageGo) {
				verdict = "stdlib, NOT fixed by the Dockerfile's go" + imageGo + ": raise it"
				bad = true
			}
		} else {
			bad = true
		}
		fmt.Printf("%s %s (%s, fixed in %s): %s\n", k.osv, k.module, level[k], orNone(fix), verdict)
	}
	if len(keys) == 0 {
		fmt.Println("no vulnerabilities found")
	}
	if bad {
		os.Exit(1)
	}
}

func rank(l string) int {
	return map[string]int{"": 0, "required": 1, "imported": 2, "called": 3}[l]
}

// newer reports whether Go version a is newer than b (both X.Y.Z).
func newer(a, b string) bool {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < 3; i++ {
		x, y := atoi(pa, i), atoi(pb, i)
		if x != y {
			return x > y
		}
	}
	return false
}

func atoi(p []string, i int) int {
	if i >= len(p) {
		return 0
	}
	n, _ := strconv.Atoi(p[i])
	return n
}

func orNone(s string) string {
	if s == "" {
		return "no release"
	}
	return s
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "vulnreport:", err)
	os.Exit(2)
}
