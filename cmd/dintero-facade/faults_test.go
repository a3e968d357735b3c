package main

import (
	"context"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	authv1 "github.com/dintero-facade/dintero-facade/gen/dintero/auth/v1"
	"github.com/dintero-facade/dintero-facade/internal/dinterotest"
)

// TestFaults injects each fault between the facade and Dintero and checks
// the code the caller gets, that it comes within the caller's deadline,
// that the facade still serves a good call afterwards, and that no
// goroutine is left behind once the facade has stopped.
func TestFaults(t *testing.T) {
	const deadline = 1500 * time.Millisecond
	grant := dinterotest.GrantJSON("g")
	tests := []struct {
		name      string
		authorize bool
		handler   http.HandlerFunc // on the fake; nil with url
		url       func(t *testing.T) string
		wantCode  codes.Code
		maxTime   time.Duration
		wantCalls int    // requests Dintero saw; 0: not checked
		wantLog   string // in the call's log line, when set
		check     func(t *testing.T, st *status.Status)
	}{
		{name: "connection refused", url: func(t *testing.T) string { return dinterotest.RefusingURL(t) }, wantCode: codes.Unavailable, maxTime: deadline, wantLog: `"attempts":3`},
		{name: "accepts and never answers, authorize", authorize: true, url: func(t *testing.T) string { return dinterotest.SilentServer(t) }, wantCode: codes.DeadlineExceeded, maxTime: deadline + 300*time.Millisecond, wantLog: `"attempts":1`},
		{name: "reset before the headers", handler: dinterotest.Reset, wantCode: codes.Unavailable, maxTime: deadline, wantCalls: 3},
		{name: "authorize reset before the headers is not resent", authorize: true, handler: dinterotest.Reset, wantCode: codes.Unavailable, maxTime: deadline, wantCalls: 1},
		{name: "reset in the middle of the body", handler: dinterotest.ResetMidBody(grant), wantCode: codes.Unavailable, maxTime: deadline, wantCalls: 3},
		{name: "accepts and never answers", url: func(t *testing.T) string { return dinterotest.SilentServer(t) }, wantCode: codes.DeadlineExceeded, maxTime: deadline + 300*time.Millisecond},
		{name: "never answers", handler: dinterotest.Stall, wantCode: codes.DeadlineExceeded, maxTime: deadline + 300*time.Millisecond, wantCalls: 1},
		{name: "headers then a stalled body", handler: dinterotest.StallBody, wantCode: codes.DeadlineExceeded, maxTime: deadline + 300*time.Millisecond, wantCalls: 1},
		{name: "a run of 503", handler: dinterotest.Body(503, "text/html", []byte("<h1>down</h1>")), wantCode: codes.Unavailable, maxTime: deadline, wantCalls: 3},
		{name: "a run of 500", handler: dinterotest.Body(500, "application/json", []byte(`{"error":{"message":"boom"}}`)), wantCode: codes.Internal, maxTime: deadline, wantCalls: 1},
		{name: "429 retry-after in seconds beyond the deadline", handler: dinterotest.RateLimited(func() string { return "5" }), wantCode: codes.ResourceExhausted, maxTime: 300 * time.Millisecond, wantCalls: 1, check: wantRetryInfo(5 * time.Second)},
		{name: "429 retry-after within the deadline", handler: dinterotest.RateLimited(func() string { return "0" }), wantCode: codes.ResourceExhausted, maxTime: deadline, wantCalls: 3},
		{name: "429 retry-after as an HTTP date", handler: dinterotest.RateLimited(func() string { return time.Now().Add(10 * time.Second).UTC().Format(http.TimeFormat) }), wantCode: codes.ResourceExhausted, maxTime: 300 * time.Millisecond, wantCalls: 1},
		{name: "429 retry-after absurdly large", handler: dinterotest.RateLimited(func() string { return "999999999999999999999" }), wantCode: codes.ResourceExhausted, maxTime: 300 * time.Millisecond, wantCalls: 1},
		{name: "invalid JSON", handler: dinterotest.Body(200, "application/json", []byte(`{"id": nope}`)), wantCode: codes.Internal, maxTime: deadline, wantCalls: 1},
		{name: "truncated JSON", handler: dinterotest.Body(200, "application/json", grant[:len(grant)/2]), wantCode: codes.Internal, maxTime: deadline, wantCalls: 1},
		{name: "oversized JSON", handler: dinterotest.Body(200, "application/json", []byte(`{"id":"`+strings.Repeat("x", 2<<20)+`"}`)), wantCode: codes.Internal, maxTime: deadline, wantCalls: 1},
		{name: "wrong content type, HTML", handler: dinterotest.Body(200, "text/html", []byte("<html>login</html>")), wantCode: codes.Internal, maxTime: deadline, wantCalls: 1},
		{name: "redirect loop", handler: dinterotest.RedirectToSelf, wantCode: codes.Internal, maxTime: deadline, wantCalls: 1},
		{name: "a body a hundred times the limit", handler: dinterotest.Huge(100 << 20), wantCode: codes.Internal, maxTime: deadline, wantCalls: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			defer goleak.VerifyNone(t, append(dinterotest.LeakOptions(), goleak.IgnoreCurrent())...)
			fake := dinterotest.New(t)
			url := fake.URL
			if tc.url != nil {
				url = tc.url(t)
			}
			op := dinterotest.OpDelete
			if tc.authorize {
				op = dinterotest.OpAuthorize
			}
			if tc.handler != nil {
				fake.HandleRaw(op, tc.handler)
			}
			f := startFacade(t, url, nil, nil)

			var before runtime.MemStats
			runtime.ReadMemStats(&before)
			ctx, cancel := context.WithTimeout(withBearer(context.Background()), deadline)
			start := time.Now()
			var err error
			if tc.authorize {
				_, err = f.client.Authorize(ctx, &authv1.AuthorizeRequest{Oid: "T123", Audience: "a", ResponseType: "authenticate", ClientId: "c", VerificationCode: "vc-fault-1"})
			} else {
				_, err = f.client.DeleteClientGrant(ctx, &authv1.DeleteClientGrantRequest{Oid: "T123", Id: "g"})
			}
			took := time.Since(start)
			cancel()
			var after runtime.MemStats
			runtime.ReadMemStats(&after)

			st := status.Convert(err)
			if st.Code() != tc.wantCode {
				t.Errorf("got %v; want %v", err, tc.wantCode)
			}
			if took > tc.maxTime {
				t.Errorf("answered after %v; want within %v", took, tc.maxTime)
			}
			if tc.wantCalls > 0 {
				if n := fake.Count(op); n != tc.wantCalls {
					t.Errorf("Dintero got %d requests; want %d", n, tc.wantCalls)
				}
			}
			if tc.check != nil {
				tc.check(t, st)
			}
			if tc.wantLog != "" {
				// On a deadline the caller may return before the facade
				// has written the call's line.
				waitLog(t, f, tc.wantLog, 1)
			}
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 32<<20 {
				t.Errorf("the call allocated %d MiB; want the body limit to bound it", grew>>20)
			}
			if strings.Contains(st.Message(), "vc-fault-1") {
				t.Errorf("the status holds the verification code: %v", st.Message())
			}

			// The facade still serves.
			if tc.url == nil {
				fake.HandleRaw(op, dinterotest.Body(200, "application/json", grant))
				if tc.authorize {
					fake.HandleRaw(op, func(w http.ResponseWriter, r *http.Request) {
						w.Header().Set("Location", "https://a.example/cb?id_token=x")
						w.WriteHeader(302)
					})
				}
				ctx, cancel := context.WithTimeout(withBearer(context.Background()), 5*time.Second)
				defer cancel()
				var err error
				if tc.authorize {
					_, err = f.client.Authorize(ctx, &authv1.AuthorizeRequest{Oid: "T123", Audience: "a", ResponseType: "authenticate", ClientId: "c", VerificationCode: "v"})
				} else {
					_, err = f.client.DeleteClientGrant(ctx, &authv1.DeleteClientGrantRequest{Oid: "T123", Id: "g"})
				}
				if err != nil {
					t.Errorf("after the fault, a good call failed: %v", err)
				}
			}
			if err := f.stop(); err != nil {
				t.Errorf("shutdown after the fault: %v", err)
			}
			fake.Close()
		})
	}
}

func wantRetryInfo(d time.Duration) func(t *testing.T, st *status.Status) {
	return func(t *testing.T, st *status.Status) {
		t.Helper()
		for _, det := range st.Details() {
			if ri, ok := det.(*errdetails.RetryInfo); ok {
				if got := ri.GetRetryDelay().AsDuration(); got != d {
					t.Errorf("got RetryInfo %v; want %v", got, d)
				}
				return
			}
		}
		t.Errorf("got no RetryInfo in %v", st.Proto())
	}
}
