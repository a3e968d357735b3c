package upstream_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dintero-facade/dintero-facade/internal/dinterotest"
	"github.com/dintero-facade/dintero-facade/upstream"
)

func TestErrors(t *testing.T) {
	tests := []struct {
		name        string
		status      int
		header      map[string]string
		body        string
		wantCode    string
		wantMessage string
		wantErrors  string
		wantRetry   time.Duration
	}{
		{"dintero 404", 404, nil, `{"error":{"code":"NOT_FOUND","message":"grant not found"}}`, "NOT_FOUND", "grant not found", "[]", 0},
		{"dintero 400 with errors", 400, nil, `{"error":{"message":"bad","errors":[{"field":"id","message":"too long"},"plain",7]}}`, "", "bad", "[map[field:id message:too long] plain 7]", 0},
		{"html from a proxy", 502, nil, `<html><body>Bad gateway</body></html>`, "", "", "[]", 0},
		{"empty", 500, nil, ``, "", "", "[]", 0},
		{"truncated", 500, nil, `{"error":{"message":"tru`, "", "", "[]", 0},
		{"error is a string", 400, nil, `{"error":"nope"}`, "", "", "[]", 0},
		{"x-request-id", 403, map[string]string{"X-Request-Id": "xr-1"}, `{"error":{"message":"no"}}`, "", "no", "[]", 0},
		{"retry after", 429, map[string]string{"Retry-After": "120"}, `{"error":{"code":"RATE","message":"slow down"}}`, "RATE", "slow down", "[]", 120 * time.Second},
		{"a number for a code", 400, nil, `{"error":{"code":7,"message":"bad","errors":[{"field":"x"}]}}`, "7", "bad", "[map[field:x]]", 0},
		{"a duplicate name", 400, nil, `{"error":{"message":"first","message":"second"}}`, "", "second", "[]", 0},
		{"invalid UTF-8", 400, nil, "{\"error\":{\"code\":\"C\",\"message\":\"caf\xe9\"}}", "C", "caf\ufffd", "[]", 0},
		{"errors that are not a list", 400, nil, `{"error":{"code":"C","message":"m","errors":"x"}}`, "C", "m", "[]", 0},
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
			_, meta, err := c.DeleteClientGrant(context.Background(), caller(fake), "T123", "g")
			var e *upstream.Error
			if !errors.As(err, &e) {
				t.Fatalf("got %v; want *upstream.Error", err)
			}
			if e.StatusCode != tc.status || e.Code != tc.wantCode || e.Message != tc.wantMessage || e.RetryAfter != tc.wantRetry || e.Reason != nil {
				t.Errorf("got %+v; want status %d code %q message %q retry %v", e, tc.status, tc.wantCode, tc.wantMessage, tc.wantRetry)
			}
			if got := fmt.Sprint(append([]any{}, e.Errors...)); got != tc.wantErrors {
				t.Errorf("got errors %s; want %s", got, tc.wantErrors)
			}
			if want := tc.header["X-Request-Id"]; want != "" && (e.RequestID != want || meta.RequestID != want) {
				t.Errorf("got request id %q/%q; want %q", e.RequestID, meta.RequestID, want)
			}
			if meta.Status != tc.status || !meta.Sent {
				t.Errorf("got meta %+v; want status %d, sent", meta, tc.status)
			}
		})
	}
}

// TestEchoedSecretsAreMasked: whatever Dintero echoes of what a request
// carried, in whichever form, in whichever part of its error, is masked:
// the Basic header of the token fetch (decodable to the client secret) and
// the client secret; the caller's bearer token and the verification code
// of authorize; and any JWT or Authorization value.
func TestEchoedSecretsAreMasked(t *testing.T) {
	const secret, code = "s3cr3t/client+PW=77", "VC-SECRET/9731+x"
	const jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
	// opaque is a caller's token that is no JWT: no pattern can find it,
	// only the request's own list of secrets.
	const opaque = "op_aque-Caller-Token-42"
	basic := dinterotest.BasicAuth(dinterotest.ClientID, secret)
	b64 := strings.TrimPrefix(basic, "Basic ")
	tests := []struct {
		name, echoed string
		token        bool // echoed by the token endpoint, else by authorize
		bearer       string
	}{
		{"the Basic header", basic, true, ""},
		{"its base64", b64, true, ""},
		{"its base64, cut", "Basic " + b64[:12], true, ""},
		{"id:secret", dinterotest.ClientID + ":" + secret, true, ""},
		{"the secret", secret, true, ""},
		{"the secret in base64", base64.StdEncoding.EncodeToString([]byte(secret)), true, ""},
		{"the secret in base64url", base64.RawURLEncoding.EncodeToString([]byte(secret)), true, ""},
		{"the secret, query-escaped", url.QueryEscape(secret), true, ""},
		{"the secret, path-escaped", url.PathEscape(secret), true, ""},
		{"the bearer header", "Bearer " + jwt, false, ""},
		{"the bearer token", jwt, false, ""},
		{"an opaque bearer token", opaque, false, opaque},
		{"an opaque bearer token, cut", opaque[:18] + " and so on", false, opaque},
		{"an opaque bearer token, upper-cased", strings.ToUpper(opaque), false, opaque},
		{"the bearer token cut after its payload", jwt[:strings.LastIndex(jwt, ".")], false, ""},
		{"a JWT the request did not carry, cut after its payload", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ5In0", false, ""},
		{"an opaque bearer token, escaped, then a cut escape", url.QueryEscape(opaque+"&") + "%4", false, opaque},
		{"the code", code, false, ""},
		{"the code in base64", base64.StdEncoding.EncodeToString([]byte(code)), false, ""},
		{"the code, query-escaped", url.QueryEscape(code), false, ""},
		{"the code in a query Dintero echoes", "?verification_code=" + url.QueryEscape(code) + "&state=s", false, ""},
		{"a JWT the request did not carry", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ5In0.", false, ""},
		{"the secret, query-escaped, lower-case hex", regexp.MustCompile(`%[0-9A-F]{2}`).ReplaceAllStringFunc(url.QueryEscape(secret), strings.ToLower), true, ""},
		{"the secret, escaped twice", url.QueryEscape(url.QueryEscape(secret)), true, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake := dinterotest.New(t)
			// The caller's tokens here are not the mock's.
			fake.OpenKeys()
			body := fmt.Sprintf(`{"error":{"code":"ECHO %[1]s","message":"you sent %[1]s","errors":[{"field":"authorization","value":%[2]q,%[2]q:"k"}]}}`, strings.ReplaceAll(tc.echoed, `"`, `'`), tc.echoed)
			fake.HandleRaw(dinterotest.OpToken, dinterotest.Body(401, "application/json", []byte(body)))
			fake.HandleRaw(dinterotest.OpAuthorize, dinterotest.Body(400, "application/json", []byte(body)))
			c := newClient(t, fake.URL, func(o *upstream.Options) {
				o.Credentials = []upstream.Credentials{{AccountID: "P00000000", ClientID: dinterotest.ClientID, ClientSecret: secret}}
			})
			p := allParams
			p.VerificationCode = code
			call := upstream.Call{Authorization: "Bearer " + jwt}
			if tc.bearer != "" {
				call.Authorization = "Bearer " + tc.bearer
			}
			wantStatus := 400
			if tc.token {
				call, wantStatus = facade(c, "P00000000"), 401
			}
			_, _, err := c.Authorize(context.Background(), call, p)
			var e *upstream.Error
			if !errors.As(err, &e) || e.StatusCode != wantStatus || errors.Is(err, upstream.ErrTokenFetch) != tc.token {
				t.Fatalf("got %v; want Dintero's %d", err, wantStatus)
			}
			all := e.Code + "|" + e.Message + "|" + fmt.Sprint(e.Errors) + "|" + err.Error()
			for _, part := range []string{tc.echoed, strings.TrimPrefix(tc.echoed, "Basic "), strings.TrimPrefix(tc.echoed, "Bearer "), secret, code, jwt, opaque, opaque[:16], strings.ToUpper(opaque), jwt[:strings.LastIndex(jwt, ".")]} {
				if strings.Contains(all, part) {
					t.Errorf("%q survives in %s", part, all)
				}
			}
			if !strings.Contains(e.Message, "you sent") || !strings.Contains(all, "[REDACTED]") {
				t.Errorf("got %q; want the message kept, the secret masked", all)
			}
		})
	}
}

// TestBase64URLAndShortSecrets: a secret whose base64 differs in the URL
// alphabet is masked in both, and a secret shorter than 4 bytes where it
// stands as a word.
func TestBase64URLAndShortSecrets(t *testing.T) {
	// "\xfb\xff?>~" has + and / in standard base64, - and _ in base64url.
	const secret = "s\xfb\xff?>~\xff\xfe"
	for _, tc := range []struct {
		name, code, echoed, survives string
	}{
		{"base64url", secret, base64.RawURLEncoding.EncodeToString([]byte(secret)), ""},
		{"base64", secret, base64.StdEncoding.EncodeToString([]byte(secret)), ""},
		{"a short code as a word", "123", "code 123 is wrong; 1234 is not it", "1234"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := dinterotest.New(t)
			fake.HandleRaw(dinterotest.OpAuthorize, dinterotest.Body(400, "application/json", []byte(`{"error":{"message":"you sent `+tc.echoed+`"}}`)))
			c := newClient(t, fake.URL)
			p := allParams
			p.VerificationCode = tc.code
			_, _, err := c.Authorize(context.Background(), callerAt(fake, allParams.OID), p)
			var e *upstream.Error
			if !errors.As(err, &e) {
				t.Fatalf("got %v", err)
			}
			word := strings.Fields(tc.echoed)[0]
			if tc.code == "123" {
				word = "123 "
			}
			if strings.Contains(e.Message, word) || (tc.survives != "" && !strings.Contains(e.Message, tc.survives)) {
				t.Errorf("got %q; want %q masked and %q kept", e.Message, word, tc.survives)
			}
		})
	}
}

// TestErrorText: an error's text names the status and whatever Dintero
// said, and nothing it did not say.
func TestErrorText(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&upstream.Error{StatusCode: 404}, "dintero: HTTP 404 Not Found"},
		{&upstream.Error{StatusCode: 599}, "dintero: HTTP 599"},
		{&upstream.Error{StatusCode: 400, Code: "BAD", Message: "no"}, "dintero: HTTP 400 Bad Request: BAD: no"},
		{&upstream.Error{StatusCode: 400, Message: "no"}, "dintero: HTTP 400 Bad Request: no"},
		{&upstream.Error{StatusCode: 200, Reason: upstream.ErrDecode}, "dintero: HTTP 200 OK: " + upstream.ErrDecode.Error()},
		{&upstream.OAuthError{Code: "access_denied"}, "dintero: authorize refused: access_denied"},
		{&upstream.OAuthError{Code: "access_denied", Description: "bad code"}, "dintero: authorize refused: access_denied: bad code"},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("got %q; want %q", got, tc.want)
		}
	}
}

// TestDinteroRequestIDIsSafe: Dintero's request id is the server's text,
// passed on to callers, logs and errors. Whatever of the request a proxy or
// a broken server echoes there (the code, the caller's token, the Basic
// header of the token fetch, in any form) is masked, and the id is printable
// ASCII without spaces or quotes and at most 128 bytes, on success and on
// error alike.
func TestDinteroRequestIDIsSafe(t *testing.T) {
	const secret, code = "s3cr3t/client+PW=77", "VC-SECRET/9731+x"
	const opaque = "op_aque-Caller-Token-42"
	basic := dinterotest.BasicAuth(dinterotest.ClientID, secret)
	for _, tc := range []struct {
		name, id string
		token    bool // answered by the token endpoint, else by authorize
		status   int
		want     string // "" when only the secrets' absence is checked
	}{
		{"a plain id", "req-7f3a:9/x", false, 400, "req-7f3a:9/x"},
		{"the code", "id-" + code, false, 400, ""},
		{"the code, escaped", "id-" + url.QueryEscape(code), false, 400, ""},
		{"the code on success", code, false, 302, ""},
		{"the caller's token", opaque, false, 400, ""},
		// Only the replacement of the tab makes it the token.
		{"the caller's token, a tab for its _", strings.Replace(opaque, "_", "\t", 1), false, 400, ""},
		{"the Authorization header", "Bearer " + opaque, false, 400, ""},
		{"a JWT", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ5In0.c2ln", false, 400, ""},
		{"the Basic header", basic, true, 401, ""},
		{"the client secret", secret, true, 401, ""},
		{"quotes and spaces", `a "b" c\d` + "\té", false, 400, "a__b__c_d___"},
		{"too long", strings.Repeat("x", 300), false, 400, strings.Repeat("x", 128)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := dinterotest.New(t)
			fake.OpenKeys()
			answer := func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Request-Id", tc.id)
				if tc.status == 302 {
					w.Header().Set("Location", dinterotest.Callback+"?error=access_denied")
				}
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(`{"error":{"message":"no"}}`))
			}
			fake.HandleRaw(dinterotest.OpToken, answer)
			fake.HandleRaw(dinterotest.OpAuthorize, answer)
			c := newClient(t, fake.URL, func(o *upstream.Options) {
				o.MaxAttempts = 1
				o.Credentials = []upstream.Credentials{{AccountID: "P00000000", ClientID: dinterotest.ClientID, ClientSecret: secret}}
			})
			p := allParams
			p.VerificationCode = code
			call := upstream.Call{Authorization: "Bearer " + opaque}
			if tc.token {
				call = facade(c, "P00000000")
			}
			_, meta, err := c.Authorize(context.Background(), call, p)
			if err == nil {
				t.Fatal("got no error")
			}
			var ids []string
			var e *upstream.Error
			var oe *upstream.OAuthError
			switch {
			case errors.As(err, &e):
				ids = append(ids, e.RequestID)
			case errors.As(err, &oe):
				ids = append(ids, oe.RequestID)
			default:
				t.Fatalf("got %v; want Dintero's answer", err)
			}
			if !tc.token {
				ids = append(ids, meta.RequestID)
			}
			for _, id := range ids {
				if tc.want != "" && id != tc.want {
					t.Errorf("got request id %q; want %q", id, tc.want)
				}
				if len(id) > 128 || strings.ContainsFunc(id, func(r rune) bool { return r <= ' ' || r >= 0x7f || r == '"' || r == '\\' }) {
					t.Errorf("got request id %q; want at most 128 printable ASCII bytes", id)
				}
				for _, s := range []string{code, url.QueryEscape(code), opaque, secret, strings.TrimPrefix(basic, "Basic "), "eyJzdWIiOiJ5In0"} {
					if strings.Contains(id+err.Error(), s) {
						t.Errorf("%q survives in the request id %q or the error %q", s, id, err)
					}
				}
			}
		})
	}
}
