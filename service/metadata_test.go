package service_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	authv1 "github.com/dintero-facade/dintero-facade/gen/dintero/auth/v1"
)

// apiDoc is the API's reference, whose table of ErrorInfo metadata keys
// must list exactly the keys the code sets.
const apiDoc = "../docs/api.md"

// keyPackages are the packages that build ErrorInfo metadata.
var keyPackages = []string{".", "../internal/gateway"}

// TestMetadataKeysDocumented: docs/api.md's table of ErrorInfo metadata
// keys and the MetadataKey constants are the same set, and the code writes
// no key but through those constants (no string literal indexes a map or
// keys a map[string]string literal in the packages that build ErrorInfo),
// so a key set in code and not documented, or documented and never set,
// fails here.
func TestMetadataKeysDocumented(t *testing.T) {
	declared := map[string]string{} // value → constant
	walkKeyPackages(t, func(fset *token.FileSet, n ast.Node) {
		switch n := n.(type) {
		case *ast.ValueSpec:
			for i, name := range n.Names {
				if strings.HasPrefix(name.Name, "MetadataKey") && i < len(n.Values) {
					if lit, ok := n.Values[i].(*ast.BasicLit); ok {
						v, _ := strconv.Unquote(lit.Value)
						declared[v] = name.Name
					}
				}
			}
		case *ast.IndexExpr:
			if lit, ok := n.Index.(*ast.BasicLit); ok && lit.Kind == token.STRING {
				t.Errorf("%s: the string literal %s indexes a map: use a MetadataKey constant", fset.Position(n.Pos()), lit.Value)
			}
		case *ast.CompositeLit:
			if m, ok := n.Type.(*ast.MapType); ok && isIdent(m.Key, "string") && isIdent(m.Value, "string") {
				for _, e := range n.Elts {
					if kv, ok := e.(*ast.KeyValueExpr); ok {
						if lit, ok := kv.Key.(*ast.BasicLit); ok {
							t.Errorf("%s: the string literal %s keys a map[string]string: use a MetadataKey constant", fset.Position(lit.Pos()), lit.Value)
						}
					}
				}
			}
		}
	})
	documented := documentedKeys(t)
	var inCode []string
	for v := range declared {
		inCode = append(inCode, v)
	}
	slices.Sort(inCode)
	for _, k := range inCode {
		if !lowerCamel.MatchString(k) {
			t.Errorf("metadata key %s (%s) is not lowerCamelCase (AIP-193)", k, declared[k])
		}
		if !slices.Contains(documented, k) {
			t.Errorf("the code sets metadata key %s (%s), which %s's table does not list", k, declared[k], apiDoc)
		}
	}
	for _, k := range documented {
		if _, ok := declared[k]; !ok {
			t.Errorf("%s lists metadata key %s, which no MetadataKey constant declares", apiDoc, k)
		}
	}
	if len(inCode) == 0 {
		t.Error("no MetadataKey constant found")
	}
}

// TestErrorReasonsDocumented: the ErrorInfo reasons are a closed set held
// in three places that must agree: the proto enum dintero.auth.v1.ErrorReason,
// the reason constants of the packages that build ErrorInfo (service's
// ErrorReason…, the gateway's reason…), and docs/api.md's table of
// reasons. A reason set in code but not in the enum, in the enum but never
// set, or either but not documented, fails here; so does a reason written
// as a literal instead of a constant.
func TestErrorReasonsDocumented(t *testing.T) {
	declared := map[string]string{} // value → constant
	walkKeyPackages(t, func(fset *token.FileSet, n ast.Node) {
		switch n := n.(type) {
		case *ast.ValueSpec:
			for i, name := range n.Names {
				if (strings.HasPrefix(name.Name, "ErrorReason") || strings.HasPrefix(name.Name, "reason")) && i < len(n.Values) {
					if lit, ok := n.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
						v, _ := strconv.Unquote(lit.Value)
						declared[v] = name.Name
					}
				}
			}
		case *ast.KeyValueExpr:
			if isIdent(n.Key, "Reason") {
				if _, ok := n.Value.(*ast.BasicLit); ok {
					t.Errorf("%s: a reason written as a literal: use a reason constant", fset.Position(n.Pos()))
				}
			}
		case *ast.CallExpr:
			// failure(op, meta, code, reason, …) and refusal(code, reason, …).
			pos := map[string]int{"failure": 3, "refusal": 1}
			if id, ok := n.Fun.(*ast.Ident); ok {
				if i, ok := pos[id.Name]; ok && i < len(n.Args) {
					if _, ok := n.Args[i].(*ast.BasicLit); ok {
						t.Errorf("%s: %s given a literal reason: use a reason constant", fset.Position(n.Pos()), id.Name)
					}
				}
			}
		}
	})
	documented := documentedReasons(t)
	for v, name := range declared {
		if _, ok := authv1.ErrorReason_value[v]; !ok || v == authv1.ErrorReason_ERROR_REASON_UNSPECIFIED.String() {
			t.Errorf("the code sets reason %s (%s), which the enum ErrorReason does not have", v, name)
		}
	}
	for v, n := range authv1.ErrorReason_value {
		if n == 0 {
			continue
		}
		if _, ok := declared[v]; !ok {
			t.Errorf("the enum ErrorReason has %s, which no reason constant declares", v)
		}
		if !slices.Contains(documented, v) {
			t.Errorf("the enum ErrorReason has %s, which %s's table of reasons does not list", v, apiDoc)
		}
	}
	for _, v := range documented {
		if n, ok := authv1.ErrorReason_value[v]; !ok || n == 0 {
			t.Errorf("%s lists reason %s, which the enum ErrorReason does not have", apiDoc, v)
		}
	}
}

// reasonsTable finds the table between the markers of the reasons.
var reasonsTable = regexp.MustCompile("(?s)<!-- error-reasons:begin -->\n(.*?)<!-- error-reasons:end -->")

// documentedReasons returns the reasons of api.md's table, in its order.
func documentedReasons(t *testing.T) []string {
	t.Helper()
	doc, err := os.ReadFile(apiDoc)
	if err != nil {
		t.Fatal(err)
	}
	m := reasonsTable.FindSubmatch(doc)
	if m == nil {
		t.Fatalf("%s has no table between <!-- error-reasons:begin --> and <!-- error-reasons:end -->", apiDoc)
	}
	var out []string
	for _, line := range strings.Split(string(m[1]), "\n") {
		if k := keyCell.FindStringSubmatch(line); k != nil {
			if slices.Contains(out, k[1]) {
				t.Errorf("%s lists reason %s twice", apiDoc, k[1])
			}
			out = append(out, k[1])
		}
	}
	return out
}

func isIdent(e ast.Expr, name string) bool {
	id, ok := e.(*ast.Ident)
	return ok && id.Name == name
}

// keysTable finds the table between the markers of the metadata keys.
var keysTable = regexp.MustCompile("(?s)<!-- metadata-keys:begin -->\n(.*?)<!-- metadata-keys:end -->")

// keyCell is a table row's first cell, a key in backquotes.
var keyCell = regexp.MustCompile("^\\| `([A-Za-z0-9_]+)` \\|")

// lowerCamel is AIP-193's form of a metadata key: one rule for all.
var lowerCamel = regexp.MustCompile(`^[a-z][a-zA-Z0-9]*$`)

// documentedKeys returns the keys of api.md's table, in its order.
func documentedKeys(t *testing.T) []string {
	t.Helper()
	doc, err := os.ReadFile(apiDoc)
	if err != nil {
		t.Fatal(err)
	}
	m := keysTable.FindSubmatch(doc)
	if m == nil {
		t.Fatalf("%s has no table between <!-- metadata-keys:begin --> and <!-- metadata-keys:end -->", apiDoc)
	}
	var keys []string
	for _, line := range strings.Split(string(m[1]), "\n") {
		if k := keyCell.FindStringSubmatch(line); k != nil {
			if slices.Contains(keys, k[1]) {
				t.Errorf("%s lists %s twice", apiDoc, k[1])
			}
			keys = append(keys, k[1])
		}
	}
	return keys
}

// walkKeyPackages calls visit with every node of the non-test files of the
// packages that build ErrorInfo.
func walkKeyPackages(t *testing.T, visit func(*token.FileSet, ast.Node)) {
	t.Helper()
	fset := token.NewFileSet()
	for _, dir := range keyPackages {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, file := range files {
			if strings.HasSuffix(file, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(fset, file, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			ast.Inspect(f, func(n ast.Node) bool {
				visit(fset, n)
				return true
			})
		}
	}
}
