package gateway_test

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	authv1 "github.com/dintero-facade/dintero-facade/gen/dintero/auth/v1"
)

var update = flag.Bool("update", false, "rewrite the gateway's part of the golden files")

// failing is an AuthService whose DeleteClientGrant fails with st.
type failing struct {
	authv1.UnimplementedAuthServiceServer
	st *status.Status
}

func (f *failing) DeleteClientGrant(context.Context, *authv1.DeleteClientGrantRequest) (*authv1.DeleteClientGrantResponse, error) {
	return nil, f.st.Err()
}

// TestErrorShapeGolden: each status in testdata/statuses (the service's
// kinds of error, as service's golden test has them) is answered in
// Dintero's shape with the HTTP status the golden file names: Dintero's
// own for Dintero's errors, grpc-gateway's for the code otherwise.
func TestErrorShapeGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "statuses", "*.golden"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	srv := &failing{}
	e := setup(t, srv)
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			b, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			grpcPart, httpPart, ok := strings.Cut(strings.TrimPrefix(string(b), "gRPC status:\n"), "\n\ngateway: HTTP ")
			if !ok {
				t.Fatalf("%s: no gateway part", file)
			}
			var sp spb.Status
			if err := protojson.Unmarshal([]byte(grpcPart), &sp); err != nil {
				t.Fatal(err)
			}
			srv.st = status.FromProto(&sp)
			code, _, body := e.do(t, "DELETE", "/v1/accounts/T123/auth/client-grants/g", map[string]string{"X-Request-Id": "golden-1"})
			if *update {
				var r authv1.ErrorResponse
				if err := protojson.Unmarshal(body, &r); err != nil {
					t.Fatal(err)
				}
				g, _ := protojson.MarshalOptions{Multiline: true, Indent: "  ", UseProtoNames: true}.Marshal(&r)
				out := "gRPC status:\n" + grpcPart + "\n\ngateway: HTTP " + strconv.Itoa(code) + "\n" + strings.ReplaceAll(string(g), ":  ", ": ") + "\n"
				if err := os.WriteFile(file, []byte(out), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			wantCode, wantBody, _ := strings.Cut(httpPart, "\n")
			if strconv.Itoa(code) != wantCode {
				t.Errorf("got HTTP %d; want %s", code, wantCode)
			}
			var got, want any
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatalf("%s: %v", body, err)
			}
			if err := json.Unmarshal([]byte(wantBody), &want); err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("body (-want +got):\n%s", d)
			}
		})
	}
}
