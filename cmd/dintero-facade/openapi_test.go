package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"slices"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/dintero-facade/dintero-facade/gen/httpclient"
	"github.com/dintero-facade/dintero-facade/gen/openapiv2"
	"github.com/dintero-facade/dintero-facade/internal/apidoc"
	"github.com/dintero-facade/dintero-facade/internal/dinteromock"
	"github.com/dintero-facade/dintero-facade/internal/dinterotest"
)

// TestOpenAPI: /openapi.json says which parameters are required, the
// values Dintero names, the account id's pattern, and Dintero's error
// shape for every error.
func TestOpenAPI(t *testing.T) {
	fake := dinterotest.New(t)
	f := startFacade(t, fake.URL, nil, nil)
	code, _, body := f.do(t, http.MethodGet, "/openapi.json", nil)
	type param struct {
		Name     string   `json:"name"`
		In       string   `json:"in"`
		Required bool     `json:"required"`
		Enum     []string `json:"enum"`
		Pattern  string   `json:"pattern"`
	}
	type response struct {
		Schema struct {
			Ref string `json:"$ref"`
		} `json:"schema"`
	}
	var doc struct {
		Swagger string `json:"swagger"`
		Paths   map[string]map[string]struct {
			Parameters []param             `json:"parameters"`
			Responses  map[string]response `json:"responses"`
		} `json:"paths"`
		Definitions map[string]struct {
			Properties map[string]any `json:"properties"`
		} `json:"definitions"`
	}
	if err := json.Unmarshal(body, &doc); err != nil || code != 200 || doc.Swagger != "2.0" {
		t.Fatalf("got %d, %v; want a Swagger 2.0 document", code, err)
	}
	if !bytes.Equal(body, openapiv2.JSON) {
		t.Error("/openapi.json is not the generated document")
	}
	authorize := doc.Paths["/v1/accounts/{oid}/auth/authorize"]["post"]
	del := doc.Paths["/v1/accounts/{oid}/auth/client-grants/{id}"]["delete"]
	params := map[string]param{}
	for _, p := range authorize.Parameters {
		params[p.Name] = p
	}
	for name, want := range map[string]param{
		"oid":                        {In: "path", Required: true, Pattern: "^[PT](?:[0-9]{3}|[0-9]{8})$"},
		"audience":                   {In: "query", Required: true},
		"response_type":              {In: "query", Required: true, Enum: []string{"authenticate"}},
		"client_id":                  {In: "query", Required: true},
		"verification_code":          {In: "query", Required: true},
		"scope":                      {In: "query", Enum: []string{"openid"}},
		"state":                      {In: "query"},
		"redirect_uri":               {In: "query"},
		"connection":                 {In: "query"},
		"accept_unverified_id_token": {In: "query"},
		"Grpc-Timeout":               {In: "header"},
		"X-Request-Id":               {In: "header"},
	} {
		got := params[name]
		if got.In != want.In || got.Required != want.Required || !slices.Equal(got.Enum, want.Enum) || got.Pattern != want.Pattern {
			t.Errorf("authorize's %s: got %+v; want %+v", name, got, want)
		}
	}
	if len(params) != 12 {
		t.Errorf("authorize has %d parameters; want 12", len(params))
	}
	// The :redeem custom method takes the same fields as a JSON body, and
	// none in the query.
	var in []string
	for _, p := range doc.Paths["/v1/accounts/{oid}/auth/authorize:redeem"]["post"].Parameters {
		in = append(in, p.Name+":"+p.In)
	}
	if want := []string{"oid:path", "body:body", "Grpc-Timeout:header", "X-Request-Id:header"}; !slices.Equal(in, want) {
		t.Errorf(":redeem has parameters %v; want %v", in, want)
	}
	if props := doc.Definitions["v1ErrorBody"].Properties; props["code"] == nil || props["message"] == nil || props["errors"] == nil {
		t.Errorf("the error body has properties %v; want Dintero's code, message and errors", props)
	}
	if del.Parameters[0].Pattern == "" {
		t.Error("DELETE's oid has no pattern")
	}
}

// statuses are the HTTP statuses the gateway can answer for every
// operation: Dintero's, passed on; the facade's own (its codes' statuses,
// 401 without credentials, 429 busy, 503 circuit open, 504 deadline); and
// the gateway's refusals (400 bad header or query, 405, 413, 431).
var statuses = []string{"200", "400", "401", "403", "404", "405", "409", "413", "422", "429", "431", "500", "502", "503", "504", "default"}

// TestOpenAPIv3: the OpenAPI 2 document converts to an OpenAPI 3 document
// that kin-openapi validates, the one committed in gen/openapiv3; it
// declares the bearer token (optional), the Grpc-Timeout and X-Request-Id
// headers of every operation, and every status the gateway answers, each
// error in Dintero's shape with an X-Request-Id, Retry-After on 429 and
// 503, Allow on 405.
func TestOpenAPIv3(t *testing.T) {
	doc, err := apidoc.V3(openapiv2.JSON)
	if err != nil {
		t.Fatal(err)
	}
	committed, err := os.ReadFile("../../gen/openapiv3/dintero_facade.openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := json.MarshalIndent(doc, "", "  ")
	if !bytes.Equal(append(want, '\n'), committed) {
		t.Error("gen/openapiv3 is not the conversion of gen/openapiv2: run bash .ci/generate")
	}
	if s := doc.Components.SecuritySchemes["bearer"]; s == nil || s.Value.Type != "http" || s.Value.Scheme != "bearer" {
		t.Errorf("got security scheme %+v; want http bearer", s)
	}
	if len(doc.Security) != 2 || len(doc.Security[1]) != 0 {
		t.Errorf("got security %v; want the bearer token or none", doc.Security)
	}
	ops := 0
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			ops++
			for _, h := range []string{"Grpc-Timeout", "X-Request-Id"} {
				if p := op.Parameters.GetByInAndName(openapi3.ParameterInHeader, h); p == nil || p.Required {
					t.Errorf("%s %s: no optional %s header", method, path, h)
				}
			}
			for _, s := range statuses {
				r := op.Responses.Value(s)
				if r == nil {
					t.Errorf("%s %s: no %s response", method, path, s)
					continue
				}
				if r.Value.Headers["X-Request-Id"] == nil {
					t.Errorf("%s %s: the %s response has no X-Request-Id", method, path, s)
				}
				if s == "200" {
					continue
				}
				if ref := r.Value.Content.Get("application/json").Schema.Ref; ref != "#/components/schemas/v1ErrorResponse" {
					t.Errorf("%s %s: the %s response is %s; want Dintero's error shape", method, path, s, ref)
				}
			}
			for s, h := range map[string]string{"429": "Retry-After", "503": "Retry-After", "405": "Allow"} {
				if op.Responses.Value(s).Value.Headers[h] == nil {
					t.Errorf("%s %s: the %s response does not declare %s", method, path, s, h)
				}
			}
		}
	}
	if ops != 3 {
		t.Errorf("got %d operations; want 3 (DELETE, authorize, authorize:redeem)", ops)
	}
}

// TestGeneratedClient: the client oapi-codegen generated from the OpenAPI
// 3 document (gen/httpclient, never edited) calls the facade, serving
// --mock, through the gateway: a deletion, an authorization, and errors
// read as Dintero's shape with their declared headers.
func TestGeneratedClient(t *testing.T) {
	f := startFacade(t, "", []string{"--mock"}, nil)
	c, err := httpclient.NewClientWithResponses(f.httpURL)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	grant := dinteromock.Defaults().Grants[dinteromock.DefaultAccount][2].ID
	rid := "generated-client-1"
	d, err := c.AuthServiceDeleteClientGrantWithResponse(ctx, dinteromock.DefaultAccount, grant, &httpclient.AuthServiceDeleteClientGrantParams{XRequestId: &rid})
	if err != nil {
		t.Fatal(err)
	}
	if d.JSON200 == nil || d.JSON200.Grant == nil || d.JSON200.Grant.Id == nil || *d.JSON200.Grant.Id != grant || d.JSON200.Grant.DeletedAt == nil || d.JSON200.Outcome == nil || *d.JSON200.Outcome != httpclient.OUTCOMEDELETED || d.Headers200 == nil || *d.Headers200.XRequestId != rid {
		t.Errorf("delete: got %d %s; want the deleted grant and the request id", d.StatusCode(), d.Body)
	}
	d, err = c.AuthServiceDeleteClientGrantWithResponse(ctx, dinteromock.DefaultAccount, grant, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d.JSON404 == nil || d.JSON404.Error.Code == nil || *d.JSON404.Error.Code != "NOT_FOUND" || d.Headers404 == nil || d.Headers404.XRequestId == nil {
		t.Errorf("delete again: got %d %s; want 404 in Dintero's shape", d.StatusCode(), d.Body)
	}
	redirect, state, timeout := dinteromock.DefaultCallback, "generated", "5S"
	a, err := c.AuthServiceAuthorizeWithResponse(ctx, dinteromock.DefaultAccount, &httpclient.AuthServiceAuthorizeParams{
		Audience: dinteromock.Audience(dinteromock.DefaultAccount), ResponseType: httpclient.AuthServiceAuthorizeParamsResponseTypeAuthenticate, ClientId: dinteromock.DefaultApp,
		VerificationCode: dinteromock.Defaults().Codes[2].Value, RedirectUri: &redirect, State: &state, GrpcTimeout: &timeout,
	})
	if err != nil {
		t.Fatal(err)
	}
	if a.JSON200 == nil || a.JSON200.IdToken == nil || a.JSON200.IdTokenVerification == nil || *a.JSON200.IdTokenVerification.Result != httpclient.RESULTVERIFIED {
		t.Errorf("authorize: got %d %s; want a verified id_token", a.StatusCode(), a.Body)
	}
	// The :redeem custom method: the code in a JSON body.
	r, err := c.AuthServiceAuthorize2WithResponse(ctx, dinteromock.DefaultAccount, nil, httpclient.AuthServiceAuthorize2JSONRequestBody{
		Audience: dinteromock.Audience(dinteromock.DefaultAccount), ResponseType: httpclient.AuthServiceAuthorizeBodyResponseTypeAuthenticate, ClientId: dinteromock.DefaultApp,
		VerificationCode: dinteromock.Defaults().Codes[1].Value, RedirectUri: &redirect, State: &state,
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.JSON200 == nil || r.JSON200.State == nil || *r.JSON200.State != state || *r.JSON200.IdTokenVerification.Result != httpclient.RESULTVERIFIED {
		t.Errorf(":redeem: got %d %s; want a verified id_token and the state", r.StatusCode(), r.Body)
	}
	bad := "soon"
	a, err = c.AuthServiceAuthorizeWithResponse(ctx, dinteromock.DefaultAccount, &httpclient.AuthServiceAuthorizeParams{
		Audience: dinteromock.Audience(dinteromock.DefaultAccount), ResponseType: httpclient.AuthServiceAuthorizeParamsResponseTypeAuthenticate, ClientId: dinteromock.DefaultApp,
		VerificationCode: "999999", GrpcTimeout: &bad,
	})
	if err != nil {
		t.Fatal(err)
	}
	if a.JSON400 == nil || a.JSON400.Error.Message == nil || !bytes.Contains([]byte(*a.JSON400.Error.Message), []byte("Grpc-Timeout")) {
		t.Errorf("a bad Grpc-Timeout: got %d %s; want 400 naming it", a.StatusCode(), a.Body)
	}
}
