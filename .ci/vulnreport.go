//go:build ignore

// vulnreport reads govulncheck's JSON from stdin and decides. Of a scan of
// the shipped binary (govulncheck -mode binary on what .ci/image builds, so
// its standard library is the Go release the image ships), every finding
// fails. Of a scan of the module's packages (source mode, with the Go at
// hand), a finding in a module fails, and one in the standard library is
// listed only: it is the scanning Go's library, not the shipped one, which
// the binary's scan judges.
//
//	go run .ci/vulnreport.go shipped < binary.json
//	go run .ci/vulnreport.go source < source.json
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

type finding struct {
	OSV          string `json:"osv"`
	FixedVersion string `json:"fixed_version"`
	Trace        []struct {
		Module   string `json:"module"`
		Version  string `json:"version"`
		Package  string `json:"package"`
		Function string `json:"function"`
	} `json:"trace"`
}

func main() {
	if len(os.Args) != 2 || (os.Args[1] != "shipped" && os.Args[1] != "source") {
		fmt.Fprintln(os.Stderr, "usage: go run .ci/vulnreport.go shipped|source < scan.json")
		os.Exit(2)
	}
	shipped := os.Args[1] == "shipped"

	type key struct{ osv, module string }
	level := map[key]string{}
	fixed := map[key]string{}
	version := map[key]string{}
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
		version[k] = t.Version
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
		switch {
		case k.module == "stdlib" && shipped:
			verdict = "fails CI: the shipped binary's Go " + orNone(version[k]) + " has it; raise go.mod's toolchain line and the Dockerfile's FROM golang: to a release that fixes it"
		case k.module == "stdlib":
			verdict = "the scanning Go's standard library (" + orNone(version[k]) + "), not the shipped one: the binary's scan judges that"
		}
		if strings.HasPrefix(verdict, "fails") {
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
