package serve_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/dintero-facade/dintero-facade/internal/serve"
)

// TestListenAllOrNone: a listener that cannot be bound fails Listen,
// naming it.
func TestListenAllOrNone(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	g := serve.New(grpc.NewServer(), "127.0.0.1:0", &serve.HTTP{Name: "HTTP", Addr: "127.0.0.1:0", Server: &http.Server{}}, &serve.HTTP{Name: "metrics", Addr: busy.Addr().String(), Server: &http.Server{}})
	err = g.Listen(context.Background())
	var le *serve.ListenError
	if err == nil || !strings.Contains(err.Error(), "metrics listener") || !errors.As(err, &le) || le.Name != "metrics" || le.Addr != busy.Addr().String() || !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("got %#v; want the metrics listener's *serve.ListenError at %s, address in use", err, busy.Addr())
	}
}

// TestDrain: a call in flight past the grace is cut and reported; a side
// server's request is not a call, and CloseSide ends it at once.
func TestDrain(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan struct{}, 1)
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	for _, tc := range []struct {
		name    string
		side    bool
		wantCut bool
	}{
		{"a call in flight", false, true},
		{"a side request", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &serve.HTTP{Name: "HTTP", Addr: "127.0.0.1:0", Server: &http.Server{Handler: slow, ReadHeaderTimeout: time.Second}, Side: tc.side}
			g := serve.New(grpc.NewServer(), "127.0.0.1:0", h)
			if err := g.Listen(context.Background()); err != nil {
				t.Fatal(err)
			}
			addrs := g.Serve()
			go func() {
				tr := &http.Transport{}
				defer tr.CloseIdleConnections()
				if resp, err := (&http.Client{Transport: tr}).Get("http://" + addrs["HTTP"].String()); err == nil {
					resp.Body.Close()
				}
			}()
			<-arrived
			start := time.Now()
			g.CloseSide()
			if cut := g.Drain(200 * time.Millisecond); cut != tc.wantCut {
				t.Errorf("cut %v; want %v", cut, tc.wantCut)
			}
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("the drain took %v", took)
			}
		})
	}
	close(release)
}
