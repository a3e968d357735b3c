package service_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	authv1 "github.com/dintero-facade/dintero-facade/gen/dintero/auth/v1"
	"github.com/dintero-facade/dintero-facade/service"
)

// orderedWriter records each line written, and whether the call had
// already returned when it was.
type orderedWriter struct {
	mu       sync.Mutex
	lines    []string
	late     int
	returned atomic.Bool
}

func (w *orderedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.lines = append(w.lines, string(p))
	if w.returned.Load() {
		w.late++
	}
	return len(p), nil
}

// TestAuditLineWrittenBeforeTheAnswer: a call's audit line has been
// handed to the writer (the process's stderr, a write(2) each) before the
// interceptor returns the answer, so that no call the caller saw answered
// lacks its line, whatever becomes of the process after. RELIABILITY.md
// says so.
func TestAuditLineWrittenBeforeTheAnswer(t *testing.T) {
	for _, fail := range []bool{false, true} {
		w := &orderedWriter{}
		ic, err := service.Interceptor(service.InterceptorOptions{Log: slog.New(slog.NewJSONHandler(io.Discard, nil)), Audit: slog.New(slog.NewJSONHandler(w, nil))})
		if err != nil {
			t.Fatal(err)
		}
		info := &grpc.UnaryServerInfo{FullMethod: authv1.AuthService_DeleteClientGrant_FullMethodName}
		ctx := grpc.NewContextWithServerTransportStream(context.Background(), nopStream{})
		_, _ = ic(ctx, &authv1.DeleteClientGrantRequest{Oid: "T12345678", Id: "g"}, info, func(context.Context, any) (any, error) {
			if fail {
				return nil, io.ErrUnexpectedEOF
			}
			return &authv1.DeleteClientGrantResponse{}, nil
		})
		w.returned.Store(true)
		w.mu.Lock()
		lines, late := w.lines, w.late
		w.mu.Unlock()
		if len(lines) != 1 || !strings.Contains(lines[0], `"msg":"audit"`) || late != 0 {
			t.Errorf("failed %v: when the call returned, %d lines were written (%d after it): %q; want its audit line, before", fail, len(lines), late, lines)
		}
	}
}

// TestInnerInterceptorReplacingTheContext: an inner interceptor that
// hands on a context not derived from the call's gets Internal, not a
// panic, and the handler is not run.
func TestInnerInterceptorReplacingTheContext(t *testing.T) {
	replace := func(_ context.Context, req any, _ *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
		return next(context.Background(), req)
	}
	ic, err := service.Interceptor(service.InterceptorOptions{Log: slog.New(slog.NewJSONHandler(io.Discard, nil)), Audit: slog.New(slog.NewJSONHandler(io.Discard, nil)),
		Inner: []grpc.UnaryServerInterceptor{replace}})
	if err != nil {
		t.Fatal(err)
	}
	ran := false
	ctx := grpc.NewContextWithServerTransportStream(context.Background(), nopStream{})
	_, err = ic(ctx, &authv1.DeleteClientGrantRequest{}, &grpc.UnaryServerInfo{FullMethod: authv1.AuthService_DeleteClientGrant_FullMethodName},
		func(context.Context, any) (any, error) { ran = true; return nil, nil })
	if status.Code(err) != codes.Internal || ran {
		t.Errorf("got %v, handler ran %v; want Internal without running it", err, ran)
	}
}
