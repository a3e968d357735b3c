package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	authv1 "github.com/dintero-facade/dintero-facade/gen/dintero/auth/v1"
	"github.com/dintero-facade/dintero-facade/internal/dinterotest"
)

// TestGRPCOnHTTPPort: a gRPC client pointed at --http-addr by mistake
// (grpcurl -plaintext localhost:8080, the newcomer's) is answered at once,
// FailedPrecondition, with the port it wants; over TLS too. Its deadline
// is far, and wait-for-ready keeps it from failing fast: only an answer
// from the server ends the call with FailedPrecondition (a port that
// speaks no HTTP/2 leaves it waiting until DeadlineExceeded). Dintero is
// not called.
func TestGRPCOnHTTPPort(t *testing.T) {
	for _, tc := range []struct {
		name string
		tls  bool
	}{{"plaintext (h2c)", false}, {"TLS", true}} {
		t.Run(tc.name, func(t *testing.T) {
			fake := dinterotest.New(t)
			fake.AddGrants("T123", "g")
			var args []string
			creds := grpc.WithTransportCredentials(insecure.NewCredentials())
			if tc.tls {
				pki := dinterotest.NewPKI(t)
				args = []string{"--tls-cert", pki.CertFile, "--tls-key", pki.KeyFile}
				creds = grpc.WithTransportCredentials(credentials.NewTLS(pki.ClientTLS()))
			}
			f := startFacade(t, fake.URL, args, nil)
			conn, err := grpc.NewClient(strings.TrimPrefix(f.httpURL, "http://"), creds)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			ctx, cancel := context.WithTimeout(withBearer(context.Background(), fake, "T123"), time.Minute)
			defer cancel()
			want := "this is the facade's HTTP/JSON port (--http-addr), which serves no gRPC; gRPC is served on --grpc-addr (" + f.grpcAddr + ")"

			_, err = authv1.NewAuthServiceClient(conn).DeleteClientGrant(ctx, &authv1.DeleteClientGrantRequest{Oid: "T123", Id: "g"}, grpc.WaitForReady(true))
			if st := status.Convert(err); st.Code() != codes.FailedPrecondition || st.Message() != want {
				t.Errorf("DeleteClientGrant on the HTTP port: got %v; want FailedPrecondition %q", err, want)
			}
			// grpcurl's first call: reflection, a stream.
			stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx, grpc.WaitForReady(true))
			if err == nil {
				_ = stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}})
				_, err = stream.Recv()
			}
			if st := status.Convert(err); st.Code() != codes.FailedPrecondition || st.Message() != want {
				t.Errorf("reflection on the HTTP port: got %v; want FailedPrecondition %q", err, want)
			}
			if n := fake.Count(dinterotest.OpDelete); n != 0 {
				t.Errorf("Dintero got %d deletes; want none", n)
			}
		})
	}
}

// TestHTTPPortOverH2C: the HTTP port's JSON face answers HTTP/2 without
// TLS as it answers HTTP/1.1: the gateway, the probes, /metrics and
// /openapi.json, and the same bounds on headers and bodies.
func TestHTTPPortOverH2C(t *testing.T) {
	fake := dinterotest.New(t)
	fake.AddGrants("T123", "g")
	f := startFacade(t, fake.URL, nil, nil)
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	do := func(method, path string, header map[string]string, body string) (int, []byte, error) {
		t.Helper()
		req, err := http.NewRequest(method, f.httpURL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if body == "" {
			req.Body = nil
		}
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := c.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		if resp.ProtoMajor != 2 {
			t.Errorf("%s %s: answered over %s; want HTTP/2", method, path, resp.Proto)
		}
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, b, err
	}
	for _, path := range []string{"/healthz", "/livez", "/metrics", "/openapi.json"} {
		if code, body, err := do(http.MethodGet, path, nil, ""); err != nil || code != http.StatusOK {
			t.Errorf("GET %s over h2c: got %d %s, %v; want 200", path, code, body, err)
		}
	}
	const grant = "/v1/accounts/T123/auth/client-grants/g"
	if code, body, err := do(http.MethodDelete, grant, map[string]string{"Authorization": "Bearer " + strings.Repeat("x", 20000)}, ""); err != nil || code != http.StatusRequestHeaderFieldsTooLarge || !strings.Contains(dinterotest.ParseErrorBody(t, body).Message, "over the limit of 16384 bytes") {
		t.Errorf("a 20 KB header over h2c: got %d %s, %v; want 431 in Dintero's shape naming the limit", code, body, err)
	}
	// Far over the limit, the client does not even send it: the server
	// told it its limit (SETTINGS_MAX_HEADER_LIST_SIZE).
	if code, body, err := do(http.MethodDelete, grant, map[string]string{"Authorization": "Bearer " + strings.Repeat("x", 64<<10)}, ""); err == nil && code != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("64 KiB of headers over h2c: got %d %s; want 431 or refused", code, body)
	}
	if code, body, err := do(http.MethodDelete, grant, bearer(fake, "T123"), "x"); err != nil || code != http.StatusRequestEntityTooLarge {
		t.Errorf("a body on DELETE over h2c: got %d %s, %v; want 413", code, body, err)
	}
	if n := fake.Count(dinterotest.OpDelete); n != 0 {
		t.Errorf("Dintero got %d deletes before the good one; want none", n)
	}
	if code, body, err := do(http.MethodDelete, grant, bearer(fake, "T123"), ""); err != nil || code != http.StatusOK || !strings.Contains(string(body), "OUTCOME_DELETED") {
		t.Errorf("DELETE over h2c: got %d %s, %v; want 200, deleted", code, body, err)
	}
}

// TestWrongPortMessage: a gRPC server on every interface is named by its
// port alone (":9090", not "[::]:9090", which no caller dials).
func TestWrongPortMessage(t *testing.T) {
	for _, tc := range []struct {
		addr net.Addr
		want string
	}{
		{&net.TCPAddr{IP: net.IPv6unspecified, Port: 9090}, "(:9090)"},
		{&net.TCPAddr{IP: net.IPv4zero, Port: 9090}, "(:9090)"},
		{&net.TCPAddr{IP: net.IPv4(10, 0, 0, 7), Port: 9090}, "(10.0.0.7:9090)"},
	} {
		if got := wrongPort(tc.addr); !strings.HasSuffix(got, "gRPC is served on --grpc-addr "+tc.want) {
			t.Errorf("%v: got %q; want it to end in %s", tc.addr, got, tc.want)
		}
	}
}
