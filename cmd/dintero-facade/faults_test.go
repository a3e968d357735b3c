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
	"github.com/dintero-facade/dintero-facade/internal/dinteromock"
	"github.com/dintero-facade/dintero-facade/internal/dinterotest"
	"github.com/dintero-facade/dintero-facade/service"
)

// TestFaults injects each fault between the facade and Dintero and checks
// the code the caller gets, that it comes within the caller's deadline,
// that neither the status nor the log holds the caller's token or the
// verification code, that the facade serves a good call once the fault is
// over, and that no goroutine is left behind once the facade has stopped.
func TestFaults(t *testing.T) {
	const deadline = 1500 * time.Millisecond
	grant := dinterotest.GrantJSON("g")
	refusing := func(t *testing.T) (string, func()) { return dinterotest.RefusingURL(t), func() {} }
	silent := func(t *testing.T) (string, func()) { return dinterotest.SilentServer(t) }
	tests := []struct {
		name      string
		authorize bool
		handler   func(fake *dinterotest.Server) http.HandlerFunc // on the fake, for the first attempts
		url       func(t *testing.T) (string, func())             // instead of the fake, and how the fault ends
		wantCode  codes.Code
		maxTime   time.Duration
		wantCalls int    // requests Dintero saw; 0: not checked
		wantLog   string // in the call's log line, when set
		check     func(t *testing.T, st *status.Status)
		// facadeTimed: the facade answers when its own deadline ends,
		// which keeps at most 100 ms of the caller's for the way back; on
		// a busy machine the way back can take longer, and the caller's
		// DeadlineExceeded is then accepted if the facade's own line says
		// it answered wantCode (service.TestDeadlineBound pins the margin).
		facadeTimed bool
	}{
		{name: "connection refused", url: refusing, wantCode: codes.Unavailable, maxTime: deadline, wantLog: `"attempts":3`},
		{name: "connection refused, authorize", authorize: true, url: refusing, wantCode: codes.Unavailable, maxTime: deadline, wantLog: `"attempts":3`, check: wantSent("false")},
		// The signing keys come first: without them the code stays unsent.
		{name: "accepts and never answers, authorize", authorize: true, url: silent, wantCode: codes.DeadlineExceeded, maxTime: deadline + 300*time.Millisecond, check: wantSent("false")},
		{name: "authorize never answers (HTTP accepted) is not resent", authorize: true, handler: raw(dinterotest.Stall), wantCode: codes.DeadlineExceeded, maxTime: deadline + 300*time.Millisecond, wantCalls: 1, check: wantSent("true")},
		{name: "reset before the headers", handler: raw(dinterotest.Reset), wantCode: codes.Unavailable, maxTime: deadline, wantCalls: 3},
		{name: "authorize reset before the headers is not resent", authorize: true, handler: raw(dinterotest.Reset), wantCode: codes.Unavailable, maxTime: deadline, wantCalls: 1, check: wantSent("true")},
		{name: "a 200 whose body breaks off is a deletion", handler: raw(dinterotest.ResetMidBody(grant)), wantCode: codes.OK, maxTime: deadline, wantCalls: 1, wantLog: `"undecoded":["body"]`},
		{name: "an answer lost after Dintero deleted", handler: func(f *dinterotest.Server) http.HandlerFunc {
			return dinterotest.Times(1, dinterotest.LoseAnswer(f.Mock), f.Mock)
		}, wantCode: codes.NotFound, maxTime: deadline, check: wantReason(service.ErrorReasonNotFoundUncertain), wantLog: `"uncertain_attempts":["no answer: connection failed"]`},
		{name: "502 after Dintero deleted", handler: func(f *dinterotest.Server) http.HandlerFunc {
			return dinterotest.Times(1, dinterotest.ActThen(f.Mock, dinterotest.Body(502, "text/html", []byte("<h1>bad gateway</h1>"))), f.Mock)
		}, wantCode: codes.NotFound, maxTime: deadline, check: wantReason(service.ErrorReasonNotFoundUncertain)},
		{name: "accepts and never answers", url: silent, wantCode: codes.DeadlineExceeded, maxTime: deadline + 300*time.Millisecond},
		{name: "never answers", handler: raw(dinterotest.Stall), wantCode: codes.DeadlineExceeded, maxTime: deadline + 300*time.Millisecond, wantCalls: 1},
		{name: "a 200, then a stalled body: a deletion, answered before the deadline", handler: raw(dinterotest.StallBody), wantCode: codes.OK, maxTime: deadline, wantCalls: 1, wantLog: `"undecoded":["body"]`, facadeTimed: true},
		{name: "a run of 503", handler: raw(dinterotest.Body(503, "text/html", []byte("<h1>down</h1>"))), wantCode: codes.Unavailable, maxTime: deadline, wantCalls: 3},
		{name: "a run of 500", handler: raw(dinterotest.Body(500, "application/json", []byte(`{"error":{"message":"boom"}}`))), wantCode: codes.Internal, maxTime: deadline, wantCalls: 1},
		{name: "429 retry-after in seconds beyond the deadline", handler: raw(dinterotest.RateLimited(func() string { return "5" })), wantCode: codes.ResourceExhausted, maxTime: 300 * time.Millisecond, wantCalls: 1, check: wantRetryInfo(5 * time.Second)},
		{name: "429 retry-after within the deadline", handler: raw(dinterotest.RateLimited(func() string { return "0" })), wantCode: codes.ResourceExhausted, maxTime: deadline, wantCalls: 3},
		{name: "429 retry-after as an HTTP date", handler: raw(dinterotest.RateLimited(func() string { return time.Now().Add(10 * time.Second).UTC().Format(http.TimeFormat) })), wantCode: codes.ResourceExhausted, maxTime: 300 * time.Millisecond, wantCalls: 1},
		{name: "429 retry-after absurdly large", handler: raw(dinterotest.RateLimited(func() string { return "999999999999999999999" })), wantCode: codes.ResourceExhausted, maxTime: 300 * time.Millisecond, wantCalls: 1},
		{name: "a 2xx with invalid JSON is a deletion", handler: raw(dinterotest.Body(200, "application/json", []byte(`{"id": nope}`))), wantCode: codes.OK, maxTime: deadline, wantCalls: 1, wantLog: `"undecoded":["body"]`},
		{name: "a 2xx with truncated JSON is a deletion", handler: raw(dinterotest.Body(200, "application/json", grant[:len(grant)/2])), wantCode: codes.OK, maxTime: deadline, wantCalls: 1, wantLog: `"undecoded":["body"]`},
		{name: "a 2xx over the size limit is a deletion", handler: raw(dinterotest.Body(200, "application/json", []byte(`{"id":"`+strings.Repeat("x", 2<<20)+`"}`))), wantCode: codes.OK, maxTime: deadline, wantCalls: 1, wantLog: `"undecoded":["body"]`},
		{name: "a 2xx of HTML is a deletion", handler: raw(dinterotest.Body(200, "text/html", []byte("<html>done</html>"))), wantCode: codes.OK, maxTime: deadline, wantCalls: 1, wantLog: `"undecoded":["body"]`},
		{name: "redirect loop", handler: raw(dinterotest.RedirectToSelf), wantCode: codes.Internal, maxTime: deadline, wantCalls: 1},
		{name: "a body a hundred times the limit", handler: raw(dinterotest.Huge(100 << 20)), wantCode: codes.OK, maxTime: deadline, wantCalls: 1, wantLog: `"undecoded":["body"]`},
		{name: "authorize: a redirect without a token", authorize: true, handler: raw(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Location", "https://app.example.com/cb?state=x")
			w.WriteHeader(302)
		}), wantCode: codes.Internal, maxTime: deadline, wantCalls: 1, check: wantSent("true")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			defer goleak.VerifyNone(t, append(dinterotest.LeakOptions(), goleak.IgnoreCurrent())...)
			fake := dinterotest.New(t)
			fake.AddGrants("T123", "g", "g2")
			fake.AddCode("T123", "vc-fault-1")
			fake.AddCode("T123", "vc-fault-2")
			url, endFault := fake.URL, func() {}
			if tc.url != nil {
				url, endFault = tc.url(t)
			}
			op := dinterotest.OpDelete
			if tc.authorize {
				op = dinterotest.OpAuthorize
			}
			if tc.handler != nil {
				fake.HandleRaw(op, tc.handler(fake))
			}
			f := startFacade(t, url, nil, nil)
			token := fake.Bearer("T123")

			var before runtime.MemStats
			runtime.ReadMemStats(&before)
			ctx, cancel := context.WithTimeout(withBearer(context.Background(), fake, "T123"), deadline)
			start := time.Now()
			err := call(ctx, f.client, tc.authorize, "g", "vc-fault-1")
			took := time.Since(start)
			cancel()
			var after runtime.MemStats
			runtime.ReadMemStats(&after)

			st := status.Convert(err)
			late := tc.facadeTimed && st.Code() == codes.DeadlineExceeded
			if late {
				waitLog(t, f, `"code":"`+tc.wantCode.String()+`"`, 1)
				t.Logf("the facade answered %v, which reached the caller after its deadline: a busy machine", tc.wantCode)
			} else if st.Code() != tc.wantCode {
				t.Errorf("got %v; want %v", err, tc.wantCode)
			}
			// A maxTime of the caller's deadline or more is the deadline's
			// own: grpc-go ends the call there, and a code other than
			// DeadlineExceeded proves it came in time, so only a shorter
			// bound (an answer at once, not a wait for a Retry-After) is
			// timed, which a busy machine cannot stretch past it.
			if tc.maxTime < deadline && took > tc.maxTime && !late {
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
			for _, secret := range []string{strings.TrimPrefix(token, "Bearer "), "vc-fault-1"} {
				if strings.Contains(st.String(), secret) || strings.Contains(f.log.String(), secret) {
					t.Errorf("the status or the log holds %.12s…: %v", secret, st)
				}
			}

			// The fault is over: the facade serves a good call.
			endFault()
			stopServing := func() {}
			if tc.url != nil {
				stopServing = fake.ServeAt(t, url)
			}
			fake.Default(op)
			// The breaker may have opened on the fault's 5xx; a good call
			// still must not fail for any other reason.
			ctx, cancel = context.WithTimeout(withBearer(context.Background(), fake, "T123"), 5*time.Second)
			defer cancel()
			if err := call(ctx, f.client, tc.authorize, "g2", "vc-fault-2"); err != nil {
				t.Errorf("after the fault, a good call failed: %v", err)
			}
			if err := f.stop(); err != nil {
				t.Errorf("shutdown after the fault: %v", err)
			}
			stopServing()
			fake.Close()
		})
	}
}

// raw is a fault that does not need the fake.
func raw(h http.HandlerFunc) func(*dinterotest.Server) http.HandlerFunc {
	return func(*dinterotest.Server) http.HandlerFunc { return h }
}

// call deletes grant id, or redeems code, of T123.
func call(ctx context.Context, c authv1.AuthServiceClient, authorize bool, id, code string) error {
	if authorize {
		_, err := c.Authorize(ctx, &authv1.AuthorizeRequest{Oid: "T123", Audience: dinteromock.Audience("T123"), ResponseType: "authenticate", ClientId: dinterotest.App, VerificationCode: code})
		return err
	}
	_, err := c.DeleteClientGrant(ctx, &authv1.DeleteClientGrantRequest{Oid: "T123", Id: id})
	return err
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

func wantReason(reason string) func(t *testing.T, st *status.Status) {
	return func(t *testing.T, st *status.Status) {
		t.Helper()
		if got, _ := errorInfo(st); got != reason {
			t.Errorf("got reason %q; want %q", got, reason)
		}
	}
}

func wantSent(sent string) func(t *testing.T, st *status.Status) {
	return func(t *testing.T, st *status.Status) {
		t.Helper()
		if _, md := errorInfo(st); md["verificationCodeSent"] != sent {
			t.Errorf("got verification_code_sent %q; want %s", md["verificationCodeSent"], sent)
		}
	}
}

// errorInfo returns the reason and metadata of a status's ErrorInfo.
func errorInfo(st *status.Status) (string, map[string]string) {
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info.GetReason(), info.GetMetadata()
		}
	}
	return "", nil
}
