package upstream_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/dintero-facade/dintero-facade/internal/dinterotest"
	"github.com/dintero-facade/dintero-facade/upstream"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, dinterotest.LeakOptions()...)
}

// counter is an Observer that counts attempts per operation.
type counter struct {
	mu       sync.Mutex
	attempts map[string]int
	tokens   int
	states   []string
}

func (c *counter) Attempt(op string, _, _ int, _ time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.attempts == nil {
		c.attempts = map[string]int{}
	}
	c.attempts[op]++
}

func (c *counter) TokenFetched() {
	c.mu.Lock()
	c.tokens++
	c.mu.Unlock()
}

func (c *counter) BreakerState(state string) {
	c.mu.Lock()
	c.states = append(c.states, state)
	c.mu.Unlock()
}

func (c *counter) get(op string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.attempts[op]
}

// newClient returns a client for base with fast backoff, closing its idle
// connections when the test ends.
func newClient(t *testing.T, base string, mod ...func(*upstream.Options)) *upstream.Client {
	t.Helper()
	tr := upstream.NewTransport(5 * time.Second)
	t.Cleanup(tr.CloseIdleConnections)
	opts := upstream.Options{BaseURL: base, BackoffBase: time.Millisecond, BackoffMax: 5 * time.Millisecond, Transport: tr, UserAgent: "dintero-facade/test"}
	for _, m := range mod {
		m(&opts)
	}
	c, err := upstream.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// withCredentials gives the client credentials for account T123, the
// account the tests call.
func withCredentials(o *upstream.Options) {
	o.Credentials = []upstream.Credentials{{AccountID: "T123", ClientID: dinterotest.ClientID, ClientSecret: dinterotest.ClientSecret}}
}

var callerToken = upstream.Call{Authorization: "Bearer caller-token-abc", RequestID: "req-42"}

func TestDeleteClientGrant(t *testing.T) {
	fake := dinterotest.New(t)
	c := newClient(t, fake.URL)

	g, meta, err := c.DeleteClientGrant(context.Background(), callerToken, "T12345678", "grant-1")
	if err != nil {
		t.Fatalf("DeleteClientGrant: %v", err)
	}
	want, _ := upstream.DecodeGrant(dinterotest.GrantJSON("grant-1"))
	if fmt.Sprint(g) != fmt.Sprint(want) || g.ID != "grant-1" || g.OIDC.ClientSecret != "oidc-secret-in-grant" {
		t.Errorf("got grant %+v; want %+v", g, want)
	}
	if meta.Status != 200 || meta.Attempts != 1 || meta.RequestID != dinterotest.RequestID {
		t.Errorf("got meta %+v; want status 200, 1 attempt, request id %q", meta, dinterotest.RequestID)
	}
	reqs := fake.Requests()
	if len(reqs) != 1 {
		t.Fatalf("got %d requests; want 1", len(reqs))
	}
	r := reqs[0]
	for k, want := range map[string]string{
		"Authorization": "Bearer caller-token-abc",
		"Accept":        "application/json",
		"User-Agent":    "dintero-facade/test",
		"X-Request-Id":  "req-42",
	} {
		if got := r.Header.Get(k); got != want {
			t.Errorf("header %s: got %q; want %q", k, got, want)
		}
	}
	if r.Method != http.MethodDelete || r.EscapedURL != "/v1/accounts/T12345678/auth/client-grants/grant-1" {
		t.Errorf("got %s %s; want DELETE /v1/accounts/T12345678/auth/client-grants/grant-1", r.Method, r.EscapedURL)
	}
}

func TestPathEscaping(t *testing.T) {
	fake := dinterotest.New(t)
	c := newClient(t, fake.URL)
	for _, id := range []string{"../token", "a/b", "x?y=1#z", "%2e%2e", "sp ace", "..%2F..", "ä/ö", "a;b=c", "...", "/"} {
		t.Run(id, func(t *testing.T) {
			before := len(fake.Requests())
			g, _, err := c.DeleteClientGrant(context.Background(), callerToken, "T123", id)
			if err != nil {
				t.Fatalf("DeleteClientGrant(%q): %v", id, err)
			}
			reqs := fake.Requests()[before:]
			if len(reqs) != 1 {
				t.Fatalf("got %d requests; want 1", len(reqs))
			}
			r := reqs[0]
			if r.Op != dinterotest.OpDelete || r.PathParams["id"] != id || r.PathParams["oid"] != "T123" {
				t.Errorf("got op %q params %v; want %s with id %q", r.Op, r.PathParams, dinterotest.OpDelete, id)
			}
			if len(r.Query) != 0 || strings.Contains(r.EscapedURL, "?") {
				t.Errorf("got URL %q; want no query", r.EscapedURL)
			}
			if got := strings.Count(r.EscapedURL, "/"); got != 6 {
				t.Errorf("got URL %q with %d slashes; want 6", r.EscapedURL, got)
			}
			if g.ID != id {
				t.Errorf("got grant id %q; want %q", g.ID, id)
			}
		})
	}
	for _, tc := range []struct{ oid, id string }{{"T123", "."}, {"T123", ".."}, {"T123", ""}, {"..", "x"}, {"", "x"}} {
		t.Run("refused "+tc.oid+"/"+tc.id, func(t *testing.T) {
			before := len(fake.Requests())
			_, _, err := c.DeleteClientGrant(context.Background(), callerToken, tc.oid, tc.id)
			if !errors.Is(err, upstream.ErrInvalidArgument) {
				t.Errorf("got %v; want ErrInvalidArgument", err)
			}
			if n := len(fake.Requests()) - before; n != 0 {
				t.Errorf("got %d requests; want none", n)
			}
		})
	}
}

var allParams = upstream.AuthorizeParams{
	OID: "P00000000", Audience: "https://api.dintero.com/v1/accounts/P00000000", Scope: "openid",
	ResponseType: "authenticate", ClientID: "client-1", State: "st&ate=1", RedirectURI: "https://app.example.com/cb?keep=1",
	VerificationCode: "VC-SECRET-9731", Connection: "sms",
}

func TestAuthorize(t *testing.T) {
	fake := dinterotest.New(t)
	var followed atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { followed.Add(1) }))
	defer target.Close()
	c := newClient(t, fake.URL)

	tests := []struct {
		name   string
		params upstream.AuthorizeParams
		want   map[string]string
	}{
		{"all", func() upstream.AuthorizeParams { p := allParams; p.RedirectURI = target.URL + "/cb?keep=1"; return p }(), map[string]string{
			"audience": allParams.Audience, "scope": "openid", "response_type": "authenticate", "client_id": "client-1",
			"state": "st&ate=1", "redirect_uri": target.URL + "/cb?keep=1", "verification_code": "VC-SECRET-9731", "connection": "sms",
		}},
		{"required only", upstream.AuthorizeParams{OID: "T123", Audience: "aud", ResponseType: "authenticate", ClientID: "c", VerificationCode: "v"}, map[string]string{
			"audience": "aud", "response_type": "authenticate", "client_id": "c", "verification_code": "v",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(fake.Requests())
			rd, meta, err := c.Authorize(context.Background(), callerToken, tc.params)
			if err != nil {
				t.Fatalf("Authorize: %v", err)
			}
			r := fake.Requests()[before]
			if len(r.Body) != 0 {
				t.Errorf("got body %q; want none", r.Body)
			}
			if len(r.Query) != len(tc.want) {
				t.Errorf("got query %v; want %v", r.Query, tc.want)
			}
			for k, v := range tc.want {
				if got := r.Query[k]; len(got) != 1 || got[0] != v {
					t.Errorf("query %s: got %q; want %q", k, got, v)
				}
			}
			if rd.IDToken != dinterotest.IDToken {
				t.Errorf("got id_token %q; want %q", rd.IDToken, dinterotest.IDToken)
			}
			if _, ok := rd.Query["id_token"]; ok {
				t.Errorf("id_token repeated in query %v", rd.Query)
			}
			if tc.params.State != "" && rd.Query["state"] != tc.params.State {
				t.Errorf("got state %q; want %q", rd.Query["state"], tc.params.State)
			}
			if !strings.Contains(rd.Location, "id_token=") || meta.Status != http.StatusFound || meta.Attempts != 1 {
				t.Errorf("got location %q meta %+v; want a 302 location with id_token", rd.Location, meta)
			}
		})
	}
	if n := followed.Load(); n != 0 {
		t.Errorf("the redirect was followed %d times; want never", n)
	}
}

func TestAuthorizeAnswers(t *testing.T) {
	tests := []struct {
		name    string
		status  int
		loc     string
		wantErr error
		wantTok string
	}{
		{"302", 302, "https://a.example/cb?id_token=T1&state=s", nil, "T1"},
		{"303", 303, "https://a.example/cb?id_token=T2", nil, "T2"},
		{"200 with location", 200, "https://a.example/cb?id_token=T3", nil, "T3"},
		{"302 without location", 302, "", upstream.ErrUnexpectedResponse, ""},
		{"200 without location", 200, "", upstream.ErrUnexpectedResponse, ""},
		{"location with a bad query", 302, "https://a.example/cb?id_token=%zz", upstream.ErrUnexpectedResponse, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake := dinterotest.New(t)
			fake.HandleRaw(dinterotest.OpAuthorize, func(w http.ResponseWriter, r *http.Request) {
				if tc.loc != "" {
					w.Header().Set("Location", tc.loc)
				}
				w.WriteHeader(tc.status)
			})
			c := newClient(t, fake.URL)
			rd, _, err := c.Authorize(context.Background(), callerToken, allParams)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("got %v; want %v", err, tc.wantErr)
			}
			if err != nil {
				var e *upstream.Error
				if !errors.As(err, &e) || e.StatusCode != tc.status {
					t.Errorf("got %#v; want *upstream.Error with status %d", err, tc.status)
				}
				if strings.Contains(err.Error(), "%zz") {
					t.Errorf("error %q quotes the location", err)
				}
				return
			}
			if rd.IDToken != tc.wantTok {
				t.Errorf("got id_token %q; want %q", rd.IDToken, tc.wantTok)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name        string
		status      int
		header      map[string]string
		body        string
		wantCode    string
		wantMessage string
		wantRetry   time.Duration
	}{
		{"dintero 404", 404, nil, `{"error":{"code":"NOT_FOUND","message":"grant not found"}}`, "NOT_FOUND", "grant not found", 0},
		{"dintero 400 with errors", 400, nil, `{"error":{"message":"bad","errors":[{"field":"id"}]}}`, "", "bad", 0},
		{"html from a proxy", 502, nil, `<html><body>Bad gateway</body></html>`, "", "", 0},
		{"empty", 500, nil, ``, "", "", 0},
		{"truncated", 500, nil, `{"error":{"message":"tru`, "", "", 0},
		{"error is a string", 400, nil, `{"error":"nope"}`, "", "", 0},
		{"x-request-id", 403, map[string]string{"X-Request-Id": "xr-1"}, `{"error":{"message":"no"}}`, "", "no", 0},
		{"retry after", 429, map[string]string{"Retry-After": "120"}, `{"error":{"code":"RATE","message":"slow down"}}`, "RATE", "slow down", 120 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake := dinterotest.New(t)
			fake.HandleRaw(dinterotest.OpDelete, func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tc.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
			})
			c := newClient(t, fake.URL, func(o *upstream.Options) { o.MaxAttempts = 1 })
			_, meta, err := c.DeleteClientGrant(context.Background(), callerToken, "T123", "g")
			var e *upstream.Error
			if !errors.As(err, &e) {
				t.Fatalf("got %v; want *upstream.Error", err)
			}
			if e.StatusCode != tc.status || e.Code != tc.wantCode || e.Message != tc.wantMessage || e.RetryAfter != tc.wantRetry || e.Reason != nil {
				t.Errorf("got %+v; want status %d code %q message %q retry %v", e, tc.status, tc.wantCode, tc.wantMessage, tc.wantRetry)
			}
			if want := tc.header["X-Request-Id"]; want != "" && (e.RequestID != want || meta.RequestID != want) {
				t.Errorf("got request id %q/%q; want %q", e.RequestID, meta.RequestID, want)
			}
			if meta.Status != tc.status {
				t.Errorf("got meta status %d; want %d", meta.Status, tc.status)
			}
		})
	}
}

func TestDeleteUnexpectedAnswers(t *testing.T) {
	tests := []struct {
		name    string
		status  int
		body    string
		wantErr error
	}{
		{"3xx", 302, ``, upstream.ErrUnexpectedResponse},
		{"not json", 200, `<html>`, upstream.ErrDecode},
		{"null", 200, `null`, upstream.ErrDecode},
		{"array", 200, `[]`, upstream.ErrDecode},
		{"bad timestamp", 200, `{"id":"g","created_at":"yesterday"}`, upstream.ErrDecode},
		{"wrong type", 200, `{"id":7}`, upstream.ErrDecode},
		{"too large", 200, `{"id":"` + strings.Repeat("x", 2<<20) + `"}`, upstream.ErrBodyTooLarge},
		{"201 is a success", 201, string(dinterotest.GrantJSON("g")), nil},
		{"unknown fields are ignored", 200, `{"id":"g","new_field":{"a":1}}`, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake := dinterotest.New(t)
			fake.HandleRaw(dinterotest.OpDelete, func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
			})
			c := newClient(t, fake.URL)
			g, meta, err := c.DeleteClientGrant(context.Background(), callerToken, "T123", "g")
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("got %v; want %v", err, tc.wantErr)
			}
			if err == nil && g.ID != "g" {
				t.Errorf("got grant %+v; want id g", g)
			}
			if err != nil && meta.Attempts != 1 {
				t.Errorf("got %d attempts; want 1", meta.Attempts)
			}
		})
	}
}

// sequence answers the n-th request with statuses[n] (the last one repeats).
func sequence(statuses ...int) (http.HandlerFunc, *atomic.Int32) {
	var n atomic.Int32
	return func(w http.ResponseWriter, r *http.Request) {
		i := int(n.Add(1)) - 1
		s := statuses[min(i, len(statuses)-1)]
		if s == 200 {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(dinterotest.GrantJSON("g"))
			return
		}
		if s == 302 {
			w.Header().Set("Location", "https://a.example/cb?id_token=x")
			w.WriteHeader(302)
			return
		}
		dinterotest.WriteError(w, s, "", http.StatusText(s))
	}, &n
}

func TestRetries(t *testing.T) {
	tests := []struct {
		name         string
		authorize    bool
		statuses     []int
		wantStatus   int // 0: success
		wantAttempts int
	}{
		{"delete 503 then ok", false, []int{503, 200}, 0, 2},
		{"delete 502 504 then ok", false, []int{502, 504, 200}, 0, 3},
		{"delete 429 then ok", false, []int{429, 200}, 0, 2},
		{"delete 503 three times", false, []int{503}, 503, 3},
		{"delete 500 is not retried", false, []int{500, 200}, 500, 1},
		{"delete 400 is not retried", false, []int{400, 200}, 400, 1},
		{"delete 404 is not retried", false, []int{404, 200}, 404, 1},
		{"authorize 503 is not retried", true, []int{503, 302}, 503, 1},
		{"authorize 429 is not retried", true, []int{429, 302}, 429, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake := dinterotest.New(t)
			h, n := sequence(tc.statuses...)
			op := dinterotest.OpDelete
			if tc.authorize {
				op = dinterotest.OpAuthorize
			}
			fake.HandleRaw(op, h)
			obs := &counter{}
			c := newClient(t, fake.URL, func(o *upstream.Options) { o.Observer = obs })
			var meta upstream.Meta
			var err error
			if tc.authorize {
				_, meta, err = c.Authorize(context.Background(), callerToken, allParams)
			} else {
				_, meta, err = c.DeleteClientGrant(context.Background(), callerToken, "T123", "g")
			}
			if tc.wantStatus == 0 && err != nil {
				t.Fatalf("got %v; want success", err)
			}
			var e *upstream.Error
			if tc.wantStatus != 0 && (!errors.As(err, &e) || e.StatusCode != tc.wantStatus) {
				t.Fatalf("got %v; want HTTP %d", err, tc.wantStatus)
			}
			if got := int(n.Load()); got != tc.wantAttempts || meta.Attempts != tc.wantAttempts {
				t.Errorf("got %d requests, meta %d attempts; want %d", got, meta.Attempts, tc.wantAttempts)
			}
			if got := obs.get("DeleteClientGrant") + obs.get("Authorize"); got != tc.wantAttempts {
				t.Errorf("observer saw %d attempts; want %d", got, tc.wantAttempts)
			}
		})
	}
}

// resetting resets the first okAfter connections (dinterotest.Reset), then
// answers like Dintero.
func resetting(n *atomic.Int32, okAfter int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if int(n.Add(1)) <= okAfter {
			dinterotest.Reset(w, r)
			return
		}
		w.Header().Set("Location", "https://a.example/cb?id_token=x")
		w.Header().Set("Content-Type", "application/json")
		if r.Method == http.MethodPost {
			w.WriteHeader(302)
			return
		}
		_, _ = w.Write(dinterotest.GrantJSON("g"))
	}
}

func TestTransportRetries(t *testing.T) {
	t.Run("delete after a reset", func(t *testing.T) {
		fake := dinterotest.New(t)
		var n atomic.Int32
		fake.HandleRaw(dinterotest.OpDelete, resetting(&n, 1))
		c := newClient(t, fake.URL)
		if _, meta, err := c.DeleteClientGrant(context.Background(), callerToken, "T123", "g"); err != nil || meta.Attempts != 2 {
			t.Errorf("got %v after %d attempts; want success after 2", err, meta.Attempts)
		}
	})
	t.Run("authorize after a reset is not retried", func(t *testing.T) {
		fake := dinterotest.New(t)
		var n atomic.Int32
		fake.HandleRaw(dinterotest.OpAuthorize, resetting(&n, 1))
		c := newClient(t, fake.URL)
		_, meta, err := c.Authorize(context.Background(), callerToken, allParams)
		if !errors.Is(err, upstream.ErrTransport) || n.Load() != 1 || meta.Attempts != 1 {
			t.Errorf("got %v after %d requests; want ErrTransport after 1", err, n.Load())
		}
		if err != nil && strings.Contains(err.Error(), allParams.VerificationCode) {
			t.Errorf("error %q holds the verification code", err)
		}
	})
	t.Run("authorize when refused is retried", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		obs := &counter{}
		c := newClient(t, "http://"+addr+"/v1", func(o *upstream.Options) { o.Observer = obs })
		_, meta, err := c.Authorize(context.Background(), callerToken, allParams)
		if !errors.Is(err, upstream.ErrTransport) || meta.Attempts != 3 || obs.get("Authorize") != 3 {
			t.Errorf("got %v after %d attempts; want ErrTransport after 3", err, meta.Attempts)
		}
		for _, secret := range []string{allParams.VerificationCode, "caller-token-abc"} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error %q holds a secret", err)
			}
		}
	})
}

func TestRetryAfter(t *testing.T) {
	tests := []struct {
		name       string
		retryAfter string
		deadline   time.Duration
		wantOK     bool
		minWait    time.Duration
		maxWait    time.Duration
	}{
		{"fits", "1", 5 * time.Second, true, 900 * time.Millisecond, 3 * time.Second},
		{"http date that fits", "", 5 * time.Second, true, 0, 3 * time.Second},
		{"does not fit: error at once", "3", 500 * time.Millisecond, false, 0, 200 * time.Millisecond},
		{"absurd: error at once", "99999999999", 5 * time.Second, false, 0, 200 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake := dinterotest.New(t)
			var n atomic.Int32
			fake.HandleRaw(dinterotest.OpDelete, func(w http.ResponseWriter, r *http.Request) {
				if n.Add(1) > 1 {
					_, _ = w.Write(dinterotest.GrantJSON("g"))
					return
				}
				ra := tc.retryAfter
				if ra == "" {
					ra = time.Now().Add(2 * time.Second).UTC().Format(http.TimeFormat)
				}
				w.Header().Set("Retry-After", ra)
				dinterotest.WriteError(w, 429, "RATE_LIMITED", "slow down")
			})
			c := newClient(t, fake.URL)
			ctx, cancel := context.WithTimeout(context.Background(), tc.deadline)
			defer cancel()
			start := time.Now()
			_, _, err := c.DeleteClientGrant(ctx, callerToken, "T123", "g")
			took := time.Since(start)
			if (err == nil) != tc.wantOK {
				t.Fatalf("got %v; want ok=%v", err, tc.wantOK)
			}
			if took < tc.minWait || took > tc.maxWait {
				t.Errorf("took %v; want between %v and %v", took, tc.minWait, tc.maxWait)
			}
			var e *upstream.Error
			if !tc.wantOK && (!errors.As(err, &e) || e.StatusCode != 429 || e.RetryAfter <= 0) {
				t.Errorf("got %v; want the 429 with its Retry-After", err)
			}
		})
	}
}

func TestContext(t *testing.T) {
	fake := dinterotest.New(t)
	release := make(chan struct{})
	defer close(release)
	fake.HandleRaw(dinterotest.OpDelete, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	t.Run("caller deadline", func(t *testing.T) {
		c := newClient(t, fake.URL)
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, meta, err := c.DeleteClientGrant(ctx, callerToken, "T123", "g")
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > time.Second || meta.Attempts != 1 {
			t.Errorf("got %v after %v, %d attempts; want DeadlineExceeded at once after 1", err, time.Since(start), meta.Attempts)
		}
	})
	t.Run("caller cancels", func(t *testing.T) {
		c := newClient(t, fake.URL)
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(50*time.Millisecond, cancel)
		_, meta, err := c.DeleteClientGrant(ctx, callerToken, "T123", "g")
		if !errors.Is(err, context.Canceled) || meta.Attempts != 1 {
			t.Errorf("got %v after %d attempts; want Canceled after 1", err, meta.Attempts)
		}
	})
	t.Run("default timeout", func(t *testing.T) {
		c := newClient(t, fake.URL, func(o *upstream.Options) { o.Timeout = 150 * time.Millisecond })
		start := time.Now()
		_, _, err := c.DeleteClientGrant(context.Background(), callerToken, "T123", "g")
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > time.Second {
			t.Errorf("got %v after %v; want DeadlineExceeded after about 150ms", err, time.Since(start))
		}
	})
}

func TestCredentials(t *testing.T) {
	t.Run("no token and no credentials", func(t *testing.T) {
		fake := dinterotest.New(t)
		c := newClient(t, fake.URL)
		if _, _, err := c.DeleteClientGrant(context.Background(), upstream.Call{}, "T123", "g"); !errors.Is(err, upstream.ErrNoCredentials) {
			t.Errorf("got %v; want ErrNoCredentials", err)
		}
		if _, _, err := c.Authorize(context.Background(), upstream.Call{}, allParams); !errors.Is(err, upstream.ErrNoCredentials) {
			t.Errorf("got %v; want ErrNoCredentials", err)
		}
		if n := len(fake.Requests()); n != 0 {
			t.Errorf("got %d requests; want none", n)
		}
	})
	t.Run("caller token wins", func(t *testing.T) {
		fake := dinterotest.New(t)
		c := newClient(t, fake.URL, withCredentials)
		if _, _, err := c.DeleteClientGrant(context.Background(), callerToken, "T123", "g"); err != nil {
			t.Fatal(err)
		}
		if n := fake.Count(dinterotest.OpToken); n != 0 {
			t.Errorf("got %d token fetches; want none", n)
		}
	})
	t.Run("token request", func(t *testing.T) {
		fake := dinterotest.New(t)
		c := newClient(t, fake.URL, withCredentials)
		if _, _, err := c.DeleteClientGrant(context.Background(), upstream.Call{}, "T123", "g"); err != nil {
			t.Fatal(err)
		}
		reqs := fake.Requests()
		if len(reqs) != 2 || reqs[0].Op != dinterotest.OpToken || reqs[1].Op != dinterotest.OpDelete {
			t.Fatalf("got %v; want a token fetch then the delete", reqs)
		}
		tok := reqs[0]
		if got, want := tok.Header.Get("Authorization"), dinterotest.BasicAuth(dinterotest.ClientID, dinterotest.ClientSecret); got != want {
			t.Errorf("token auth: got %q; want %q", got, want)
		}
		if want := `{"audience":"` + fake.URL + `/accounts/T123","grant_type":"client_credentials"}`; string(tok.Body) != want {
			t.Errorf("token body: got %s; want %s", tok.Body, want)
		}
		if tok.EscapedURL != "/v1/accounts/T123/auth/token" {
			t.Errorf("token URL: got %s", tok.EscapedURL)
		}
		if got, want := reqs[1].Header.Get("Authorization"), "Bearer "+dinterotest.AccessToken(1); got != want {
			t.Errorf("delete auth: got %q; want %q", got, want)
		}
	})
}

func TestTokenSingleFlight(t *testing.T) {
	fake := dinterotest.New(t)
	gate := make(chan struct{})
	var fetches atomic.Int32
	fake.HandleRaw(dinterotest.OpToken, func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		<-gate
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"access_token":"shared-token","token_type":"Bearer","expires_in":3600}`))
	})
	obs := &counter{}
	c := newClient(t, fake.URL, withCredentials, func(o *upstream.Options) { o.Observer = obs })

	const callers = 100
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	// One caller gives up while the fetch is under way; the others must
	// still get the token.
	quitter, quit := context.WithCancel(context.Background())
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, _, err := c.DeleteClientGrant(quitter, upstream.Call{}, "T123", "g")
		if !errors.Is(err, context.Canceled) {
			errs <- fmt.Errorf("quitter: got %v; want Canceled", err)
		}
	}()
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, err := c.DeleteClientGrant(context.Background(), upstream.Call{}, "T123", "g"); err != nil {
				errs <- err
			}
		}()
	}
	for fetches.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	quit()
	time.Sleep(20 * time.Millisecond)
	close(gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := fetches.Load(); n != 1 {
		t.Errorf("got %d token fetches; want 1", n)
	}
	if obs.tokens != 1 {
		t.Errorf("observer saw %d token fetches; want 1", obs.tokens)
	}
	for _, r := range fake.Requests() {
		if r.Op == dinterotest.OpDelete && r.Header.Get("Authorization") != "Bearer shared-token" {
			t.Errorf("delete sent with %q", r.Header.Get("Authorization"))
		}
	}
}

func TestTokenRefreshAfter401(t *testing.T) {
	refusing := func(fake *dinterotest.Server, op string) *atomic.Int32 {
		var n atomic.Int32
		fake.HandleRaw(op, func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") == "Bearer "+dinterotest.AccessToken(1) {
				n.Add(1)
				dinterotest.WriteError(w, 401, "TOKEN_EXPIRED", "token expired")
				return
			}
			w.Header().Set("Location", "https://a.example/cb?id_token=x")
			if r.Method == http.MethodPost {
				w.WriteHeader(302)
				return
			}
			_, _ = w.Write(dinterotest.GrantJSON("g"))
		})
		return &n
	}
	t.Run("delete is sent again with a new token", func(t *testing.T) {
		fake := dinterotest.New(t)
		refused := refusing(fake, dinterotest.OpDelete)
		c := newClient(t, fake.URL, withCredentials)
		_, meta, err := c.DeleteClientGrant(context.Background(), upstream.Call{}, "T123", "g")
		if err != nil || meta.Attempts != 2 {
			t.Fatalf("got %v after %d attempts; want success after 2", err, meta.Attempts)
		}
		if refused.Load() != 1 || fake.Count(dinterotest.OpToken) != 2 || fake.Count(dinterotest.OpDelete) != 2 {
			t.Errorf("got %d refusals, %d token fetches, %d deletes; want 1, 2, 2", refused.Load(), fake.Count(dinterotest.OpToken), fake.Count(dinterotest.OpDelete))
		}
	})
	t.Run("authorize is not sent again", func(t *testing.T) {
		fake := dinterotest.New(t)
		refusing(fake, dinterotest.OpAuthorize)
		c := newClient(t, fake.URL, withCredentials)
		p := allParams
		p.OID = "T123"
		_, _, err := c.Authorize(context.Background(), upstream.Call{}, p)
		var e *upstream.Error
		if !errors.As(err, &e) || e.StatusCode != 401 || fake.Count(dinterotest.OpAuthorize) != 1 {
			t.Fatalf("got %v after %d calls; want the 401 after 1", err, fake.Count(dinterotest.OpAuthorize))
		}
		// The token was dropped: the caller's retry gets a fresh one.
		if _, _, err := c.Authorize(context.Background(), upstream.Call{}, p); err != nil {
			t.Fatalf("retry: %v", err)
		}
		if n := fake.Count(dinterotest.OpToken); n != 2 {
			t.Errorf("got %d token fetches; want 2", n)
		}
	})
}

func TestTokenExpiry(t *testing.T) {
	fake := dinterotest.New(t)
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := newClient(t, fake.URL, withCredentials, func(o *upstream.Options) {
		o.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	})
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	call := func() {
		t.Helper()
		if _, _, err := c.DeleteClientGrant(context.Background(), upstream.Call{}, "T123", "g"); err != nil {
			t.Fatal(err)
		}
	}
	// The fake's tokens live 3600 s: refreshed when less than
	// min(5 min, 360 s) = 300 s is left.
	steps := []struct {
		advance    time.Duration
		wantTokens int
	}{
		{0, 1},
		{3299 * time.Second, 1},
		{2 * time.Second, 2},
		{time.Minute, 2},
	}
	for i, s := range steps {
		advance(s.advance)
		call()
		if got := fake.Count(dinterotest.OpToken); got != s.wantTokens {
			t.Errorf("step %d: got %d token fetches; want %d", i, got, s.wantTokens)
		}
	}
}

func TestTokenFetchErrors(t *testing.T) {
	fake := dinterotest.New(t)
	c := newClient(t, fake.URL, func(o *upstream.Options) {
		o.Credentials = []upstream.Credentials{{AccountID: "T123", ClientID: "wrong", ClientSecret: "wrong-secret-777"}}
	})
	_, _, err := c.DeleteClientGrant(context.Background(), upstream.Call{}, "T123", "g")
	var e *upstream.Error
	if !errors.Is(err, upstream.ErrTokenFetch) || !errors.As(err, &e) || e.StatusCode != 401 || e.Code != "INVALID_CLIENT" {
		t.Fatalf("got %v; want ErrTokenFetch with Dintero's 401", err)
	}
	if strings.Contains(err.Error(), "wrong-secret-777") {
		t.Errorf("error %q holds the client secret", err)
	}
	if n := fake.Count(dinterotest.OpDelete); n != 0 {
		t.Errorf("got %d deletes; want none", n)
	}
}

func TestNew(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts upstream.Options
	}{
		{"relative", upstream.Options{BaseURL: "/v1"}},
		{"query", upstream.Options{BaseURL: "https://api.dintero.com/v1?x=1"}},
		{"partial credentials", upstream.Options{BaseURL: "https://api.dintero.com/v1", Credentials: []upstream.Credentials{{AccountID: "T123"}}}},
		{"an account twice", upstream.Options{BaseURL: "https://api.dintero.com/v1", Credentials: []upstream.Credentials{{AccountID: "T123", ClientID: "a", ClientSecret: "s"}, {AccountID: "T123", ClientID: "b", ClientSecret: "t"}}}},
	} {
		if _, err := upstream.New(tc.opts); err == nil {
			t.Errorf("%s: got no error; want one", tc.name)
		}
	}
}

func TestSecretsAreMasked(t *testing.T) {
	cr := upstream.Credentials{AccountID: "T123", ClientID: "id", ClientSecret: "very-secret-value"}
	o := upstream.OIDC{ClientID: "c", ClientSecret: "oidc-very-secret"}
	for _, s := range []string{fmt.Sprint(cr), fmt.Sprintf("%+v", cr), fmt.Sprintf("%#v", cr), fmt.Sprint(o), fmt.Sprintf("%#v", o), fmt.Sprintf("%v", &upstream.Grant{OIDC: &o})} {
		if strings.Contains(s, "very-secret") {
			t.Errorf("printed %q holds the secret", s)
		}
	}
}

func TestHTTP2ToHTTPS(t *testing.T) {
	var proto atomic.Value
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proto.Store(r.Proto)
		_, _ = w.Write(dinterotest.GrantJSON("g"))
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
	if _, _, err := c.DeleteClientGrant(context.Background(), callerToken, "T123", "g"); err != nil {
		t.Fatal(err)
	}
	if got := proto.Load(); got != "HTTP/2.0" {
		t.Errorf("got %v; want HTTP/2.0", got)
	}
}

func TestConcurrencyBound(t *testing.T) {
	fake := dinterotest.New(t)
	release := make(chan struct{})
	fake.HandleRaw(dinterotest.OpDelete, func(w http.ResponseWriter, r *http.Request) {
		<-release
		_, _ = w.Write(dinterotest.GrantJSON("g"))
	})
	c := newClient(t, fake.URL, func(o *upstream.Options) { o.MaxConcurrent = 3 })
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			if _, _, err := c.DeleteClientGrant(context.Background(), callerToken, "T123", "g"); err != nil {
				t.Errorf("a call within the bound failed: %v", err)
			}
		})
	}
	for fake.Count(dinterotest.OpDelete) < 3 {
		time.Sleep(time.Millisecond)
	}
	start := time.Now()
	_, _, err := c.DeleteClientGrant(context.Background(), callerToken, "T123", "g")
	if !errors.Is(err, upstream.ErrBusy) || time.Since(start) > 100*time.Millisecond {
		t.Errorf("got %v after %v; want ErrBusy at once", err, time.Since(start))
	}
	close(release)
	wg.Wait()
	if _, _, err := c.DeleteClientGrant(context.Background(), callerToken, "T123", "g"); err != nil {
		t.Errorf("after the burst: got %v; want success", err)
	}
	if n := fake.Count(dinterotest.OpDelete); n != 4 {
		t.Errorf("Dintero got %d deletes; want 4 (the refused call sent nothing)", n)
	}
}

func TestCircuitBreaker(t *testing.T) {
	fake := dinterotest.New(t)
	var failing atomic.Bool
	failing.Store(true)
	fake.HandleRaw(dinterotest.OpDelete, func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			dinterotest.WriteError(w, 500, "", "down")
			return
		}
		_, _ = w.Write(dinterotest.GrantJSON("g"))
	})
	obs := &counter{}
	c := newClient(t, fake.URL, func(o *upstream.Options) {
		o.Observer = obs
		o.Breaker = upstream.BreakerOptions{ConsecutiveFailures: 5, OpenFor: 200 * time.Millisecond}
	})
	call := func() error {
		_, _, err := c.DeleteClientGrant(context.Background(), callerToken, "T123", "g")
		return err
	}
	for i := range 5 {
		var e *upstream.Error
		if err := call(); !errors.As(err, &e) || e.StatusCode != 500 {
			t.Fatalf("call %d: got %v; want Dintero's 500", i, err)
		}
	}
	// Open: answered at once, nothing sent, no attempt counted.
	start := time.Now()
	_, meta, err := c.DeleteClientGrant(context.Background(), callerToken, "T123", "g")
	if !errors.Is(err, upstream.ErrCircuitOpen) || time.Since(start) > 50*time.Millisecond {
		t.Fatalf("got %v after %v; want ErrCircuitOpen at once", err, time.Since(start))
	}
	if n := fake.Count(dinterotest.OpDelete); n != 5 || meta.Attempts != 0 || obs.get("DeleteClientGrant") != 5 {
		t.Errorf("Dintero got %d calls, meta says %d attempts, the observer saw %d; want 5, 0 and 5", n, meta.Attempts, obs.get("DeleteClientGrant"))
	}
	// Still failing when the probe goes: open again.
	time.Sleep(250 * time.Millisecond)
	if err := call(); !errors.As(err, new(*upstream.Error)) {
		t.Fatalf("probe: got %v; want Dintero's 500", err)
	}
	if err := call(); !errors.Is(err, upstream.ErrCircuitOpen) {
		t.Fatalf("after a failed probe: got %v; want ErrCircuitOpen", err)
	}
	// Healthy again: the probe closes the breaker.
	failing.Store(false)
	time.Sleep(250 * time.Millisecond)
	for i := range 3 {
		if err := call(); err != nil {
			t.Fatalf("call %d after recovery: %v", i, err)
		}
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if want := "[open half-open open half-open closed]"; fmt.Sprint(obs.states) != want {
		t.Errorf("got states %v; want %s", obs.states, want)
	}
}

func TestBreakerIgnoresClientErrorsAndCancels(t *testing.T) {
	fake := dinterotest.New(t)
	fake.HandleRaw(dinterotest.OpDelete, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path[len(r.URL.Path)-1] == 's' {
			<-r.Context().Done()
			return
		}
		dinterotest.WriteError(w, 404, "", "no")
	})
	c := newClient(t, fake.URL, func(o *upstream.Options) {
		o.Breaker = upstream.BreakerOptions{ConsecutiveFailures: 2}
	})
	for range 5 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		_, _, _ = c.DeleteClientGrant(ctx, callerToken, "T123", "slow")
		cancel()
		if _, _, err := c.DeleteClientGrant(context.Background(), callerToken, "T123", "g"); errors.Is(err, upstream.ErrCircuitOpen) {
			t.Fatal("the breaker opened on 404s and caller timeouts")
		}
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
