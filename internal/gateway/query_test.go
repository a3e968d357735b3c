package gateway_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dintero-facade/dintero-facade/internal/dinteromock"
	"github.com/dintero-facade/dintero-facade/internal/dinterotest"
)

// TestGatewayQuery: the gateway refuses query parameters the operation
// does not take, naming them, instead of dropping them unseen; nothing
// reaches Dintero.
func TestGatewayQuery(t *testing.T) {
	e := setup(t, nil)
	e.fake.AddCode("T123", "v1")
	good := url.Values{"audience": {dinteromock.Audience("T123")}, "response_type": {"authenticate"}, "client_id": {dinterotest.App}, "verification_code": {"v1"}}
	with := func(extra url.Values) string {
		q := url.Values{}
		for k, v := range good {
			q[k] = v
		}
		for k, v := range extra {
			q[k] = v
		}
		return q.Encode()
	}
	for _, tc := range []struct {
		name, method, path string
		wantFields         []string
	}{
		{"a typo", http.MethodPost, "/v1/accounts/T123/auth/authorize?" + strings.Replace(with(nil), "verification_code", "verificaton_code", 1), []string{"verificaton_code"}},
		{"nonce", http.MethodPost, "/v1/accounts/T123/auth/authorize?" + with(url.Values{"nonce": {"n"}}), []string{"nonce"}},
		{"two unknown", http.MethodPost, "/v1/accounts/T123/auth/authorize?" + with(url.Values{"b": {"1"}, "a": {"2"}}), []string{"a", "b"}},
		{"the path's oid again", http.MethodPost, "/v1/accounts/T123/auth/authorize?" + with(url.Values{"oid": {"P00000000"}}), []string{"oid"}},
		{"a JSON name", http.MethodPost, "/v1/accounts/T123/auth/authorize?" + strings.Replace(with(nil), "response_type", "responseType", 1), []string{"responseType"}},
		{"a query on DELETE", http.MethodDelete, "/v1/accounts/T123/auth/client-grants/g?force=true", []string{"force"}},
		{"DELETE's id in the query", http.MethodDelete, "/v1/accounts/T123/auth/client-grants/g?id=h", []string{"id"}},
		{"a value twice", http.MethodPost, "/v1/accounts/T123/auth/authorize?" + with(nil) + "&state=a&state=b", []string{"state"}},
		{"the code twice", http.MethodPost, "/v1/accounts/T123/auth/authorize?" + with(url.Values{"verification_code": {"SECRET-CODE-1", "SECRET-CODE-2"}}), []string{"verification_code"}},
		// A name is quoted only when it looks like a field's: a query
		// encoded twice carries the code in a name, and the refusal's
		// message reaches the log.
		{"a query encoded twice", http.MethodPost, "/v1/accounts/T123/auth/authorize?" + strings.Replace(with(nil), "verification_code=v1", "verification_code%3DSECRET-CODE-3", 1), []string{"(a name that is not a field name)"}},
		{"the code as a name", http.MethodPost, "/v1/accounts/T123/auth/authorize?" + with(nil) + "&SECRET-CODE-4", []string{"(a name that is not a field name)"}},
		{"an empty name", http.MethodPost, "/v1/accounts/T123/auth/authorize?" + with(nil) + "&=x", []string{"(a parameter without a name)"}},
		{"twenty unknown", http.MethodPost, "/v1/accounts/T123/auth/authorize?" + with(many(20)), append(firstNames(10), "query")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, body := e.do(t, tc.method, tc.path, e.bearer("T123"))
			e := dinterotest.ParseErrorBody(t, body)
			if code != 400 || e.Code != "INVALID_ARGUMENT" {
				t.Fatalf("got %d %s; want 400 INVALID_ARGUMENT", code, body)
			}
			if strings.Contains(string(body), "SECRET-CODE") {
				t.Errorf("the answer quotes the code: %s", body)
			}
			var fields []string
			for _, item := range e.Errors {
				f, _ := item["field"].(string)
				fields = append(fields, f)
				if !strings.Contains(e.Message, f) {
					t.Errorf("the message %q does not name %s", e.Message, f)
				}
			}
			if tc.wantFields != nil && !slices.Equal(fields, tc.wantFields) {
				t.Errorf("got errors naming %v; want %v", fields, tc.wantFields)
			}
		})
	}
	// A query grpc-gateway cannot parse: its own error, which would quote
	// the bad part, is answered without its message.
	code, _, body := e.do(t, http.MethodPost, "/v1/accounts/T123/auth/authorize?"+with(nil)+"&state=SECRET%zz", e.bearer("T123"))
	if e := dinterotest.ParseErrorBody(t, body); code != 400 || e.Code != "INVALID_ARGUMENT" || strings.Contains(string(body), "zz") {
		t.Errorf("a bad escape: got %d %s; want 400 without the query quoted", code, body)
	}
	if n := e.fake.Count(dinterotest.OpAuthorize) + e.fake.Count(dinterotest.OpDelete); n != 0 {
		t.Errorf("Dintero got %d calls; want none", n)
	}
	if e.fake.Mock.CodeUsed("v1") {
		t.Error("the code was spent")
	}
	if code, _, body := e.do(t, http.MethodPost, "/v1/accounts/T123/auth/authorize?"+with(nil), e.bearer("T123")); code != 200 {
		t.Errorf("the good query: got %d %s", code, body)
	}
	// Each refusal is logged (the DELETEs as audit lines), and so is the
	// good call; none quotes the code.
	if n := len(e.log.Lines(t, "call", "audit")); n != 14 {
		t.Errorf("got %d call lines; want 14", n)
	}
	if strings.Contains(e.log.String(), "SECRET-CODE") {
		t.Error("the log quotes the code")
	}
}

// TestGatewayRefusesBodies: no operation takes a body. A form body to
// authorize, which grpc-gateway would read into the request (up to 10 MB,
// and on to Dintero), is refused before it is read.
func TestGatewayRefusesBodies(t *testing.T) {
	e := setup(t, nil)
	e.fake.AddCode("T123", "v1")
	q := url.Values{"audience": {dinteromock.Audience("T123")}, "response_type": {"authenticate"}, "client_id": {dinterotest.App}}.Encode()

	req, _ := http.NewRequest(http.MethodPost, e.url+"/v1/accounts/T123/auth/authorize?"+q, strings.NewReader("verification_code=v1"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", e.fake.Bearer("T123"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if e := dinterotest.ParseErrorBody(t, body); resp.StatusCode != 413 || !strings.Contains(e.Message, "no body") {
		t.Errorf("a form body: got %d %s; want 413 saying the operation takes no body", resp.StatusCode, body)
	}

	// 9 MiB announced, a few bytes sent: the answer comes without the
	// facade waiting for the rest.
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/accounts/T123/auth/authorize?%s HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\nverification_code=", q, 9<<20)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	res, err := http.ReadResponse(bufioReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to a 9 MiB body before it was sent: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != 413 {
		t.Errorf("a 9 MiB body: got %d; want 413", res.StatusCode)
	}
	if n := e.fake.Count(dinterotest.OpAuthorize); n != 0 {
		t.Errorf("Dintero got %d calls; want none", n)
	}

	long := strings.Repeat("x", 20<<10)
	if code, _, body := e.do(t, http.MethodPost, "/v1/accounts/T123/auth/authorize?"+q+"&state="+long, e.bearer("T123")); code != 431 || !strings.Contains(string(body), "over the limit of 16384 bytes") {
		t.Errorf("a 20 KiB query: got %d %.200s; want 431: over --max-recv-msg-bytes", code, body)
	}
}

func bufioReader(r io.Reader) *bufio.Reader { return bufio.NewReader(r) }

// many returns n unknown parameters, p00 to pNN.
func many(n int) url.Values {
	v := url.Values{}
	for i := range n {
		v.Set(fmt.Sprintf("p%02d", i), "1")
	}
	return v
}

func firstNames(n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("p%02d", i))
	}
	return out
}

// TestGatewayRefusesBytesGRPCCannotCarry: the gateway builds its requests
// in process from the URL's escapes, so a field may hold what a gRPC
// request cannot (bytes that are not UTF-8) or what Dintero's path and
// the audit line should not (a control character). Each is refused 400
// naming the field, and nothing is sent.
func TestGatewayRefusesBytesGRPCCannotCarry(t *testing.T) {
	e := setup(t, nil)
	e.fake.AddGrants("T123", "g")
	e.fake.AddCode("T123", "v1")
	q := url.Values{"audience": {dinteromock.Audience("T123")}, "response_type": {"authenticate"}, "client_id": {dinterotest.App}, "verification_code": {"v1"}}.Encode()
	for _, tc := range []struct{ name, method, path, field string }{
		{"a grant id not UTF-8", http.MethodDelete, "/v1/accounts/T123/auth/client-grants/%FF%FE", "id"},
		{"a grant id with NUL", http.MethodDelete, "/v1/accounts/T123/auth/client-grants/g%00", "id"},
		{"a grant id with a newline", http.MethodDelete, "/v1/accounts/T123/auth/client-grants/g%0Ah", "id"},
		{"a state not UTF-8", http.MethodPost, "/v1/accounts/T123/auth/authorize?" + q + "&state=%FF", "state"},
		{"a client_id not UTF-8", http.MethodPost, "/v1/accounts/T123/auth/authorize?" + strings.Replace(q, "client_id="+dinterotest.App, "client_id=%C3", 1), "client_id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, body := e.do(t, tc.method, tc.path, e.bearer("T123"))
			eb := dinterotest.ParseErrorBody(t, body)
			if code != 400 || len(eb.Errors) != 1 || eb.Errors[0]["field"] != tc.field {
				t.Errorf("got %d %s; want 400 naming %s", code, body, tc.field)
			}
		})
	}
	if n := e.fake.Count(dinterotest.OpAuthorize) + e.fake.Count(dinterotest.OpDelete); n != 0 {
		t.Errorf("Dintero got %d calls; want none", n)
	}
}
