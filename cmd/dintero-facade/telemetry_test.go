package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	authv1 "github.com/dintero-facade/dintero-facade/gen/dintero/auth/v1"
	"github.com/dintero-facade/dintero-facade/internal/dinteromock"
	"github.com/dintero-facade/dintero-facade/internal/dinterotest"
)

// scrape returns the Prometheus text exposition at url.
func scrape(t *testing.T, client *http.Client, url string) string {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d", url, resp.StatusCode)
	}
	return string(b)
}

// metric returns the value of the series whose name and labels match,
// 0 when absent.
func metric(t *testing.T, text, name string, labels ...string) float64 {
	t.Helper()
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(line, l)
		}
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndex(line, " ")+1:], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		return v
	}
	return 0
}

func TestMetrics(t *testing.T) {
	fake := dinterotest.New(t)
	for _, separate := range []bool{false, true} {
		fake.AddGrants("T12345678", "grant-secretish-0", "grant-secretish-1", "grant-secretish-2", "gw-grant", "g")
		t.Run(fmt.Sprint("separate=", separate), func(t *testing.T) {
			var args []string
			if separate {
				args = []string{"--metrics-addr", "127.0.0.1:0"}
			}
			var metricsAddr string
			f := startFacade(t, fake.URL, args, map[string]string{"DINTERO_CLIENT_ID": dinterotest.ClientID, "DINTERO_CLIENT_SECRET": dinterotest.ClientSecret, "DINTERO_ACCOUNT_ID": "T12345678"},
				func(o *Options) {
					ready := o.Ready
					o.Ready = func(l listeners) {
						if l.Metrics != nil {
							metricsAddr = "http://" + l.Metrics.String()
						}
						ready(l)
					}
				})
			url := f.httpURL + "/metrics"
			if separate {
				url = metricsAddr + "/metrics"
				if code, _, _ := f.do(t, http.MethodGet, "/metrics", nil); code != http.StatusNotFound {
					t.Errorf("/metrics on the HTTP port: got %d; want 404 when --metrics-addr is set", code)
				}
			}
			calls := 3
			for i := range calls {
				if _, err := f.client.DeleteClientGrant(context.Background(), &authv1.DeleteClientGrantRequest{Oid: "T12345678", Id: fmt.Sprint("grant-secretish-", i)}); err != nil {
					t.Fatal(err)
				}
			}
			if code, _, _ := f.do(t, http.MethodDelete, "/v1/accounts/T12345678/auth/client-grants/gw-grant", bearer(fake, "T12345678")); code != 200 {
				t.Fatalf("gateway call: %d", code)
			}
			fake.HandleRaw(dinterotest.OpDelete, dinterotest.Body(503, "text/plain", nil))
			_, _ = f.client.DeleteClientGrant(withBearer(context.Background(), fake, "T12345678"), &authv1.DeleteClientGrantRequest{Oid: "T12345678", Id: "g"})
			fake.Default(dinterotest.OpDelete)

			text := scrape(t, http.DefaultClient, url)
			checks := []struct {
				name   string
				labels []string
				want   float64
			}{
				{"grpc_server_handled_total", []string{`grpc_method="DeleteClientGrant"`, `grpc_code="OK"`}, float64(calls + 1)},
				{"grpc_server_handled_total", []string{`grpc_method="DeleteClientGrant"`, `grpc_code="Unavailable"`}, 1},
				{"grpc_server_handling_seconds_count", []string{`grpc_method="DeleteClientGrant"`}, float64(calls + 2)},
				{"dintero_upstream_requests_total", []string{`operation="DeleteClientGrant"`, `status="200"`, `attempt="1"`}, float64(calls + 1)},
				{"dintero_upstream_requests_total", []string{`operation="DeleteClientGrant"`, `status="503"`, `attempt="3"`}, 1},
				{"dintero_upstream_requests_total", []string{`operation="Token"`, `status="200"`}, 1},
				{"dintero_upstream_retries_total", []string{`operation="DeleteClientGrant"`}, 2},
				{"dintero_upstream_token_fetches_total", nil, 1},
				{"dintero_upstream_request_duration_seconds_count", []string{`operation="DeleteClientGrant"`}, float64(calls + 4)},
				{"dintero_upstream_circuit_state", []string{`state="closed"`}, 1},
			}
			for _, c := range checks {
				if got := metric(t, text, c.name, c.labels...); got != c.want {
					t.Errorf("%s%v = %v; want %v", c.name, c.labels, got, c.want)
				}
			}
			// The manual's alert leaves out 0: a facade serving no TLS.
			if !regexp.MustCompile(`(?m)^dintero_facade_tls_certificate_expiry_timestamp_seconds 0$`).MatchString(text) {
				t.Error("without TLS, dintero_facade_tls_certificate_expiry_timestamp_seconds is not 0, as docs/operating.md says")
			}
			// An operator finds every metric of the facade's own in the
			// manual: each dintero_* family this scrape shows is named there.
			doc, err := os.ReadFile(manual)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range regexp.MustCompile(`(?m)^# TYPE (dintero_[a-z_]+) `).FindAllStringSubmatch(text, -1) {
				if !strings.Contains(string(doc), "`"+m[1]+"`") {
					t.Errorf("the metric %s is not in docs/operating.md", m[1])
				}
			}
			for _, m := range []string{"go_goroutines", "process_cpu_seconds_total",
				// The collector's share of the CPU, which facadebench reads.
				"\ngo_cpu_classes_gc_total_cpu_seconds_total ", "\ngo_cpu_classes_user_cpu_seconds_total ", "\ngo_cpu_classes_scavenge_total_cpu_seconds_total "} {
				if !strings.Contains(text, m) {
					t.Errorf("no %q: the runtime and process collectors are missing", m)
				}
			}
			// Accounts appear only as the ones the facade holds
			// credentials for (T12345678 here); ids and secrets never.
			leaks := append([]string{"grant-secretish", "gw-grant", dinterotest.ClientSecret, fake.Bearer("T12345678")[len("Bearer "):]}, fake.Mock.IssuedTokens("T12345678")...)
			for _, leak := range leaks {
				if strings.Contains(text, leak) {
					t.Errorf("a metric label holds %q", leak)
				}
			}
			if n := len(regexp.MustCompile(`(?m)^dintero_upstream_requests_total\{`).FindAllString(text, -1)); n > 10 {
				t.Errorf("%d request series after a few calls; labels must stay bounded", n)
			}
		})
	}
}

// TestTracing records spans in memory: the gRPC server span, the upstream
// client span in the same trace, the traceparent Dintero received, and no
// secret in any attribute.
func TestTracing(t *testing.T) {
	const code, code2 = "vc-trace-SECRET-5150", "vc-trace-SECRET-5151"
	fake := dinterotest.New(t)
	fake.AddCode("T123", code)
	fake.AddCode("T123", code2)
	token := fake.Bearer("T123")[len("Bearer "):]
	rec := tracetest.NewSpanRecorder()
	tp := trace.NewTracerProvider(trace.WithSpanProcessor(rec))
	f := startFacade(t, fake.URL, nil, nil, func(o *Options) { o.TracerProvider = tp })
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token)
	resp, err := f.client.Authorize(ctx, &authv1.AuthorizeRequest{Oid: "T123", Audience: dinteromock.Audience("T123"), ResponseType: "authenticate", ClientId: dinterotest.App, VerificationCode: code, RedirectUri: dinterotest.Callback})
	if err != nil {
		t.Fatal(err)
	}
	idToken := resp.GetIdToken()
	if code, _, body := f.do(t, http.MethodPost, "/v1/accounts/T123/auth/authorize?audience=https%3A%2F%2Fapi.dintero.com%2Fv1%2Faccounts%2FT123&response_type=authenticate&client_id=client-1&verification_code="+code2, map[string]string{"Authorization": "Bearer " + token}); code != 200 {
		t.Fatalf("gateway authorize: %d %s", code, body)
	}
	spans := rec.Ended()
	var server, client, keys, gateway int
	var reqs []dinterotest.Request
	for _, r := range fake.Requests() {
		if r.Op == dinterotest.OpAuthorize {
			reqs = append(reqs, r)
		}
	}
	for _, s := range spans {
		switch {
		case s.Name() == authv1.AuthService_Authorize_FullMethodName[1:] || s.Name() == "dintero.auth.v1.AuthService/Authorize":
			server++
			// The upstream call of this trace must have carried its id.
			if !strings.Contains(reqs[0].Header.Get("Traceparent"), s.SpanContext().TraceID().String()) {
				t.Errorf("Dintero got traceparent %q; want trace %s", reqs[0].Header.Get("Traceparent"), s.SpanContext().TraceID())
			}
		case s.Name() == "Dintero POST":
			client++
		case s.Name() == "Dintero GET":
			keys++
		case s.Name() == "gateway POST":
			gateway++
		}
		for _, a := range s.Attributes() {
			if v := a.Value.String(); strings.Contains(v, "SECRET") || strings.Contains(v, token) || strings.Contains(v, idToken) {
				t.Errorf("span %q attribute %s holds a secret: %s", s.Name(), a.Key, v)
			}
		}
		for _, e := range s.Events() {
			for _, a := range e.Attributes {
				if v := a.Value.String(); strings.Contains(v, "SECRET") || strings.Contains(v, token) {
					t.Errorf("span %q event %q holds a secret: %s", s.Name(), e.Name, v)
				}
			}
		}
	}
	if server != 1 || client != 2 || keys != 1 || gateway != 1 {
		names := make([]string, 0, len(spans))
		for _, s := range spans {
			names = append(names, s.Name())
		}
		t.Errorf("got spans %v; want one gRPC server span, one gateway span, two Dintero authorize spans and one of its keys", names)
	}
	for i, r := range reqs {
		if r.Header.Get("Traceparent") == "" {
			t.Errorf("Dintero request %d had no traceparent", i)
		}
		if r.Query.Get("verification_code") != []string{code, code2}[i] {
			t.Errorf("Dintero request %d lost its query: %v", i, r.Query)
		}
	}
}

// TestAuditIgnoresLogLevel: with --log-level error the per-call lines are
// gone, the audit line is not.
func TestAuditIgnoresLogLevel(t *testing.T) {
	fake := dinterotest.New(t)
	fake.AddGrants("T123", "g-audit")
	f := startFacade(t, fake.URL, []string{"--log-level", "error"}, nil)
	if _, err := f.client.DeleteClientGrant(withBearer(context.Background(), fake, "T123"), &authv1.DeleteClientGrantRequest{Oid: "T123", Id: "g-audit"}); err != nil {
		t.Fatal(err)
	}
	// An Authorize refused before it is sent is a call line at INFO.
	if _, err := f.client.Authorize(withBearer(context.Background(), fake, "T123"), &authv1.AuthorizeRequest{}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("got %v; want InvalidArgument", err)
	}
	logs := f.log.String()
	if strings.Contains(logs, `"msg":"call"`) || !strings.Contains(logs, `"msg":"audit"`) || !strings.Contains(logs, `"grant_id":"g-audit"`) {
		t.Errorf("want the audit line and no call line at --log-level error:\n%s", logs)
	}
}

func TestTLS(t *testing.T) {
	pki := dinterotest.NewPKI(t)
	fake := dinterotest.New(t)
	t.Run("tls", func(t *testing.T) {
		fake.AddGrants("T123", "g-tls-1", "g-tls-2")
		f := startFacade(t, fake.URL, []string{"--tls-cert", pki.CertFile, "--tls-key", pki.KeyFile}, nil)
		conn := tlsConn(t, f.grpcAddr, pki.ClientTLS())
		if _, err := authv1.NewAuthServiceClient(conn).DeleteClientGrant(withBearer(context.Background(), fake, "T123"), &authv1.DeleteClientGrantRequest{Oid: "T123", Id: "g-tls-1"}); err != nil {
			t.Errorf("gRPC over TLS: %v", err)
		}
		if err := httpsDelete(t, f, fake, "g-tls-2", pki.ClientTLS()); err != nil {
			t.Errorf("HTTPS: %v", err)
		}
		// Go's TLS server answers a plain HTTP request with a 400.
		if resp, err := http.Get(f.httpURL + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("plain HTTP on the TLS listener: got %d; want 400", resp.StatusCode)
			}
		}
	})
	t.Run("mtls", func(t *testing.T) {
		fake.AddGrants("T123", "g-mtls-1", "g-mtls-2", "g-refused")
		f := startFacade(t, fake.URL, []string{"--tls-cert", pki.CertFile, "--tls-key", pki.KeyFile, "--client-ca", pki.CAFile}, nil)
		good := pki.Client(t, "refunds", "spiffe://example.org/ns/payments/sa/refunds")
		conn := tlsConn(t, f.grpcAddr, pki.ClientTLS(good))
		if _, err := authv1.NewAuthServiceClient(conn).DeleteClientGrant(withBearer(context.Background(), fake, "T123"), &authv1.DeleteClientGrantRequest{Oid: "T123", Id: "g-mtls-1"}); err != nil {
			t.Errorf("gRPC with a client certificate: %v", err)
		}
		if err := httpsDelete(t, f, fake, "g-mtls-2", pki.ClientTLS(good)); err != nil {
			t.Errorf("HTTPS with a client certificate: %v", err)
		}
		if n := strings.Count(f.log.String(), `"identity":"spiffe://example.org/ns/payments/sa/refunds"`); n != 2 {
			t.Errorf("got %d audit lines naming the mTLS identity; want 2 (gRPC and gateway):\n%s", n, f.log.String())
		}
		// Without a certificate, or with one from another CA: refused.
		other := dinterotest.NewPKI(t).Client(t, "intruder", "")
		for name, cfg := range map[string]*tls.Config{"no certificate": pki.ClientTLS(), "another CA": pki.ClientTLS(other)} {
			conn := tlsConn(t, f.grpcAddr, cfg)
			if _, err := authv1.NewAuthServiceClient(conn).DeleteClientGrant(withBearer(context.Background(), fake, "T123"), &authv1.DeleteClientGrantRequest{Oid: "T123", Id: "g-refused"}); err == nil {
				t.Errorf("gRPC with %s: accepted", name)
			}
			if err := httpsDelete(t, f, fake, "g-refused", cfg); err == nil {
				t.Errorf("HTTPS with %s: accepted", name)
			}
		}
		if n := fake.Count(dinterotest.OpDelete); n != 4 {
			t.Errorf("Dintero got %d deletes; want 4 (the refused callers sent nothing)", n)
		}
	})
}

func tlsConn(t *testing.T, addr string, cfg *tls.Config) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func httpsDelete(t *testing.T, f *facade, fake *dinterotest.Server, id string, cfg *tls.Config) error {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: cfg}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodDelete, strings.Replace(f.httpURL, "http://", "https://", 1)+"/v1/accounts/T123/auth/client-grants/"+id, nil)
	req.Header.Set("Authorization", fake.Bearer("T123"))
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return nil
}

// TestOTelErrorsAreJSON: with tracing on and the collector down, the
// exporter's failures reach stderr as the facade's JSON lines (WARN,
// "OpenTelemetry error"), not as Go log's plain lines: every line of the
// binary's stderr is JSON.
func TestOTelErrorsAreJSON(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+freeAddr(t)) // nothing listens
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
	t.Setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "300")
	fake := dinterotest.New(t)
	p := startBinary(t, fake.URL)
	conn, err := grpc.NewClient(p.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := authv1.NewAuthServiceClient(conn)
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(p.stderr.String(), `"msg":"OpenTelemetry error"`) {
		// Each call makes spans to export.
		_, _ = client.DeleteClientGrant(withBearer(context.Background(), fake, "T123"), &authv1.DeleteClientGrantRequest{Oid: "T123", Id: "missing"})
		if time.Now().After(deadline) {
			t.Fatalf("no OpenTelemetry error logged with the collector down:\n%s", p.stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	p.wait(t, 30*time.Second)
	for _, line := range strings.Split(strings.TrimSpace(p.stderr.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Errorf("a line of stderr is not JSON: %q", line)
		}
	}
	if !strings.Contains(p.stderr.String(), `"level":"WARN","msg":"OpenTelemetry error","error":"traces export: `) {
		t.Errorf("the exporter's failure is not a WARN line naming it:\n%s", p.stderr.String())
	}
}

// TestGatewaySpanPathHoldsNoSecret: the caller chooses the path, and may
// put a secret in it, a query behind an escaped "?" or a code as a segment.
// The gateway's span records the route's template when a route takes the
// path, else the path with every segment no route names replaced by "*";
// a gRPC call of a method the server does not have is unknown/unknown: no
// SECRET in any span's name, attribute, event or status, nor in the log.
func TestGatewaySpanPathHoldsNoSecret(t *testing.T) {
	fake := dinterotest.New(t)
	rec := tracetest.NewSpanRecorder()
	f := startFacade(t, fake.URL, nil, nil, func(o *Options) { o.TracerProvider = trace.NewTracerProvider(trace.WithSpanProcessor(rec)) })
	for _, tc := range []struct{ method, path, want string }{
		{http.MethodGet, "/v1/accounts/T123/auth/authorize%3Fverification_code%3DSECRET-1", "/v1/accounts/*/auth/*"},
		{http.MethodPost, "/v1/accounts/T123/auth/authorize%3Fcode=SECRET-2&x=y", "/v1/accounts/*/auth/*"},
		{http.MethodPost, "/v1/accounts/SECRET-3/auth/authorize", "/v1/accounts/{oid}/auth/authorize"},
		{http.MethodPost, "/v1/accounts/T123/auth/authorize:SECRET-4", "/v1/accounts/*/auth/*"},
		{http.MethodDelete, "/v1/accounts/T123/auth/client-grants/g5", "/v1/accounts/{oid}/auth/client-grants/{id}"},
		{http.MethodGet, "/v1/SECRET-6;code=SECRET-7/a/b/c/d/e/f/g/h/i/j/k/l/m/n/SECRET-8", "/v1/*/*/*/*/*/*/*/*/*/*/*/…"},
	} {
		rec.Reset()
		code, _, body := f.do(t, tc.method, tc.path, map[string]string{"Authorization": fake.Bearer("T123")})
		if code == 200 {
			t.Errorf("%s %s: got 200 %s; want a refusal", tc.method, tc.path, body)
		}
		var gw []string
		for _, s := range rec.Ended() {
			text := fmt.Sprintf("%s %v %s", s.Name(), s.Attributes(), s.Status().Description)
			for _, e := range s.Events() {
				text += fmt.Sprintf(" %s %v", e.Name, e.Attributes)
			}
			if strings.Contains(text, "SECRET") {
				t.Errorf("%s %s: a span holds the secret: %s", tc.method, tc.path, text)
			}
			if strings.HasPrefix(s.Name(), "gateway ") {
				for _, a := range s.Attributes() {
					if a.Key == "url.path" {
						gw = append(gw, a.Value.AsString())
					}
				}
			}
		}
		if len(gw) != 1 || tc.want != "" && gw[0] != tc.want {
			t.Errorf("%s %s: the gateway span's url.path is %q; want %q", tc.method, tc.path, gw, tc.want)
		}
	}
	// Over gRPC the caller chooses the method's name; grpc-go tags the call
	// before it looks the method up.
	for _, m := range []string{"/dintero.auth.v1.AuthService/Authorize?verification_code=SECRET-9", "/SECRET-10/x", "/dintero.auth.v1.AuthService/SECRET-11"} {
		rec.Reset()
		err := f.conn.Invoke(context.Background(), m, &authv1.AuthorizeRequest{}, &authv1.AuthorizeResponse{})
		if status.Code(err) != codes.Unimplemented {
			t.Errorf("%s: got %v; want Unimplemented", m, err)
		}
		// grpc-go starts the span and never ends it (no stats.End for a
		// method it does not have): a processor sees it at its start.
		started := rec.Started()
		for _, s := range started {
			if text := fmt.Sprintf("%s %v", s.Name(), s.Attributes()); strings.Contains(text, "SECRET") {
				t.Errorf("%s: a span holds the secret: %s", m, text)
			}
		}
		if len(started) != 1 || started[0].Name() != "unknown/unknown" {
			t.Errorf("%s: got %d spans; want one named unknown/unknown", m, len(started))
		}
	}
	// The oid is no secret: the call's line names the invalid one (cut),
	// as it does over gRPC.
	logs := f.log.String()
	for _, s := range []string{"SECRET-1", "SECRET-2", "SECRET-4", "SECRET-6", "SECRET-7", "SECRET-8", "SECRET-9", "SECRET-10", "SECRET-11"} {
		if strings.Contains(logs, s) {
			t.Errorf("the log holds %s:\n%s", s, logs)
		}
	}
}

// TestDinteroSpanHoldsNoEchoedSecret: a broken Dintero, or a proxy before
// it, may answer with what the request carried: here the request line,
// the authorize query with its verification code, and the Authorization
// header, as the status line and a header line of an answer that does not
// parse. The transport's error quotes the server's text; the call's error
// and log line mask it, and so must the span of the call to Dintero (its
// status, attributes and events), over gRPC and through the gateway.
func TestDinteroSpanHoldsNoEchoedSecret(t *testing.T) {
	const code, code2 = "vc-echo-SECRET-6161", "vc-echo-SECRET-6162"
	fake := dinterotest.New(t)
	fake.OpenKeys()
	token := fake.Bearer("T123")[len("Bearer "):]
	fake.HandleRaw(dinterotest.OpAuthorize, func(w http.ResponseWriter, r *http.Request) {
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		// The request line as the status line: its status code is
		// the path and query, which net/http quotes.
		fmt.Fprintf(buf, "%s %s %s\r\n", r.Method, r.URL.RequestURI(), r.Header.Get("Authorization"))
		_ = buf.Flush()
	})
	rec := tracetest.NewSpanRecorder()
	f := startFacade(t, fake.URL, nil, nil, func(o *Options) { o.TracerProvider = trace.NewTracerProvider(trace.WithSpanProcessor(rec)) })
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token)
	_, err := f.client.Authorize(ctx, &authv1.AuthorizeRequest{Oid: "T123", Audience: dinteromock.Audience("T123"), ResponseType: "authenticate", ClientId: dinterotest.App, VerificationCode: code, RedirectUri: dinterotest.Callback})
	if err == nil {
		t.Fatal("got no error from a broken answer")
	}
	if strings.Contains(err.Error(), "SECRET") || strings.Contains(err.Error(), token) {
		t.Errorf("the call's error holds a secret: %v", err)
	}
	status, _, body := f.do(t, http.MethodPost, "/v1/accounts/T123/auth/authorize?audience=https%3A%2F%2Fapi.dintero.com%2Fv1%2Faccounts%2FT123&response_type=authenticate&client_id=client-1&verification_code="+code2, map[string]string{"Authorization": "Bearer " + token})
	if status == 200 || strings.Contains(string(body), "SECRET") {
		t.Errorf("gateway: got %d %s; want an error without the code", status, body)
	}
	var dintero int
	for _, s := range rec.Ended() {
		text := fmt.Sprintf("%s %v %s", s.Name(), s.Attributes(), s.Status().Description)
		for _, e := range s.Events() {
			text += fmt.Sprintf(" %s %v", e.Name, e.Attributes)
		}
		if strings.Contains(text, "SECRET") || strings.Contains(text, token) {
			t.Errorf("span %q holds a secret: %s", s.Name(), text)
		}
		if s.Name() == "Dintero POST" {
			dintero++
		}
	}
	if dintero != 2 {
		t.Errorf("got %d spans of Dintero's authorize; want 2", dintero)
	}
	if logs := f.log.String(); strings.Contains(logs, "SECRET") || strings.Contains(logs, token) {
		t.Errorf("the log holds a secret:\n%s", logs)
	}
}
