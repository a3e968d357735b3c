package gateway_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	authv1 "github.com/dintero-facade/dintero-facade/gen/dintero/auth/v1"
	"github.com/dintero-facade/dintero-facade/internal/dinteromock"
	"github.com/dintero-facade/dintero-facade/internal/dinterotest"
	"github.com/dintero-facade/dintero-facade/internal/gateway"
	"github.com/dintero-facade/dintero-facade/service"
)

// headerLimit is the gateway's header limit in these tests, as
// --max-recv-msg-bytes sets it by default.
const headerLimit = 16 << 10

// serveGateway serves the gateway over srv as the facade does: with the
// header limit headerLimit, behind an http.Server whose MaxHeaderBytes is
// gateway.ServerMaxHeaderBytes of it.
func serveGateway(t *testing.T, srv authv1.AuthServiceServer, o gateway.Options) string {
	t.Helper()
	ic, err := service.Interceptor(service.InterceptorOptions{Log: discardLog(), Audit: discardLog()})
	if err != nil {
		t.Fatal(err)
	}
	h, err := gateway.New(context.Background(), func(r grpc.ServiceRegistrar) { authv1.RegisterAuthServiceServer(r, srv) }, ic, o)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(h)
	hs.Config.MaxHeaderBytes = gateway.ServerMaxHeaderBytes(o.MaxHeaderBytes)
	hs.Start()
	t.Cleanup(func() {
		hs.Close()
		http.DefaultClient.CloseIdleConnections()
	})
	return hs.URL
}

// answering is an AuthService whose methods fail with st, or answer when
// st is nil; it records the request ids it saw.
type answering struct {
	authv1.UnimplementedAuthServiceServer
	st  *status.Status
	ids chan string
}

func (a *answering) seen(ctx context.Context) {
	if a.ids != nil {
		a.ids <- metadata.ValueFromIncomingContext(ctx, "x-request-id")[0]
	}
}

func (a *answering) DeleteClientGrant(ctx context.Context, r *authv1.DeleteClientGrantRequest) (*authv1.DeleteClientGrantResponse, error) {
	a.seen(ctx)
	if a.st != nil {
		return nil, a.st.Err()
	}
	return &authv1.DeleteClientGrantResponse{Grant: &authv1.ClientGrant{Id: r.GetId()}}, nil
}

func (a *answering) Authorize(ctx context.Context, _ *authv1.AuthorizeRequest) (*authv1.AuthorizeResponse, error) {
	a.seen(ctx)
	if a.st != nil {
		return nil, a.st.Err()
	}
	return &authv1.AuthorizeResponse{Location: "https://app.example.com/cb"}, nil
}

// send makes a request with a body and headers, and returns its answer.
func send(t *testing.T, method, url string, body io.Reader, header map[string]string) (int, http.Header, []byte) {
	t.Helper()
	return dinterotest.DoBody(t, http.DefaultClient, method, url, body, header)
}

// authorizeQuery is a valid query of Authorize.
var authorizeQuery = url.Values{"audience": {dinteromock.Audience("T123")}, "response_type": {"authenticate"}, "client_id": {dinterotest.App}, "verification_code": {"v1"}}.Encode()

const (
	deletePath    = "/v1/accounts/T123/auth/client-grants/g"
	authorizePath = "/v1/accounts/T123/auth/authorize"
	redeemPath    = "/v1/accounts/T123/auth/authorize:redeem"
)

// TestRetryAfter: a 429 or a 503 whose status says when to retry
// (RetryInfo) carries that wait in Retry-After, in whole seconds rounded
// up; one that does not say, and any other status, carries none.
func TestRetryAfter(t *testing.T) {
	srv := &answering{}
	base := serveGateway(t, srv, gateway.Options{MaxQuery: headerLimit, MaxHeaderBytes: headerLimit})
	withWait := func(code codes.Code, httpStatus string, wait time.Duration) *status.Status {
		info := &errdetails.ErrorInfo{Reason: "R", Domain: service.ErrorDomain, Metadata: map[string]string{service.MetadataKeyDinteroHTTPStatus: httpStatus}}
		st, err := status.New(code, "m").WithDetails(info, &errdetails.RetryInfo{RetryDelay: durationpb.New(wait)})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	for _, tc := range []struct {
		name     string
		st       *status.Status
		wantHTTP int
		want     string
	}{
		{"Dintero's 429, 3 s", withWait(codes.ResourceExhausted, "429", 3*time.Second), 429, "3"},
		{"Dintero's 429, 2.2 s", withWait(codes.ResourceExhausted, "429", 2200*time.Millisecond), 429, "3"},
		{"Dintero's 503, 30 s", withWait(codes.Unavailable, "503", 30*time.Second), 503, "30"},
		{"a 500 that says when", withWait(codes.Internal, "500", 3*time.Second), 500, ""},
		{"the facade busy", status.New(codes.ResourceExhausted, "busy"), 429, ""},
		{"a 503 that does not say", status.New(codes.Unavailable, "down"), 503, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv.st = tc.st
			code, h, body := send(t, http.MethodDelete, base+deletePath, nil, nil)
			if code != tc.wantHTTP || h.Get("Retry-After") != tc.want || len(h.Values("Retry-After")) > 1 {
				t.Errorf("got %d, Retry-After %q; want %d, %q (%s)", code, h.Values("Retry-After"), tc.wantHTTP, tc.want, body)
			}
		})
	}
}

// refusalCase is a request the gateway itself refuses, and what it must
// answer.
type refusalCase struct {
	name      string
	method    string
	path      string
	body      io.Reader
	header    map[string]string
	wantHTTP  int
	wantCode  string
	wantInMsg string
	wantField string // the BadRequest field, when one is named
	wantAllow string
	authorize bool // the path is Authorize's: verification_code_sent must be false
}

// TestGatewayRefusals: what the gateway refuses before a call, over real
// HTTP: each answer is Dintero's error shape with the status the case
// needs (405 with Allow, 413 and 431 with the limit in the message, 400
// naming the header), an X-Request-Id, and, on Authorize's path,
// verification_code_sent false. Nothing reaches the service.
func TestGatewayRefusals(t *testing.T) {
	srv := &answering{ids: make(chan string, 10)}
	base := serveGateway(t, srv, gateway.Options{MaxQuery: headerLimit, MaxHeaderBytes: headerLimit})
	big := strings.Repeat("x", 20000)
	for _, tc := range []refusalCase{
		{name: "405 on DELETE's path", method: http.MethodGet, path: deletePath, wantHTTP: 405, wantCode: "METHOD_NOT_ALLOWED", wantInMsg: "takes DELETE", wantAllow: "DELETE"},
		{name: "405 on Authorize's path", method: http.MethodGet, path: authorizePath + "?" + authorizeQuery, wantHTTP: 405, wantCode: "METHOD_NOT_ALLOWED", wantAllow: "POST", authorize: true},
		{name: "404", method: http.MethodDelete, path: "/v1/accounts/T123/nothing-here", wantHTTP: 404, wantCode: "NOT_FOUND", wantInMsg: "/openapi.json"},
		{name: "404 off /v1", method: http.MethodGet, path: "/v2/whatever", wantHTTP: 404, wantCode: "NOT_FOUND"},
		{name: "a body on Authorize", method: http.MethodPost, path: authorizePath + "?" + authorizeQuery, body: strings.NewReader(`{"verification_code":"v1"}`), wantHTTP: 413, wantCode: "CONTENT_TOO_LARGE", wantInMsg: "limit of 0 bytes", authorize: true},
		{name: "a body on DELETE", method: http.MethodDelete, path: deletePath, body: strings.NewReader("x"), wantHTTP: 413, wantCode: "CONTENT_TOO_LARGE", wantInMsg: "limit of 0 bytes"},
		{name: "a chunked body", method: http.MethodPost, path: authorizePath + "?" + authorizeQuery, body: io.MultiReader(strings.NewReader("v")), wantHTTP: 413, wantCode: "CONTENT_TOO_LARGE", authorize: true},
		{name: "405 on :redeem", method: http.MethodGet, path: redeemPath, wantHTTP: 405, wantCode: "METHOD_NOT_ALLOWED", wantAllow: "POST", authorize: true},
		{name: ":redeem: an unknown field", method: http.MethodPost, path: redeemPath, body: strings.NewReader(`{"verificaton_code":"xxxxxxxx"}`), wantHTTP: 400, wantCode: "INVALID_ARGUMENT", wantInMsg: "unknown field", wantField: "verificaton_code", authorize: true},
		// A name is quoted only when it looks like a field's: the code
		// sent as a name, or in one with a space, stays unquoted.
		{name: ":redeem: the code as a name", method: http.MethodPost, path: redeemPath, body: strings.NewReader(`{"12345678xxxxxxxx":"v"}`), wantHTTP: 400, wantCode: "INVALID_ARGUMENT", wantInMsg: "unknown field", wantField: "(a name that is not a field name)", authorize: true},
		{name: ":redeem: a name that reads as protojson's", method: http.MethodPost, path: redeemPath, body: strings.NewReader(`{"field xxxxxxxx":"v"}`), wantHTTP: 400, wantCode: "INVALID_ARGUMENT", wantInMsg: "unknown field", wantField: "(a name that is not a field name)", authorize: true},
		{name: ":redeem: a field the path binds", method: http.MethodPost, path: redeemPath, body: strings.NewReader(`{"oid":"T999","verification_code":"xxxxxxxx"}`), wantHTTP: 400, wantCode: "INVALID_ARGUMENT", wantInMsg: "given in the path", wantField: "oid", authorize: true},
		{name: ":redeem: a value of the wrong type", method: http.MethodPost, path: redeemPath, body: strings.NewReader(`{"accept_unverified_id_token":"xxxxxxxx"}`), wantHTTP: 400, wantCode: "INVALID_ARGUMENT", wantField: "accept_unverified_id_token", authorize: true},
		{name: ":redeem: not JSON", method: http.MethodPost, path: redeemPath, body: strings.NewReader(`xxxxxxxx`), wantHTTP: 400, wantCode: "INVALID_ARGUMENT", wantField: "body", authorize: true},
		{name: ":redeem: a query", method: http.MethodPost, path: redeemPath + "?verification_code=xxxxxxxx", body: strings.NewReader(`{}`), wantHTTP: 400, wantCode: "INVALID_ARGUMENT", wantField: "query", authorize: true},
		{name: ":redeem: a body over the limit", method: http.MethodPost, path: redeemPath, body: strings.NewReader(`{"state":"` + big + `"}`), wantHTTP: 413, wantCode: "CONTENT_TOO_LARGE", wantInMsg: "limit of 16384 bytes", authorize: true},
		{name: "a 20 KB header", method: http.MethodDelete, path: deletePath, header: map[string]string{"Authorization": "Bearer " + big}, wantHTTP: 431, wantCode: "HEADERS_TOO_LARGE", wantInMsg: "limit of 16384 bytes (the largest field is Authorization)"},
		{name: "a 20 KB header on Authorize", method: http.MethodPost, path: authorizePath + "?" + authorizeQuery, header: map[string]string{"X-Padding": big}, wantHTTP: 431, wantCode: "HEADERS_TOO_LARGE", wantInMsg: "16384", authorize: true},
		{name: "a bad Grpc-Timeout", method: http.MethodDelete, path: deletePath, header: map[string]string{"Grpc-Timeout": "soon"}, wantHTTP: 400, wantCode: "INVALID_ARGUMENT", wantInMsg: "invalid Grpc-Timeout header: want 1 to 8 digits and a unit", wantField: "Grpc-Timeout"},
		{name: "a Grpc-Timeout of 9 digits", method: http.MethodPost, path: authorizePath + "?" + authorizeQuery, header: map[string]string{"Grpc-Timeout": "123456789S"}, wantHTTP: 400, wantCode: "INVALID_ARGUMENT", wantField: "Grpc-Timeout", authorize: true},
		{name: "an X-Request-Id with a space", method: http.MethodPost, path: authorizePath + "?" + authorizeQuery, header: map[string]string{"X-Request-Id": "has space"}, wantHTTP: 400, wantCode: "INVALID_ARGUMENT", wantInMsg: "invalid X-Request-Id header", wantField: "X-Request-Id", authorize: true},
		{name: "an X-Request-Id beyond ASCII", method: http.MethodDelete, path: deletePath, header: map[string]string{"X-Request-Id": "caf\u00e9"}, wantHTTP: 400, wantCode: "INVALID_ARGUMENT", wantField: "X-Request-Id"},
		{name: "an X-Request-Id of 129 bytes", method: http.MethodDelete, path: deletePath, header: map[string]string{"X-Request-Id": strings.Repeat("r", 129)}, wantHTTP: 400, wantCode: "INVALID_ARGUMENT", wantField: "X-Request-Id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, h, body := send(t, tc.method, base+tc.path, tc.body, tc.header)
			checkRefusal(t, tc, code, h, body)
		})
	}
	select {
	case id := <-srv.ids:
		t.Errorf("a refused request reached the service (request id %s)", id)
	default:
	}
}

// checkRefusal checks one refusal's answer against tc.
func checkRefusal(t *testing.T, tc refusalCase, code int, h http.Header, body []byte) {
	t.Helper()
	e := dinterotest.ParseErrorBody(t, body)
	if code != tc.wantHTTP || e.Code != tc.wantCode || !strings.Contains(e.Message, tc.wantInMsg) {
		t.Errorf("got %d %s; want %d %s with %q in the message", code, body, tc.wantHTTP, tc.wantCode, tc.wantInMsg)
	}
	if id := h.Get("X-Request-Id"); id == "" || !service.ValidRequestID(id) {
		t.Errorf("got X-Request-Id %q; want one on every answer", id)
	}
	if got := h.Get("Allow"); got != tc.wantAllow {
		t.Errorf("got Allow %q; want %q", got, tc.wantAllow)
	}
	if !strings.HasPrefix(h.Get("Content-Type"), "application/json") {
		t.Errorf("got Content-Type %q; want JSON", h.Get("Content-Type"))
	}
	if tc.wantField != "" && (len(e.Errors) != 1 || e.Errors[0]["field"] != tc.wantField || !strings.Contains(e.Message, tc.wantField)) {
		t.Errorf("got errors %v, message %q; want the one field %s named", e.Errors, e.Message, tc.wantField)
	}
	_, md := e.Reason()
	if sent, ok := md[service.MetadataKeyVerificationCodeSent]; tc.authorize != ok || (ok && sent != "false") {
		t.Errorf("got verification_code_sent %v (present %v); want false on Authorize's path only", sent, ok)
	}
	if strings.Contains(string(body), "xxxxxxxx") || strings.Contains(string(body), "has space") {
		t.Errorf("the answer quotes what was sent: %.300s", body)
	}
}

// TestHeaderLimitAtTheEdge: a request whose request line and headers are
// exactly the limit, as sent on the wire, is taken; one byte more is
// refused 431 in Dintero's shape; far more, net/http refuses itself.
func TestHeaderLimitAtTheEdge(t *testing.T) {
	srv := &answering{}
	base := serveGateway(t, srv, gateway.Options{MaxQuery: headerLimit, MaxHeaderBytes: headerLimit})
	addr := strings.TrimPrefix(base, "http://")
	raw := func(total int) string {
		head := "DELETE " + deletePath + " HTTP/1.1\r\nHost: " + addr + "\r\nX-Pad: "
		tail := "\r\n\r\n"
		return head + strings.Repeat("p", total-len(head)-len(tail)) + tail
	}
	for _, tc := range []struct {
		total    int
		wantHTTP int
		dintero  bool
	}{
		{headerLimit, 200, false},
		{headerLimit + 1, 431, true},
		{gateway.ServerMaxHeaderBytes(headerLimit), 431, true},
		{gateway.ServerMaxHeaderBytes(headerLimit) + 8192, 431, false},
	} {
		req := raw(tc.total)
		if len(req) != tc.total {
			t.Fatalf("built %d bytes; want %d", len(req), tc.total)
		}
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(conn, req); err != nil {
			t.Fatal(err)
		}
		res, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("%d bytes: %v", tc.total, err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		conn.Close()
		if res.StatusCode != tc.wantHTTP {
			t.Errorf("%d bytes of headers: got %d; want %d (%.200s)", tc.total, res.StatusCode, tc.wantHTTP, body)
		}
		if tc.dintero {
			if e := dinterotest.ParseErrorBody(t, body); !strings.Contains(e.Message, fmt.Sprintf("%d bytes, over the limit of %d bytes", tc.total, headerLimit)) {
				t.Errorf("%d bytes: got message %q; want the size and the limit", tc.total, e.Message)
			}
		}
	}
}

// TestRequestIDOnEveryAnswer: every answer carries an X-Request-Id: the
// caller's when it can be used, the same the service saw, on success, on
// the service's errors and on the gateway's own refusals.
func TestRequestIDOnEveryAnswer(t *testing.T) {
	srv := &answering{ids: make(chan string, 1)}
	base := serveGateway(t, srv, gateway.Options{MaxQuery: headerLimit, MaxHeaderBytes: headerLimit})
	for _, tc := range []struct {
		name         string
		method, path string
		st           *status.Status
		reaches      bool
	}{
		{"success", http.MethodDelete, deletePath, nil, true},
		{"the service's error", http.MethodDelete, deletePath, status.New(codes.NotFound, "no"), true},
		{"an unknown query parameter", http.MethodDelete, deletePath + "?nonce=1", nil, false},
		{"a query grpc-gateway cannot parse", http.MethodPost, authorizePath + "?" + authorizeQuery + "&state=%zz", nil, false},
		{"405", http.MethodPut, deletePath, nil, false},
		{"404", http.MethodGet, "/nowhere", nil, false},
	} {
		for _, given := range []string{"", "caller-id-7"} {
			t.Run(tc.name+" "+given, func(t *testing.T) {
				srv.st = tc.st
				h := map[string]string{}
				if given != "" {
					h["X-Request-Id"] = given
				}
				_, got, body := send(t, tc.method, base+tc.path, nil, h)
				id := got.Get("X-Request-Id")
				if len(got.Values("X-Request-Id")) != 1 || id == "" || (given != "" && id != given) {
					t.Errorf("got X-Request-Id %q; want one, %q when the caller sent it (%s)", got.Values("X-Request-Id"), given, body)
				}
				select {
				case seen := <-srv.ids:
					if !tc.reaches || seen != id {
						t.Errorf("the service saw %q; want the answer's %q, and a call only when it reaches the service", seen, id)
					}
				default:
					if tc.reaches {
						t.Error("the call did not reach the service")
					}
				}
			})
		}
	}
}

// TestQueryLimit: a query over MaxQuery is refused naming the limit, when
// the headers are within theirs.
func TestQueryLimit(t *testing.T) {
	base := serveGateway(t, &answering{}, gateway.Options{MaxQuery: 1 << 10, MaxHeaderBytes: headerLimit})
	code, h, body := send(t, http.MethodPost, base+authorizePath+"?"+authorizeQuery+"&state="+strings.Repeat("s", 2<<10), nil, nil)
	checkRefusal(t, refusalCase{wantHTTP: 400, wantCode: "INVALID_ARGUMENT", wantInMsg: "the query is over the limit of 1024 bytes", authorize: true}, code, h, body)
}

// TestEmptyChunkedBody: a chunked body that turns out empty is no body.
func TestEmptyChunkedBody(t *testing.T) {
	base := serveGateway(t, &answering{}, gateway.Options{MaxQuery: headerLimit, MaxHeaderBytes: headerLimit})
	addr := strings.TrimPrefix(base, "http://")
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "DELETE %s HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", deletePath, addr)
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Errorf("got %d %s; want 200", res.StatusCode, body)
	}
}

// discardLog is a logger that writes nothing.
func discardLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// recording is an AuthService that keeps the Authorize requests it gets.
type recording struct {
	authv1.UnimplementedAuthServiceServer
	got chan *authv1.AuthorizeRequest
}

func (r *recording) Authorize(_ context.Context, req *authv1.AuthorizeRequest) (*authv1.AuthorizeResponse, error) {
	r.got <- req
	return &authv1.AuthorizeResponse{Location: "https://app.example.com/cb"}, nil
}

// TestRedeem: POST …/authorize:redeem takes Authorize's fields as a JSON
// body, the path's oid beside them, so the code is in no URL; the body
// route takes a body where Dintero's path refuses one (TestGatewayRefusals),
// as the HTTP rules say.
func TestRedeem(t *testing.T) {
	srv := &recording{got: make(chan *authv1.AuthorizeRequest, 1)}
	base := serveGateway(t, srv, gateway.Options{MaxQuery: headerLimit, MaxHeaderBytes: headerLimit})
	code, _, body := send(t, http.MethodPost, base+redeemPath, strings.NewReader(`{"audience":"a","response_type":"authenticate","client_id":"c",
		"verification_code":"v1","state":"s","accept_unverified_id_token":true}`), map[string]string{"Content-Type": "application/json"})
	if code != http.StatusOK {
		t.Fatalf("got %d %s; want 200", code, body)
	}
	want := &authv1.AuthorizeRequest{Oid: "T123", Audience: "a", ResponseType: "authenticate", ClientId: "c", VerificationCode: "v1", State: "s", AcceptUnverifiedIdToken: true}
	if got := <-srv.got; !proto.Equal(got, want) {
		t.Errorf("the service got %v; want %v", got, want)
	}
}
