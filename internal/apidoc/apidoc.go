// Package apidoc makes the OpenAPI 3 document of the JSON API from the
// OpenAPI 2 (Swagger) document protoc-gen-openapiv2 generates, and
// validates it: the document client generators take (.ci/generate writes
// it to gen/openapiv3, and generates the Go HTTP client in gen/httpclient
// from it).
package apidoc

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/getkin/kin-openapi/openapi2"
	"github.com/getkin/kin-openapi/openapi2conv"
	"github.com/getkin/kin-openapi/openapi3"
)

// bearerScheme is the security scheme of the caller's Dintero token.
const bearerScheme = "bearer"

// V3 converts the OpenAPI 2 document v2 to OpenAPI 3 with kin-openapi,
// and validates the result. OpenAPI 2 cannot say "bearer token": its
// document declares the token as an apiKey in the Authorization header,
// which V3 states as what it is, an http bearer scheme.
func V3(v2 []byte) (*openapi3.T, error) {
	var doc2 openapi2.T
	if err := json.Unmarshal(v2, &doc2); err != nil {
		return nil, fmt.Errorf("apidoc: reading the OpenAPI 2 document: %w", err)
	}
	doc, err := openapi2conv.ToV3(&doc2)
	if err != nil {
		return nil, fmt.Errorf("apidoc: converting to OpenAPI 3: %w", err)
	}
	s := doc.Components.SecuritySchemes[bearerScheme]
	if s == nil || s.Value == nil || s.Value.Type != "apiKey" || s.Value.In != "header" || s.Value.Name != "Authorization" {
		return nil, fmt.Errorf("apidoc: the document declares no %q apiKey in the Authorization header", bearerScheme)
	}
	s.Value = openapi3.NewSecurityScheme().WithType("http").WithScheme("bearer").WithDescription(s.Value.Description)
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("apidoc: the OpenAPI 3 document is not valid: %w", err)
	}
	return doc, nil
}
