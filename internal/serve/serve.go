// Package serve runs a group of servers, one gRPC server and HTTP servers,
// as one: their listeners are bound all or none, a server that fails on
// its own is reported, and at shutdown the servers that carry calls are
// given a grace to finish them, while side servers (probes, metrics,
// profiles) are closed at once and never count as cut calls. The order of
// a shutdown is the caller's.
package serve

import (
	"context"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
)

// HTTP is an HTTP server of the group and the address it listens on.
type HTTP struct {
	Name, Addr string
	Server     *http.Server
	// Side servers serve no calls.
	Side bool
	l    net.Listener
}

// Group is a gRPC server and HTTP servers run as one.
type Group struct {
	grpc     *grpc.Server
	grpcAddr string
	grpcL    net.Listener
	https    []*HTTP
	failed   chan error
}

// New returns a group of gs, to listen on grpcAddr, and https.
func New(gs *grpc.Server, grpcAddr string, https ...*HTTP) *Group {
	return &Group{grpc: gs, grpcAddr: grpcAddr, https: https, failed: make(chan error, len(https)+1)}
}

// ListenError is a listener that could not be bound: the server's name
// (its name in the group, "gRPC" for the gRPC server), the address it was
// to listen on, and why, so that the caller can name its own setting of
// that address.
type ListenError struct {
	Name, Addr string
	Err        error
}

func (e *ListenError) Error() string { return e.Name + " listener: " + e.Err.Error() }

func (e *ListenError) Unwrap() error { return e.Err }

// Listen binds every listener, or none: on an error it closes those it
// bound. The error is a *ListenError.
func (g *Group) Listen(ctx context.Context) (err error) {
	var lc net.ListenConfig
	var bound []net.Listener
	defer func() {
		if err != nil {
			for _, l := range bound {
				l.Close()
			}
		}
	}()
	bind := func(what, addr string) (net.Listener, error) {
		l, err := lc.Listen(ctx, "tcp", addr)
		if err != nil {
			return nil, &ListenError{Name: what, Addr: addr, Err: err}
		}
		bound = append(bound, l)
		return l, nil
	}
	if g.grpcL, err = bind("gRPC", g.grpcAddr); err != nil {
		return err
	}
	for _, s := range g.https {
		if s.l, err = bind(s.Name, s.Addr); err != nil {
			return err
		}
	}
	return nil
}

// Serve starts every server on its listener and returns the bound
// addresses, the gRPC server's under "gRPC", the others under their names.
func (g *Group) Serve() map[string]net.Addr {
	addrs := map[string]net.Addr{"gRPC": g.grpcL.Addr()}
	go func() { g.failed <- g.grpc.Serve(g.grpcL) }()
	for _, s := range g.https {
		addrs[s.Name] = s.l.Addr()
		go func() {
			if s.Server.TLSConfig != nil {
				g.failed <- s.Server.ServeTLS(s.l, "", "")
				return
			}
			g.failed <- s.Server.Serve(s.l)
		}()
	}
	return addrs
}

// GRPCAddr is the gRPC server's bound address; nil before Listen.
func (g *Group) GRPCAddr() net.Addr {
	if g.grpcL == nil {
		return nil
	}
	return g.grpcL.Addr()
}

// Failed reports a server that stopped on its own.
func (g *Group) Failed() <-chan error { return g.failed }

// Stop stops every server at once.
func (g *Group) Stop() {
	g.grpc.Stop()
	for _, s := range g.https {
		_ = s.Server.Close()
	}
}

// CloseSide closes the side servers at once: a scrape or a profile under
// way cannot hold up the exit.
func (g *Group) CloseSide() {
	for _, s := range g.https {
		if s.Side {
			_ = s.Server.Close()
		}
	}
}

// Drain stops the servers that carry calls, giving the calls in flight
// grace to finish; cut reports that some did not, and were cut.
func (g *Group) Drain(grace time.Duration) (cut bool) {
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	var wg sync.WaitGroup
	var cutAny atomic.Bool
	wg.Go(func() {
		done := make(chan struct{})
		go func() { g.grpc.GracefulStop(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			cutAny.Store(true)
			g.grpc.Stop()
			<-done
		}
	})
	for _, s := range g.https {
		if s.Side {
			continue
		}
		wg.Go(func() {
			if err := s.Server.Shutdown(ctx); err != nil {
				cutAny.Store(true)
				_ = s.Server.Close()
			}
		})
	}
	wg.Wait()
	return cutAny.Load()
}
