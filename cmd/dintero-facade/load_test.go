package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	authv1 "github.com/dintero-facade/dintero-facade/gen/dintero/auth/v1"
	"github.com/dintero-facade/dintero-facade/internal/dinteromock"
	"github.com/dintero-facade/dintero-facade/internal/dinterotest"
)

// loadCalls is the calls per path of TestLoad: 10,000, or
// FACADE_LOAD_CALLS.
func loadCalls(t *testing.T) int {
	if v := os.Getenv("FACADE_LOAD_CALLS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			t.Fatalf("FACADE_LOAD_CALLS=%q: want a positive number", v)
		}
		return n
	}
	return 10000
}

// TestLoad sends 10,000 DeleteClientGrant calls with 200 in flight, over
// gRPC and then through the gateway, to a Dintero that fails 5% of them
// (HTTP 500, which is not retried). Every call must get an answer, the
// successes must be exactly the calls Dintero accepted, the heap must stay
// flat and no goroutine may be left behind.
func TestLoad(t *testing.T) {
	calls, inFlight := loadCalls(t), 200
	// The mock's stateless mode: every delete finds its grant, and the
	// mock's memory does not grow with the calls.
	fake := dinterotest.New(t, dinterotest.Options{CountOnly: true, Mock: dinteromock.Options{Stateless: true}})
	var seen, accepted atomic.Int64
	fake.HandleRaw(dinterotest.OpDelete, func(w http.ResponseWriter, r *http.Request) {
		if seen.Add(1)%20 == 0 {
			dinterotest.WriteError(w, 500, "internal", "injected failure")
			return
		}
		accepted.Add(1)
		fake.Mock.ServeHTTP(w, r)
	})
	token := fake.Bearer("T123")
	// The logs go nowhere: a buffer of 20,000 audit lines would be the
	// only thing growing.
	f := startFacade(t, fake.URL, nil, nil, func(o *Options) {
		o.Log = slog.New(slog.DiscardHandler)
		o.Audit = o.Log
	})
	gwClient := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: inFlight, MaxIdleConns: inFlight}}
	defer gwClient.CloseIdleConnections()

	paths := []struct {
		name string
		call func(ctx context.Context) codes.Code
	}{
		{"grpc", func(ctx context.Context) codes.Code {
			_, err := f.client.DeleteClientGrant(metadata.AppendToOutgoingContext(ctx, "authorization", token), &authv1.DeleteClientGrantRequest{Oid: "T123", Id: "g"})
			return status.Code(err)
		}},
		{"gateway", func(ctx context.Context) codes.Code {
			req, _ := http.NewRequestWithContext(ctx, http.MethodDelete, f.httpURL+"/v1/accounts/T123/auth/client-grants/g", nil)
			req.Header.Set("Authorization", token)
			resp, err := gwClient.Do(req)
			if err != nil {
				return codes.Unavailable
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			switch resp.StatusCode {
			case 200:
				return codes.OK
			case 500:
				return codes.Internal
			}
			return codes.Unknown
		}},
	}
	goroutinesBefore := runtime.NumGoroutine()
	const rounds = 5
	for _, p := range paths {
		seen.Store(0)
		accepted.Store(0)
		var ok, internal, other atomic.Int64
		var heaps []float64
		start := time.Now()
		for round := range rounds {
			work := make(chan struct{})
			var wg sync.WaitGroup
			for range inFlight {
				wg.Go(func() {
					for range work {
						ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
						switch p.call(ctx) {
						case codes.OK:
							ok.Add(1)
						case codes.Internal:
							internal.Add(1)
						default:
							other.Add(1)
						}
						cancel()
					}
				})
			}
			for range calls/rounds + boolInt(round < calls%rounds) {
				work <- struct{}{}
			}
			close(work)
			wg.Wait()
			heaps = append(heaps, mib(heapAfterGC()))
		}
		took := time.Since(start)
		t.Logf("%s: %d calls, %d in flight, in %v (%.0f calls/s): %d ok, %d Internal (Dintero's 500s), %d other; heap in use after GC after each fifth: %.1f MiB",
			p.name, calls, inFlight, took.Round(time.Millisecond), float64(calls)/took.Seconds(), ok.Load(), internal.Load(), other.Load(), heaps)
		if got := ok.Load() + internal.Load() + other.Load(); got != int64(calls) {
			t.Errorf("%s: %d answers; want %d", p.name, got, calls)
		}
		if ok.Load() != accepted.Load() || other.Load() != 0 || seen.Load() != int64(calls) {
			t.Errorf("%s: %d successes, %d other errors, Dintero saw %d and accepted %d; want successes = accepted, no other errors, %d seen",
				p.name, ok.Load(), other.Load(), seen.Load(), accepted.Load(), calls)
		}
		// After the first fifth has warmed the connection pools, the heap
		// must not keep growing with the number of calls.
		if grew := heaps[rounds-1] - heaps[0]; grew > 4 {
			t.Errorf("%s: the heap grew by %.1f MiB from the first fifth to the last; want it flat", p.name, grew)
		}
	}
	gwClient.CloseIdleConnections()
	if err := f.stop(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > goroutinesBefore && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > goroutinesBefore {
		t.Errorf("%d goroutines after the load and shutdown; %d before", n, goroutinesBefore)
	}
}

func heapAfterGC() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
