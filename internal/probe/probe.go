// Package probe is what tells an orchestrator whether the facade serves:
// gRPC health and GET /healthz, from one state, NOT_SERVING until the
// warm-up is over and again from the start of shutdown (readiness); and
// GET /livez, which says only that the process answers (liveness), so that
// a slow warm-up or a drain never gets the container restarted.
package probe

import (
	"net/http"
	"strings"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// State is whether the facade serves, as gRPC health (for the whole server
// and for each named service) and /healthz report it. It starts
// NOT_SERVING.
type State struct {
	health   *health.Server
	services []string
	serving  atomic.Bool
}

// New returns a State, NOT_SERVING, for the server and services.
func New(services ...string) *State {
	s := &State{health: health.NewServer(), services: append([]string{""}, services...)}
	for _, name := range s.services {
		s.health.SetServingStatus(name, healthpb.HealthCheckResponse_NOT_SERVING)
	}
	return s
}

// Register serves gRPC health on r.
func (s *State) Register(r grpc.ServiceRegistrar) { healthpb.RegisterHealthServer(r, s.health) }

// Serve reports SERVING.
func (s *State) Serve() {
	s.serving.Store(true)
	for _, name := range s.services {
		s.health.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
}

// Shutdown reports NOT_SERVING for good.
func (s *State) Shutdown() {
	s.serving.Store(false)
	s.health.Shutdown()
}

// Healthz answers 200 while serving, 503 otherwise.
func (s *State) Healthz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !s.serving.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("not serving\n"))
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
}

// Livez answers 200 whenever the process answers at all: during the
// warm-up and the drain too, when /healthz answers 503. It is the liveness
// probe's path: a restart cures neither a slow Dintero nor a shutdown.
func Livez() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("alive\n"))
	})
}

// Handler serves the probes on a plain listener of their own: gRPC health
// (the kubelet's gRPC probe speaks HTTP/2 without TLS, so the server
// must allow unencrypted HTTP/2), GET /healthz and GET /livez. Under mutual TLS the
// kubelet, which has no client certificate, could reach neither on the
// service's listeners. stop stops the gRPC server behind it, which has no
// listener of its own.
func (s *State) Handler() (_ http.Handler, stop func()) {
	gs := grpc.NewServer()
	s.Register(gs)
	mux := http.NewServeMux()
	mux.Handle("GET /healthz", s.Healthz())
	mux.Handle("GET /livez", Livez())
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
			gs.ServeHTTP(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	}), gs.Stop
}
