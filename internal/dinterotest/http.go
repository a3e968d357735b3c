package dinterotest

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"
)

// ErrorBody is the JSON gateway's error body: Dintero's error document,
// with the gRPC status beside.
type ErrorBody struct {
	Code     string           `json:"code"`
	Message  string           `json:"message"`
	Errors   []map[string]any `json:"errors"`
	GrpcCode string           `json:"grpc_code"`
	Details  []map[string]any `json:"details"`
}

// ParseErrorBody reads a body as a client written for Dintero reads it,
// failing the test on another shape.
func ParseErrorBody(t testing.TB, body []byte) ErrorBody {
	t.Helper()
	var doc struct {
		Error *ErrorBody `json:"error"`
	}
	if err := json.Unmarshal(body, &doc); err != nil || doc.Error == nil || doc.Error.Message == "" {
		t.Fatalf("got %s; want Dintero's error document {\"error\": {\"code\", \"message\", \"errors\"}}", body)
	}
	return *doc.Error
}

// Reason returns the reason and metadata of the ErrorInfo among the
// body's details.
func (e ErrorBody) Reason() (string, map[string]any) {
	for _, d := range e.Details {
		if d["@type"] == "type.googleapis.com/google.rpc.ErrorInfo" {
			md, _ := d["metadata"].(map[string]any)
			r, _ := d["reason"].(string)
			return r, md
		}
	}
	return "", nil
}

// Do sends an HTTP request with header through client and returns its
// status, headers and body, failing the test when it cannot.
func Do(t testing.TB, client *http.Client, method, url string, header map[string]string) (int, http.Header, []byte) {
	t.Helper()
	return DoBody(t, client, method, url, nil, header)
}

// DoBody is Do with a request body.
func DoBody(t testing.TB, client *http.Client, method, url string, body io.Reader, header map[string]string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}
