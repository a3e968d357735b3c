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
				return true
			})
		}
	}
	documented := documentedKeys(t)
	var inCode []string
	for v := range declared {
		inCode = append(inCode, v)
	}
	slices.Sort(inCode)
	for _, k := range inCode {
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

func isIdent(e ast.Expr, name string) bool {
	id, ok := e.(*ast.Ident)
	return ok && id.Name == name
}

// keysTable finds the table between the markers of the metadata keys.
var keysTable = regexp.MustCompile("(?s)<!-- metadata-keys:begin -->\n(.*?)<!-- metadata-keys:end -->")

// keyCell is a table row's first cell, a key in backquotes.
var keyCell = regexp.MustCompile("^\\| `([a-z_]+)` \\|")

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
