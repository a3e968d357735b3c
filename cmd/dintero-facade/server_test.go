package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	authv1 "github.com/dintero-facade/dintero-facade/gen/dintero/auth/v1"
	"github.com/dintero-facade/dintero-facade/internal/dinteromock"
	"github.com/dintero-facade/dintero-facade/internal/dinterotest"
	"github.com/dintero-facade/dintero-facade/internal/gateway"
	"github.com/dintero-facade/dintero-facade/internal/probe"
	"github.com/dintero-facade/dintero-facade/internal/telemetry"
	"github.com/dintero-facade/dintero-facade/service"
)

func TestMain(m *testing.M) {
	code := m.Run()
	removeBinary()
	if code == 0 {
		if err := goleak.Find(dinterotest.LeakOptions()...); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// facade is a server started as the binary starts it, on loopback ports.
type facade struct {
	grpcAddr string
	httpURL  string
	conn     *grpc.ClientConn
	client   authv1.AuthServiceClient
	log      *dinterotest.LogBuffer
	// stop shuts the server down and reports Run's error; it may be
	// called before the test ends, and runs again harmlessly at cleanup.
	stop func() error
}

// startFacade parses args and env as main does and runs the server until
// the test ends, when it must shut down cleanly.
func startFacade(t *testing.T, dinteroURL string, args []string, env map[string]string, mods ...func(*Options)) *facade {
	t.Helper()
	base := []string{"--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--log-level", "debug"}
	if dinteroURL != "" {
		base = append(base, "--dintero-url", dinteroURL)
	}
	args = append(base, args...)
	cfg, err := parseConfig(args, envOf(env), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	logs := &dinterotest.LogBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	addrs := make(chan listeners, 1)
	done := make(chan error, 1)
	o := Options{
		Config:  cfg,
		Log:     telemetry.NewLogger(logs, cfg.LogLevel),
		Audit:   telemetry.NewLogger(logs, slog.LevelInfo),
		Version: "test",
		Ready:   func(l listeners) { addrs <- l },
	}
	for _, m := range mods {
		m(&o)
	}
	go func() { done <- Run(ctx, o) }()
	var l listeners
	select {
	case l = <-addrs:
	case err := <-done:
		t.Fatalf("Run: %v", err)
	}
	conn, err := grpc.NewClient(l.GRPC.String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	f := &facade{grpcAddr: l.GRPC.String(), httpURL: "http://" + l.HTTP.String(), conn: conn, client: authv1.NewAuthServiceClient(conn), log: logs}
	var once sync.Once
	var runErr error
	f.stop = func() error {
		once.Do(func() {
			conn.Close()
			cancel()
			runErr = <-done
			http.DefaultClient.CloseIdleConnections()
		})
		return runErr
	}
	t.Cleanup(func() {
		if err := f.stop(); err != nil {
			t.Errorf("Run returned %v; want nil after a clean shutdown", err)
		}
	})
	return f
}

// do sends an HTTP request to the facade and returns status, headers and
// body.
func (f *facade) do(t *testing.T, method, path string, header map[string]string) (int, http.Header, []byte) {
	t.Helper()
	return dinterotest.Do(t, http.DefaultClient, method, f.httpURL+path, header)
}

// bearer is the Authorization header of a caller that brings its own
// token for account.
func bearer(fake *dinterotest.Server, account string) map[string]string {
	return map[string]string{"Authorization": fake.Bearer(account)}
}

func withBearer(ctx context.Context, fake *dinterotest.Server, account string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", fake.Bearer(account))
}

func TestServer(t *testing.T) {
	fake := dinterotest.New(t)
	fake.AddGrants("T12345678", "g-grpc", "g-http")
	f := startFacade(t, fake.URL, nil, nil)
	ctx := context.Background()

	t.Run("grpc delete", func(t *testing.T) {
		resp, err := f.client.DeleteClientGrant(withBearer(ctx, fake, "T12345678"), &authv1.DeleteClientGrantRequest{Oid: "T12345678", Id: "g-grpc"})
		if err != nil || resp.GetGrant().GetId() != "g-grpc" || resp.GetGrant().GetDeletedBy() != "caller-T12345678" {
			t.Fatalf("got %v, %v; want grant g-grpc", resp, err)
		}
	})
	t.Run("grpc authorize", func(t *testing.T) {
		fake.AddCode("T123", "v-grpc")
		resp, err := f.client.Authorize(withBearer(ctx, fake, "T123"), &authv1.AuthorizeRequest{Oid: "T123", Audience: dinteromock.Audience("T123"), ResponseType: "authenticate", ClientId: dinterotest.App, VerificationCode: "v-grpc", State: "st"})
		if err != nil || strings.Count(resp.GetIdToken(), ".") != 2 || resp.GetState() != "st" {
			t.Fatalf("got %v, %v; want the id_token and state", resp, err)
		}
	})
	t.Run("gateway delete has Dintero's shape", func(t *testing.T) {
		code, h, body := f.do(t, http.MethodDelete, "/v1/accounts/T12345678/auth/client-grants/g-http", bearer(fake, "T12345678"))
		if code != 200 {
			t.Fatalf("got %d %s; want 200", code, body)
		}
		var resp struct {
			Grant   map[string]any `json:"grant"`
			Outcome string         `json:"outcome"`
		}
		if err := json.Unmarshal(body, &resp); err != nil || resp.Outcome != "OUTCOME_DELETED" {
			t.Fatalf("got %s (%v); want the grant and outcome OUTCOME_DELETED", body, err)
		}
		got := resp.Grant
		deleted, _ := got["deleted_at"].(string)
		want := map[string]any{
			"id": "g-http", "client_id": "2a6b5f2e-client", "audience": "https://api.dintero.com/v1/accounts/T12345678",
			"scope": []any{"admin:accounts", "write:checkout"}, "type": "authorization_code",
			// The OIDC client secret is withheld by default.
			"oidc":       map[string]any{"client_id": "oidc-client", "authority": "https://identityserver.example.com/access"},
			"created_at": "2024-01-02T01:04:05.123Z", "updated_at": deleted, "deleted_at": deleted,
			"created_by": "user-creator", "deleted_by": "caller-T12345678",
		}
		if fmt.Sprint(got) != fmt.Sprint(want) || !strings.HasSuffix(deleted, "Z") {
			t.Errorf("got %v;\nwant %v", got, want)
		}
		if !strings.HasPrefix(h.Get("Content-Type"), "application/json") || h.Get("X-Request-Id") == "" {
			t.Errorf("got headers %v; want JSON and an X-Request-Id", h)
		}
	})
	t.Run("gateway authorize takes query parameters", func(t *testing.T) {
		fake.AddCode("T123", "v-http")
		before := len(fake.Requests())
		code, _, body := f.do(t, http.MethodPost, "/v1/accounts/T123/auth/authorize?audience=https%3A%2F%2Fapi.dintero.com%2Fv1%2Faccounts%2FT123&response_type=authenticate&client_id=client-1&verification_code=v-http&state=s1&redirect_uri=https%3A%2F%2Fapp.example.com%2Fcb&scope=openid&connection=sms", bearer(fake, "T123"))
		var got map[string]any
		if err := json.Unmarshal(body, &got); err != nil || code != 200 {
			t.Fatalf("got %d %s; want 200 with JSON", code, body)
		}
		if tok, _ := got["id_token"].(string); strings.Count(tok, ".") != 2 || got["state"] != "s1" || got["query"] != nil {
			t.Errorf("got %v", got)
		}
		q := fake.Requests()[before].Query
		if q.Get("redirect_uri") != "https://app.example.com/cb" || q.Get("connection") != "sms" || len(q) != 8 {
			t.Errorf("Dintero got query %v", q)
		}
	})
	t.Run("gateway validation error", func(t *testing.T) {
		code, _, body := f.do(t, http.MethodDelete, "/v1/accounts/X1/auth/client-grants/g", bearer(fake, "T123"))
		e := dinterotest.ParseErrorBody(t, body)
		if code != 400 || e.Code != "INVALID_ARGUMENT" || e.GrpcCode != "INVALID_ARGUMENT" || !strings.Contains(e.Message, "oid") ||
			len(e.Errors) != 1 || e.Errors[0]["field"] != "oid" || len(e.Details) != 3 {
			t.Errorf("got %d %s; want 400 in Dintero's shape naming oid, with the gRPC details (ErrorInfo, BadRequest, RequestInfo)", code, body)
		}
	})
	t.Run("request id round trip", func(t *testing.T) {
		h := bearer(fake, "T123")
		h["X-Request-Id"] = "rid-from-http"
		_, rh, _ := f.do(t, http.MethodDelete, "/v1/accounts/T123/auth/client-grants/g", h)
		last := fake.Requests()[len(fake.Requests())-1]
		if rh.Get("X-Request-Id") != "rid-from-http" || last.Header.Get("X-Request-Id") != "rid-from-http" {
			t.Errorf("got response %q, Dintero got %q; want rid-from-http both", rh.Get("X-Request-Id"), last.Header.Get("X-Request-Id"))
		}
	})
	t.Run("healthz", func(t *testing.T) {
		if code, _, body := f.do(t, http.MethodGet, "/healthz", nil); code != 200 || string(body) != "ok\n" {
			t.Errorf("got %d %q; want 200 ok", code, body)
		}
	})
	t.Run("health", func(t *testing.T) {
		for _, svc := range []string{"", "dintero.auth.v1.AuthService"} {
			resp, err := healthpb.NewHealthClient(f.conn).Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
			if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				t.Errorf("health of %q: got %v, %v; want SERVING", svc, resp, err)
			}
		}
	})
	t.Run("reflection", func(t *testing.T) {
		stream, err := reflectionpb.NewServerReflectionClient(f.conn).ServerReflectionInfo(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		_ = stream.CloseSend()
		var names []string
		for _, s := range resp.GetListServicesResponse().GetService() {
			names = append(names, s.GetName())
		}
		if !strings.Contains(strings.Join(names, " "), "dintero.auth.v1.AuthService") {
			t.Errorf("got services %v; want dintero.auth.v1.AuthService among them", names)
		}
	})
	t.Run("oversized request", func(t *testing.T) {
		_, err := f.client.DeleteClientGrant(withBearer(ctx, fake, "T123"), &authv1.DeleteClientGrantRequest{Oid: "T123", Id: strings.Repeat("x", 32<<10)})
		if status.Code(err) != codes.ResourceExhausted {
			t.Errorf("got %v; want ResourceExhausted for a request over --max-recv-msg-bytes", err)
		}
	})
}

// TestGatewayErrors: the gateway answers Dintero's errors in Dintero's
// shape, with the HTTP status Dintero gave, Dintero's code, message and
// errors, and the gRPC details beside; a gRPC caller gets the same error as
// a status.
func TestGatewayErrors(t *testing.T) {
	fake := dinterotest.New(t)
	f := startFacade(t, fake.URL, nil, nil)
	for _, tc := range []struct {
		dinteroStatus int
		wantCode      codes.Code
	}{
		{400, codes.InvalidArgument},
		{401, codes.Unauthenticated},
		{403, codes.PermissionDenied},
		{404, codes.NotFound},
		{409, codes.Aborted},
		{418, codes.FailedPrecondition},
		{422, codes.InvalidArgument},
		{500, codes.Internal},
		{501, codes.Unimplemented},
	} {
		t.Run(fmt.Sprint(tc.dinteroStatus), func(t *testing.T) {
			fake.HandleRaw(dinterotest.OpDelete, dinterotest.Body(tc.dinteroStatus, "application/json",
				[]byte(`{"error":{"code":"some_code","message":"dintero says no","errors":[{"field":"id","message":"bad id"},{"other":1}]}}`)))
			code, _, body := f.do(t, http.MethodDelete, "/v1/accounts/T123/auth/client-grants/g", bearer(fake, "T123"))
			e := dinterotest.ParseErrorBody(t, body)
			if code != tc.dinteroStatus || e.Code != "some_code" || e.Message != "dintero says no" || len(e.Errors) != 2 || e.Errors[0]["field"] != "id" || e.Errors[1]["other"] != 1.0 {
				t.Errorf("got %d %s; want HTTP %d with Dintero's code, message and errors", code, body, tc.dinteroStatus)
			}
			if reason, md := e.Reason(); reason != service.ErrorReasonDintero || md["dinteroCode"] != "some_code" || md["dinteroHttpStatus"] != fmt.Sprint(tc.dinteroStatus) || e.GrpcCode != strings.ToUpper(strings.Join(splitCamel(tc.wantCode.String()), "_")) {
				t.Errorf("got details %v, grpc_code %s; want the ErrorInfo and %v", e.Details, e.GrpcCode, tc.wantCode)
			}
			_, err := f.client.DeleteClientGrant(withBearer(context.Background(), fake, "T123"), &authv1.DeleteClientGrantRequest{Oid: "T123", Id: "g"})
			if st := status.Convert(err); st.Code() != tc.wantCode || st.Message() != "dintero says no" {
				t.Errorf("over gRPC: got %v; want %v with Dintero's message", err, tc.wantCode)
			}
		})
	}
	t.Run("the facade's own errors", func(t *testing.T) {
		for _, tc := range []struct {
			method, path string
			header       map[string]string
			wantHTTP     int
			wantCode     string
		}{
			{http.MethodGet, "/v1/accounts/T123/auth/client-grants/g", nil, 405, "METHOD_NOT_ALLOWED"},
			{http.MethodDelete, "/v1/accounts/T123/nothing-here", nil, 404, "NOT_FOUND"},
			{http.MethodDelete, "/v1/accounts/T123/auth/client-grants/g", nil, 401, "NO_CREDENTIALS"},
			{http.MethodDelete, "/v1/accounts/T123/auth/client-grants/g?nonce=1", bearer(fake, "T123"), 400, "INVALID_ARGUMENT"},
		} {
			code, _, body := f.do(t, tc.method, tc.path, tc.header)
			if e := dinterotest.ParseErrorBody(t, body); code != tc.wantHTTP || e.Code != tc.wantCode {
				t.Errorf("%s %s: got %d %s; want %d with code %s", tc.method, tc.path, code, body, tc.wantHTTP, tc.wantCode)
			}
		}
	})
}

// splitCamel splits a Go code name such as InvalidArgument into words.
func splitCamel(s string) []string {
	var out []string
	start := 0
	for i := 1; i < len(s); i++ {
		if s[i] >= 'A' && s[i] <= 'Z' {
			out = append(out, s[start:i])
			start = i
		}
	}
	return append(out, s[start:])
}

// TestDeadlinePropagation: a caller deadline of 200 ms against a Dintero
// that answers after 5 s returns DeadlineExceeded well within a second, over
// gRPC and (with Grpc-Timeout) through the gateway.
func TestDeadlinePropagation(t *testing.T) {
	fake := dinterotest.New(t)
	fake.AddGrants("T123", "g")
	fake.HandleRaw(dinterotest.OpDelete, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(5 * time.Second):
			fake.Mock.ServeHTTP(w, r)
		case <-r.Context().Done():
		}
	})
	f := startFacade(t, fake.URL, nil, nil)

	ctx, cancel := context.WithTimeout(withBearer(context.Background(), fake, "T123"), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := f.client.DeleteClientGrant(ctx, &authv1.DeleteClientGrantRequest{Oid: "T123", Id: "g"})
	if took := time.Since(start); status.Code(err) != codes.DeadlineExceeded || took > time.Second {
		t.Errorf("gRPC: got %v after %v; want DeadlineExceeded within a second", err, took)
	}

	start = time.Now()
	h := bearer(fake, "T123")
	h["Grpc-Timeout"] = "200m"
	code, _, body := f.do(t, http.MethodDelete, "/v1/accounts/T123/auth/client-grants/g", h)
	if took := time.Since(start); code != http.StatusGatewayTimeout || took > time.Second {
		t.Errorf("gateway: got %d %s after %v; want 504 within a second", code, body, took)
	}
}

// TestCredentialsFromEnv runs the facade with client credentials from the
// environment: calls without a token use them, calls with one do not.
func TestCredentialsFromEnv(t *testing.T) {
	fake := dinterotest.New(t)
	fake.AddGrants("T12345678", "g0", "g1", "g2", "g", "own")
	f := startFacade(t, fake.URL, nil, map[string]string{"DINTERO_CLIENT_ID": dinterotest.ClientID, "DINTERO_CLIENT_SECRET": dinterotest.ClientSecret, "DINTERO_ACCOUNT_ID": "T12345678"})
	for i := range 3 {
		if _, err := f.client.DeleteClientGrant(context.Background(), &authv1.DeleteClientGrantRequest{Oid: "T12345678", Id: fmt.Sprint("g", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if code, _, body := f.do(t, http.MethodDelete, "/v1/accounts/T12345678/auth/client-grants/g", nil); code != 200 {
		t.Fatalf("gateway without a token: got %d %s", code, body)
	}
	if _, err := f.client.DeleteClientGrant(withBearer(context.Background(), fake, "T12345678"), &authv1.DeleteClientGrantRequest{Oid: "T12345678", Id: "own"}); err != nil {
		t.Fatal(err)
	}
	if n := fake.Count(dinterotest.OpToken); n != 1 {
		t.Errorf("got %d token fetches; want 1, cached", n)
	}
	reqs := fake.Requests()
	if got := reqs[len(reqs)-1].Header.Get("Authorization"); got != fake.Bearer("T12345678") {
		t.Errorf("the caller's token was replaced by %q", got)
	}
	if strings.Contains(f.log.String(), dinterotest.ClientSecret) || !strings.Contains(f.log.String(), `"client_secret":"[REDACTED]"`) {
		t.Errorf("the startup line must show the credentials with the secret masked:\n%s", f.log.String())
	}
	if !strings.Contains(f.log.String(), "neither --policy-file nor mutual TLS: every caller that can reach it can act with them") {
		t.Errorf("no warning that every caller can act with the credentials:\n%s", f.log.String())
	}
}

// panicky is an AuthService whose DeleteClientGrant panics.
type panicky struct {
	authv1.UnimplementedAuthServiceServer
}

func (panicky) DeleteClientGrant(context.Context, *authv1.DeleteClientGrantRequest) (*authv1.DeleteClientGrantResponse, error) {
	panic("handler bug")
}

// TestGatewayMatchesGRPC proves that a call through the gateway's
// in-process path is logged, recovered and counted exactly like a gRPC call:
// both run the same interceptor.
func TestGatewayMatchesGRPC(t *testing.T) {
	logs := &dinterotest.LogBuffer{}
	var counted atomic.Int32
	var methods sync.Map
	count := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		counted.Add(1)
		resp, err := h(ctx, req)
		methods.Store(info.FullMethod+" "+status.Code(err).String(), true)
		return resp, err
	}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	ic, err := service.Interceptor(service.InterceptorOptions{Log: log, Audit: log, Inner: []grpc.UnaryServerInterceptor{count}})
	if err != nil {
		t.Fatal(err)
	}

	register := func(r grpc.ServiceRegistrar) { authv1.RegisterAuthServiceServer(r, panicky{}) }
	gs := grpc.NewServer(grpc.ChainUnaryInterceptor(ic))
	register(gs)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = gs.Serve(l) }()
	defer gs.Stop()
	probes := probe.New()
	probes.Serve()
	gw, err := gateway.New(context.Background(), register, ic, gateway.Options{MaxQuery: 16 << 10, MaxHeaderBytes: 16 << 10})
	if err != nil {
		t.Fatal(err)
	}
	h := httpMux(gw, probes.Healthz(), 16<<10)
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: h, ReadHeaderTimeout: time.Second}
	go func() { _ = hs.Serve(hl) }()
	defer hs.Close()

	conn, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, grpcErr := authv1.NewAuthServiceClient(conn).DeleteClientGrant(context.Background(), &authv1.DeleteClientGrantRequest{Oid: "T123", Id: "g"})
	resp, err := http.DefaultClient.Do(mustRequest(t, http.MethodDelete, "http://"+hl.Addr().String()+"/v1/accounts/T123/auth/client-grants/g"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	http.DefaultClient.CloseIdleConnections()

	if status.Code(grpcErr) != codes.Internal || resp.StatusCode != http.StatusInternalServerError {
		t.Errorf("got gRPC %v and HTTP %d; want Internal and 500 (recovered)", grpcErr, resp.StatusCode)
	}
	if n := counted.Load(); n != 2 {
		t.Errorf("the counting interceptor saw %d calls; want 2", n)
	}
	if _, ok := methods.Load(authv1.AuthService_DeleteClientGrant_FullMethodName + " Internal"); !ok {
		t.Error("the counting interceptor did not see DeleteClientGrant end in Internal")
	}
	calls := logs.Lines(t, "call", "audit")
	if len(calls) != 2 {
		t.Fatalf("got %d call lines; want 2:\n%s", len(calls), logs.String())
	}
	// The caller differs by nature (another peer, another user agent), and
	// so do the ids and the timing; everything else must be the same.
	for i := range calls {
		if c, _ := calls[i]["caller"].(map[string]any); c["addr"] == "" || c["addr"] == nil {
			t.Errorf("line %d names no caller: %v", i, calls[i])
		}
		for _, k := range []string{"request_id", "latency_us", "time", "caller"} {
			delete(calls[i], k)
		}
	}
	if fmt.Sprint(calls[0]) != fmt.Sprint(calls[1]) {
		t.Errorf("the two calls were logged differently:\n%v\n%v", calls[0], calls[1])
	}
	if n := strings.Count(logs.String(), "recovered from a panic"); n != 2 {
		t.Errorf("got %d recovered panics in the log; want 2", n)
	}
}

func mustRequest(t *testing.T, method, url string) *http.Request {
	t.Helper()
	r, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestRunFailsOnBusyPort: an address in use stops Run with an error that
// names the flag and the variable that set it, for every listener (the
// newcomer's case: --mock with 9090 taken). Nothing is left listening.
func TestRunFailsOnBusyPort(t *testing.T) {
	discard := slog.New(slog.NewJSONHandler(io.Discard, nil))
	for _, tc := range []struct{ flag, env string }{
		{"--grpc-addr", "DINTERO_FACADE_GRPC_ADDR"},
		{"--http-addr", "DINTERO_FACADE_HTTP_ADDR"},
		{"--health-addr", "DINTERO_FACADE_HEALTH_ADDR"},
		{"--metrics-addr", "DINTERO_FACADE_METRICS_ADDR"},
		{"--pprof-addr", "DINTERO_FACADE_PPROF_ADDR"},
	} {
		t.Run(tc.flag, func(t *testing.T) {
			busy, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer busy.Close()
			args := []string{"--mock", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--health-addr", "127.0.0.1:0",
				"--metrics-addr", "127.0.0.1:0", "--pprof-addr", "127.0.0.1:0", tc.flag, busy.Addr().String()}
			cfg, err := parseConfig(args, envOf(nil), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			err = Run(context.Background(), Options{Config: cfg, Log: discard, Audit: discard, Version: "test"})
			want := fmt.Sprintf("%s %s: address already in use; choose another with %s or %s", tc.flag, busy.Addr(), tc.flag, tc.env)
			if err == nil || err.Error() != want || !errors.Is(err, syscall.EADDRINUSE) {
				t.Errorf("got %v; want %q", err, want)
			}
		})
	}
	cfg, err := parseConfig([]string{"--grpc-addr", "127.0.0.1:0", "--dintero-url", "http://127.0.0.1:1/v1"}, envOf(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if err := Run(context.Background(), Options{Config: cfg, Log: discard, Version: "test"}); err == nil || !strings.Contains(err.Error(), "audit") {
		t.Errorf("Run without an audit logger: got %v; want an error naming it", err)
	}
}

// TestRunNeedsALog: Run refuses to start without a log (--mock logs
// before anything else could refuse).
func TestRunNeedsALog(t *testing.T) {
	cfg, err := parseConfig([]string{"--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--mock"}, envOf(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	discard := slog.New(slog.NewJSONHandler(io.Discard, nil))
	if err := Run(context.Background(), Options{Config: cfg, Audit: discard, Version: "test"}); err == nil || !strings.Contains(err.Error(), "log") {
		t.Errorf("Run without a log: got %v; want an error naming it", err)
	}
}

// TestHTTPLimits: headers are bounded by --max-recv-msg-bytes as the
// manual says: the gateway refuses a 20 KB header with 431 in Dintero's
// shape, naming the limit; net/http refuses far larger ones itself; the
// probes' listener takes exactly the limit and refuses a byte more. No
// call reaches Dintero.
func TestHTTPLimits(t *testing.T) {
	fake := dinterotest.New(t)
	var healthAddr string
	f := startFacade(t, fake.URL, []string{"--health-addr", "127.0.0.1:0"}, nil, func(o *Options) {
		ready := o.Ready
		o.Ready = func(l listeners) { healthAddr = l.Health.String(); ready(l) }
	})
	code, h, body := f.do(t, http.MethodDelete, "/v1/accounts/T123/auth/client-grants/g", map[string]string{"Authorization": "Bearer " + strings.Repeat("x", 20000)})
	if e := dinterotest.ParseErrorBody(t, body); code != http.StatusRequestHeaderFieldsTooLarge || !strings.Contains(e.Message, "over the limit of 16384 bytes") || h.Get("X-Request-Id") == "" {
		t.Errorf("a 20 KB header: got %d %s; want 431 in Dintero's shape naming the limit, with an X-Request-Id", code, body)
	}
	if code, _, _ := f.do(t, http.MethodDelete, "/v1/accounts/T123/auth/client-grants/g", map[string]string{"Authorization": "Bearer " + strings.Repeat("x", 64<<10)}); code != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("got %d for 64 KiB of headers; want 431", code)
	}
	for _, tc := range []struct{ total, want int }{{16 << 10, 200}, {16<<10 + 1, 431}} {
		if got := rawStatus(t, healthAddr, "GET", "/healthz", tc.total); got != tc.want {
			t.Errorf("the probes' listener, %d bytes of headers: got %d; want %d", tc.total, got, tc.want)
		}
	}
	if n := fake.Count(dinterotest.OpDelete); n != 0 {
		t.Errorf("Dintero got %d calls; want none", n)
	}
}

// rawStatus sends, on a connection of its own, a request whose request
// line and headers are exactly total bytes on the wire, and returns the
// status of the answer.
func rawStatus(t *testing.T, addr, method, path string, total int) int {
	t.Helper()
	head := method + " " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nX-Pad: "
	const tail = "\r\n\r\n"
	req := head + strings.Repeat("p", total-len(head)-len(tail)) + tail
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%d bytes of headers: %v", total, err)
	}
	res.Body.Close()
	return res.StatusCode
}

// TestShutdownIgnoresSideServers: a CPU profile under way on --pprof-addr
// neither holds up the shutdown nor counts as a cut call.
func TestShutdownIgnoresSideServers(t *testing.T) {
	fake := dinterotest.New(t)
	var pprofAddr string
	f := startFacade(t, fake.URL, []string{"--pprof-addr", "127.0.0.1:0", "--shutdown-grace", "5s"}, nil, func(o *Options) {
		ready := o.Ready
		o.Ready = func(l listeners) { pprofAddr = l.Pprof.String(); ready(l) }
	})
	started := make(chan struct{})
	go func() {
		close(started)
		resp, err := http.Get("http://" + pprofAddr + "/debug/pprof/profile?seconds=30")
		if err == nil {
			resp.Body.Close()
		}
	}()
	<-started
	time.Sleep(200 * time.Millisecond) // the profile is under way
	start := time.Now()
	if err := f.stop(); err != nil {
		t.Errorf("Run returned %v; want nil: a profile is not a call", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("shutdown took %v; the profile held it up", took)
	}
}
