package gateway_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/metadata"

	authv1 "github.com/dintero-facade/dintero-facade/gen/dintero/auth/v1"
	"github.com/dintero-facade/dintero-facade/internal/gateway"
)

// metadataRecorder is an AuthService that records the metadata and the deadline
// of the calls it gets.
type metadataRecorder struct {
	authv1.UnimplementedAuthServiceServer
	calls chan seenCall
}

type seenCall struct {
	md       metadata.MD
	deadline bool
}

func (r *metadataRecorder) DeleteClientGrant(ctx context.Context, req *authv1.DeleteClientGrantRequest) (*authv1.DeleteClientGrantResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	_, ok := ctx.Deadline()
	r.calls <- seenCall{md: md, deadline: ok}
	return &authv1.DeleteClientGrantResponse{Grant: &authv1.ClientGrant{Id: req.GetId()}}, nil
}

// TestGatewayMetadataHeaders: the gateway passes as metadata only the
// headers the JSON API documents (Authorization, X-Request-Id, User-Agent,
// Dintero-Mock-Fault), each under the key a gRPC call has it; every other
// header is no metadata. A Grpc-Metadata-<key> header, which grpc-gateway
// would pass as <key> (a second authorization, a request id past its
// check, a reserved grpc- key), is refused 400 naming the prefix, never
// quoting the value, and the service is not called.
func TestGatewayMetadataHeaders(t *testing.T) {
	rec := &metadataRecorder{calls: make(chan seenCall, 1)}
	base := serveGateway(t, rec, gateway.Options{MaxQuery: headerLimit, MaxHeaderBytes: headerLimit})

	code, _, body := send(t, http.MethodDelete, base+deletePath, nil, map[string]string{
		"Authorization": "Bearer caller-token", "X-Request-Id": "req-1", "User-Agent": "ua/1", gateway.MockFaultHeader: "reset",
		"X-Custom": "c", "Cookie": "k=v", "Te": "trailers", "Grpc-Timeout": "5S", "Proxy-Authorization": "Basic eA==",
	})
	if code != http.StatusOK {
		t.Fatalf("got %d %s; want 200", code, body)
	}
	c := <-rec.calls
	var keys []string
	for k := range c.md {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	// x-forwarded-* are grpc-gateway's own, from the connection.
	want := []string{"authorization", "dintero-mock-fault", "user-agent", "x-forwarded-for", "x-forwarded-host", "x-request-id"}
	if !slices.Equal(keys, want) {
		t.Errorf("got metadata keys %v; want %v", keys, want)
	}
	for k, v := range map[string]string{"authorization": "Bearer caller-token", "x-request-id": "req-1", "user-agent": "ua/1", "dintero-mock-fault": "reset"} {
		if got := c.md.Get(k); len(got) != 1 || got[0] != v {
			t.Errorf("got %s %q; want [%q]", k, got, v)
		}
	}
	if !c.deadline {
		t.Error("Grpc-Timeout set no deadline")
	}

	many := map[string]string{}
	for i := range 50 {
		many[fmt.Sprintf("Grpc-Metadata-K%d", i)] = "v"
	}
	for _, h := range []map[string]string{
		{"Grpc-Metadata-Authorization": "Bearer SECRET-token"},
		{"Authorization": "Bearer caller-token", "Grpc-Metadata-Authorization": "Bearer SECRET-token"},
		{"X-Request-Id": "req-2", "Grpc-Metadata-X-Request-Id": "SECRET id with spaces"},
		{"Grpc-Metadata-Grpc-Timeout": "1n"},
		{"Grpc-Metadata-User-Agent": "SECRET-ua"},
		{"Grpc-Metadata-Dintero-Mock-Fault": "reset"},
		{"Grpc-Metadata-Foo-Bin": "U0VDUkVU"},
		{"grpc-metadata-x": "SECRET"},
		{"Grpc-Metadata-": "SECRET"},
		many,
	} {
		code, _, body := send(t, http.MethodDelete, base+deletePath, nil, h)
		if code != http.StatusBadRequest || !strings.Contains(string(body), "invalid Grpc-Metadata-* header") || strings.Contains(string(body), "SECRET") {
			t.Errorf("%d headers %.40v…: got %d %s; want 400 naming Grpc-Metadata-*, quoting nothing", len(h), h, code, body)
		}
		// The refusal says which headers to send instead: every one the
		// JSON API reads by its own name.
		for _, name := range []string{"Authorization", "X-Request-Id", "User-Agent", "Grpc-Timeout"} {
			if !strings.Contains(string(body), name) {
				t.Errorf("%.40v…: got %s; want the headers the API takes, %s among them", h, body, name)
			}
		}
		select {
		case c := <-rec.calls:
			t.Errorf("%.40v…: the service was called, with %v", h, c.md)
		default:
		}
	}
}
