//go:build ignore

// Command openapi3 writes the JSON API's OpenAPI 3 document, converted and
// validated by internal/apidoc, from the OpenAPI 2 document on stdin to
// stdout. .ci/generate runs it.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/dintero-facade/dintero-facade/internal/apidoc"
)

func main() {
	v2, err := io.ReadAll(os.Stdin)
	if err == nil {
		var doc any
		if doc, err = apidoc.V3(v2); err == nil {
			var out []byte
			if out, err = json.MarshalIndent(doc, "", "  "); err == nil {
				_, err = os.Stdout.Write(append(out, '\n'))
			}
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "openapi3:", err)
		os.Exit(1)
	}
}
