package main

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"

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
	authorize := doc.Paths["/v1/accounts/{oid}/auth/authorize"]["post"]
	del := doc.Paths["/v1/accounts/{oid}/auth/client-grants/{id}"]["delete"]
	params := map[string]param{}
	for _, p := range authorize.Parameters {
		params[p.Name] = p
	}
	for name, want := range map[string]param{
		"oid":               {In: "path", Required: true, Pattern: "^[PT](?:[0-9]{3}|[0-9]{8})$"},
		"audience":          {In: "query", Required: true},
		"response_type":     {In: "query", Required: true, Enum: []string{"authenticate"}},
		"client_id":         {In: "query", Required: true},
		"verification_code": {In: "query", Required: true},
		"scope":             {In: "query", Enum: []string{"openid"}},
		"state":             {In: "query"},
		"redirect_uri":      {In: "query"},
		"connection":        {In: "query"},
	} {
		got := params[name]
		if got.In != want.In || got.Required != want.Required || !slices.Equal(got.Enum, want.Enum) || got.Pattern != want.Pattern {
			t.Errorf("authorize's %s: got %+v; want %+v", name, got, want)
		}
	}
	if len(params) != 9 {
		t.Errorf("authorize has %d parameters; want 9", len(params))
	}
	for name, op := range map[string]struct {
		Parameters []param             `json:"parameters"`
		Responses  map[string]response `json:"responses"`
	}{"authorize": authorize, "delete": del} {
		if op.Responses["default"].Schema.Ref != "#/definitions/v1ErrorResponse" || op.Responses["200"].Schema.Ref == "" {
			t.Errorf("%s: got responses %+v; want the success and Dintero's error shape", name, op.Responses)
		}
		for _, s := range []string{"400", "401", "403"} {
			if op.Responses[s].Schema.Ref != "#/definitions/v1ErrorResponse" {
				t.Errorf("%s: response %s is not Dintero's error shape", name, s)
			}
		}
	}
	if props := doc.Definitions["v1ErrorBody"].Properties; props["code"] == nil || props["message"] == nil || props["errors"] == nil {
		t.Errorf("the error body has properties %v; want Dintero's code, message and errors", props)
	}
	if del.Parameters[0].Pattern == "" {
		t.Error("DELETE's oid has no pattern")
	}
}
