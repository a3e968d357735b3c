package telemetry_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/dintero-facade/dintero-facade/internal/telemetry"
)

// echoingTransport fails as a transport does when the server echoes the
// request: the round trip's error quotes its URL and Authorization (a
// status line that does not parse), or the body's read does (an HTTP/2
// GOAWAY's debug data).
type echoingTransport struct{ inBody bool }

func (e echoingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	user, pass, _ := r.BasicAuth()
	echo := fmt.Errorf("malformed HTTP status code %q after %q (%s:%s)", r.URL.String(), r.Header.Get("Authorization"), user, pass)
	if !e.inBody {
		return nil, echo
	}
	return &http.Response{StatusCode: 200, Header: http.Header{}, Body: io.NopCloser(io.MultiReader(strings.NewReader("{"), errReader{echo})), Request: r}, nil
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// TestTracingTransportMasksEchoes: the span of a call to Dintero records
// the transport's error, whose text may quote what a broken server or
// proxy echoed of the request: no value of the query, no Authorization
// value (Bearer or Basic, raw or decoded) reaches its status or events,
// from the round trip or from the body's read; the client still gets the
// transport's own error.
func TestTracingTransportMasksEchoes(t *testing.T) {
	const code, token, secret = "vc-SECRET-8080", "tok-SECRET-9090", "cs-SECRET-7070"
	for _, tc := range []struct {
		name   string
		inBody bool
		basic  bool
	}{{"round trip, bearer", false, false}, {"round trip, basic", false, true}, {"body, bearer", true, false}} {
		t.Run(tc.name, func(t *testing.T) {
			rec := tracetest.NewSpanRecorder()
			tel, err := telemetry.New(context.Background(), telemetry.Options{TracerProvider: trace.NewTracerProvider(trace.WithSpanProcessor(rec))})
			if err != nil {
				t.Fatal(err)
			}
			rt := tel.Transport(echoingTransport{inBody: tc.inBody})
			req, _ := http.NewRequest(http.MethodPost, "http://dintero.test/v1/accounts/T1/auth/authorize?client_id=c&verification_code="+code, nil)
			if tc.basic {
				req.SetBasicAuth("client-1", secret)
			} else {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			res, err := rt.RoundTrip(req)
			switch {
			case !tc.inBody && (err == nil || !strings.Contains(err.Error(), code)):
				t.Fatalf("got %v; want the transport's own error", err)
			case tc.inBody && err != nil:
				t.Fatal(err)
			case tc.inBody:
				_, err = io.ReadAll(res.Body)
				if err == nil || !strings.Contains(errors.Unwrap(err).Error(), code) {
					t.Errorf("reading the body: got %v; want the transport's error beneath", err)
				}
				res.Body.Close()
			}
			spans := rec.Ended()
			if len(spans) != 1 {
				t.Fatalf("got %d spans; want 1", len(spans))
			}
			s := spans[0]
			text := fmt.Sprintf("%s %v %s", s.Name(), s.Attributes(), s.Status().Description)
			for _, e := range s.Events() {
				text += fmt.Sprintf(" %s %v", e.Name, e.Attributes)
			}
			if !strings.Contains(text, "malformed") {
				t.Errorf("the span does not record the error: %s", text)
			}
			for _, v := range []string{"SECRET", base64.StdEncoding.EncodeToString([]byte("client-1:" + secret))} {
				if strings.Contains(text, v) {
					t.Errorf("the span holds %q: %s", v, text)
				}
			}
		})
	}
}
