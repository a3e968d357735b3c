package telemetry_test

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"

	"go.opentelemetry.io/otel/trace/noop"

	"github.com/dintero-facade/dintero-facade/internal/telemetry"
)

// TestTracingTransportClosesIdleConnections: the query-hiding wrapping of
// the tracing transport passes CloseIdleConnections on, so that a stopping
// facade closes its connections to Dintero with tracing on too.
func TestTracingTransportClosesIdleConnections(t *testing.T) {
	tel, err := telemetry.New(context.Background(), telemetry.Options{TracerProvider: noop.NewTracerProvider()})
	if err != nil {
		t.Fatal(err)
	}
	closed := &closeCounter{}
	rt := tel.Transport(closed)
	if rt == http.RoundTripper(closed) {
		t.Fatal("with tracing on, the transport is not wrapped")
	}
	c, ok := rt.(interface{ CloseIdleConnections() })
	if !ok {
		t.Fatal("the tracing transport has no CloseIdleConnections")
	}
	c.CloseIdleConnections()
	if closed.n.Load() != 1 {
		t.Errorf("the transport underneath was told %d times; want 1", closed.n.Load())
	}
}

type closeCounter struct{ n atomic.Int32 }

func (c *closeCounter) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, errors.New("not used")
}
func (c *closeCounter) CloseIdleConnections() { c.n.Add(1) }
