package upstream_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dintero-facade/dintero-facade/internal/dinterotest"
	"github.com/dintero-facade/dintero-facade/upstream"
)

func TestHTTP2ToHTTPS(t *testing.T) {
	fake := dinterotest.New(t)
	fake.AddGrants("T123", "g")
	var proto atomic.Value
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proto.Store(r.Proto)
		fake.Mock.ServeHTTP(w, r)
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	tr := upstream.NewTransport(5 * time.Second)
	defer tr.CloseIdleConnections()
	tr.TLSClientConfig = srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	c, err := upstream.New(upstream.Options{BaseURL: srv.URL + "/v1", Transport: tr})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.DeleteClientGrant(context.Background(), caller(fake), "T123", "g"); err != nil {
		t.Fatal(err)
	}
	if got := proto.Load(); got != "HTTP/2.0" {
		t.Errorf("got %v; want HTTP/2.0", got)
	}
}

// TestTracingTransportClosesIdleConnections: the query-hiding wrapping of
// the tracing transport passes CloseIdleConnections on, so that a stopping
// facade closes its connections to Dintero with tracing on too.
func TestTracingTransportClosesIdleConnections(t *testing.T) {
	closed := &closeCounter{}
	rt := upstream.TracingTransport(closed, nil, nil)
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
