package upstream_test

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/dintero-facade/dintero-facade/internal/dinteromock"
	"github.com/dintero-facade/dintero-facade/internal/dinterotest"
	"github.com/dintero-facade/dintero-facade/internal/idtoken"
	"github.com/dintero-facade/dintero-facade/upstream"
)

// allParams sets every parameter, for the test data set's application on
// account P00000000, whose code the tests add.
var allParams = upstream.AuthorizeParams{
	OID: "P00000000", Audience: dinteromock.Audience("P00000000"), Scope: "openid",
	ResponseType: "authenticate", ClientID: dinterotest.App, State: "st&ate=1", RedirectURI: dinterotest.Callback2,
	VerificationCode: "VC-SECRET-9731", Connection: "sms",
}

// claims reads a JWT's claims without checking its signature (the mock's
// tests check that).
func claims(t *testing.T, tok string) jwt.MapClaims {
	t.Helper()
	c := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(tok, c); err != nil {
		t.Fatalf("%q is not a JWT: %v", tok, err)
	}
	return c
}

func TestAuthorize(t *testing.T) {
	tests := []struct {
		name      string
		params    upstream.AuthorizeParams
		wantQuery map[string]string
		wantAud   string
		wantLoc   string
	}{
		{"all", allParams, map[string]string{
			"audience": allParams.Audience, "scope": "openid", "response_type": "authenticate", "client_id": dinterotest.App,
			"state": "st&ate=1", "redirect_uri": dinterotest.Callback2, "verification_code": "VC-SECRET-9731", "connection": "sms",
		}, dinterotest.Callback2, dinterotest.Callback2 + "&"},
		{"required only", upstream.AuthorizeParams{OID: "P00000000", Audience: dinteromock.Audience("P00000000"), ResponseType: "authenticate", ClientID: dinterotest.App, VerificationCode: "VC-SECRET-9731"}, map[string]string{
			"audience": dinteromock.Audience("P00000000"), "response_type": "authenticate", "client_id": dinterotest.App, "verification_code": "VC-SECRET-9731",
		}, dinterotest.App, dinterotest.Callback + "?"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake := dinterotest.New(t)
			fake.AddCode("P00000000", "VC-SECRET-9731")
			obs := &counter{}
			c := newClient(t, fake.URL, func(o *upstream.Options) { o.Observer = obs })
			rd, meta, err := c.Authorize(context.Background(), upstream.Call{Authorization: fake.Bearer("P00000000")}, tc.params)
			if err != nil {
				t.Fatalf("Authorize: %v", err)
			}
			reqs := fake.Requests()
			if len(reqs) != 2 || reqs[0].Op != dinterotest.OpKeys || obs.get(upstream.OpAuthorize.Name()) != 1 {
				t.Fatalf("got %d requests, %d attempts; want the keys, then authorize once: the redirect is never followed", len(reqs), obs.get(upstream.OpAuthorize.Name()))
			}
			r := reqs[1]
			if len(r.Body) != 0 || r.Method != http.MethodPost || r.Header.Get("Accept") != "application/json" {
				t.Errorf("got %s with body %q, Accept %q; want POST without a body, accepting JSON", r.Method, r.Body, r.Header.Get("Accept"))
			}
			if len(r.Query) != len(tc.wantQuery) {
				t.Errorf("got query %v; want %v", r.Query, tc.wantQuery)
			}
			for k, v := range tc.wantQuery {
				if got := r.Query[k]; len(got) != 1 || got[0] != v {
					t.Errorf("query %s: got %q; want %q", k, got, v)
				}
			}
			if got := claims(t, rd.IDToken); got["aud"] != tc.wantAud || got["sub"] != "user-VC-SECRET-9731" {
				t.Errorf("got id_token claims %v; want aud %s", got, tc.wantAud)
			}
			if id := rd.Verification; id.Result != idtoken.Verified || id.Claims.Subject != "user-VC-SECRET-9731" || !slices.Equal(id.Claims.Audience, []string{tc.wantAud}) {
				t.Errorf("got identity %+v; want verified, the mock's user, aud %s", id, tc.wantAud)
			}
			if _, ok := rd.Query["id_token"]; ok {
				t.Errorf("id_token repeated in query %v", rd.Query)
			}
			if tc.params.State != "" && rd.Query["state"] != tc.params.State {
				t.Errorf("got state %q; want %q", rd.Query["state"], tc.params.State)
			}
			if !strings.HasPrefix(rd.Location, tc.wantLoc) || meta.Status != http.StatusFound || meta.Attempts != 1 || !meta.Sent {
				t.Errorf("got location %q meta %+v; want a 302 to %s…, sent", rd.Location, meta, tc.wantLoc)
			}
			if !fake.Mock.CodeUsed("VC-SECRET-9731") {
				t.Error("the code was not spent")
			}
		})
	}
}

// TestAuthorizeShapesOfTheMock: each documented shape of the answer, and
// of OAuth's refusal in it, is read the same.
func TestAuthorizeShapesOfTheMock(t *testing.T) {
	for _, shape := range []dinteromock.AuthorizeAnswer{dinteromock.AnswerQuery, dinteromock.AnswerFragment, dinteromock.AnswerJSON} {
		t.Run(string(shape), func(t *testing.T) {
			fake := dinterotest.New(t, dinterotest.Options{Mock: dinteromock.Options{Behaviour: dinteromock.Behaviour{Authorize: shape}}})
			fake.AddCode("P00000000", "VC-SECRET-9731")
			c := newClient(t, fake.URL)
			call := upstream.Call{Authorization: fake.Bearer("P00000000")}
			rd, meta, err := c.Authorize(context.Background(), call, allParams)
			if err != nil {
				t.Fatalf("Authorize: %v", err)
			}
			if claims(t, rd.IDToken)["aud"] != dinterotest.Callback2 || !strings.HasPrefix(rd.Location, dinterotest.Callback2) {
				t.Errorf("got %+v; want the id_token for %s", rd, dinterotest.Callback2)
			}
			// The callback's own query (keep=1) stays in the query; what
			// Dintero adds is where the shape puts it.
			where := rd.Query
			if shape == dinteromock.AnswerFragment {
				where = rd.Fragment
			}
			if rd.Query["keep"] != "1" || where["state"] != "st&ate=1" || len(rd.Query)+len(rd.Fragment) != 2 {
				t.Errorf("got query %v fragment %v; want keep=1 in the query and the state in the %s", rd.Query, rd.Fragment, shape)
			}
			wantStatus := map[dinteromock.AuthorizeAnswer]int{dinteromock.AnswerQuery: 302, dinteromock.AnswerFragment: 302, dinteromock.AnswerJSON: 200}[shape]
			if meta.Status != wantStatus {
				t.Errorf("got status %d; want %d", meta.Status, wantStatus)
			}
			_, meta, err = c.Authorize(context.Background(), call, allParams)
			var oe *upstream.OAuthError
			if !errors.As(err, &oe) || oe.Code != "access_denied" || oe.State != "st&ate=1" || oe.Description == "" || oe.StatusCode != wantStatus || !meta.Sent {
				t.Errorf("reusing the code: got %v (%+v), sent %v; want access_denied with the state, sent", err, oe, meta.Sent)
			}
		})
	}
}

func TestAuthorizeAnswers(t *testing.T) {
	tests := []struct {
		name         string
		status       int
		loc          string
		body         string
		wantErr      error
		wantOAuth    string
		wantID       string
		wantAccess   string
		wantFragment map[string]string
	}{
		{"302", 302, "https://a.example/cb?id_token=T1&state=s", "", nil, "", "T1", "", map[string]string{}},
		{"303", 303, "https://a.example/cb?id_token=T2", "", nil, "", "T2", "", map[string]string{}},
		{"200 with a Location", 200, "https://a.example/cb?id_token=T3", "", nil, "", "T3", "", map[string]string{}},
		{"200 JSON", 200, "", `{"redirect_uri":"https://a.example/cb?id_token=T4&state=s"}`, nil, "", "T4", "", map[string]string{}},
		{"201 JSON with a fragment", 201, "", `{"redirect_uri":"https://a.example/cb#id_token=T5&state=s"}`, nil, "", "T5", "", map[string]string{"state": "s"}},
		{"tokens in the fragment", 302, "https://a.example/cb#access_token=A6&token_type=Bearer&id_token=T6", "", nil, "", "T6", "A6", map[string]string{"token_type": "Bearer"}},
		{"an access token alone", 302, "https://a.example/cb#access_token=A7", "", nil, "", "", "A7", map[string]string{}},
		{"OAuth's error", 302, "https://app.example.com/cb?error=access_denied&error_description=bad+code&state=s1", "", nil, "access_denied", "", "", nil},
		{"OAuth's error beside an id_token", 302, "https://app.example.com/cb?error=access_denied#id_token=T9", "", nil, "access_denied", "", "", nil},
		{"OAuth's error with a part that does not parse", 302, "https://app.example.com/cb?error=access_denied&error_description=100%", "", nil, "access_denied", "", "", nil},
		{"OAuth's error without a value", 302, "https://app.example.com/cb?error#id_token=T9", "", nil, "", "", "", nil},
		{"tokens in the query and the fragment: the query's", 302, "https://a.example/cb?id_token=Q1#id_token=F1&access_token=A1", "", nil, "", "Q1", "A1", map[string]string{}},
		{"OAuth's error in the fragment", 302, "https://app.example.com/cb#error=invalid_scope&state=s1", "", nil, "invalid_scope", "", "", nil},
		{"OAuth's error in JSON", 200, "", `{"redirect_uri":"https://app.example.com/cb?error=server_error"}`, nil, "server_error", "", "", nil},
		{"an error OAuth does not define", 302, "https://app.example.com/cb?error=weird_thing", "", nil, "weird_thing", "", "", nil},
		{"302 without a Location", 302, "", "", upstream.ErrUnexpectedResponse, "", "", "", nil},
		{"200 neither a Location nor JSON", 200, "", `<html>ok</html>`, upstream.ErrUnexpectedResponse, "", "", "", nil},
		{"200 JSON without redirect_uri", 200, "", `{"location":"https://a.example/cb?id_token=T"}`, upstream.ErrUnexpectedResponse, "", "", "", nil},
		{"a relative Location", 302, "/cb?id_token=T", "", upstream.ErrUnexpectedResponse, "", "", "", nil},
		{"a javascript: Location", 302, "javascript://a.example/cb?id_token=T", "", upstream.ErrUnexpectedResponse, "", "", "", nil},
		{"neither a token nor an error", 302, "https://app.example.com/login?next=x", "", upstream.ErrUnexpectedResponse, "", "", "", nil},
		{"a Location with a bad query", 302, "https://a.example/cb?id_token=%zz", "", upstream.ErrUnexpectedResponse, "", "", "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake := dinterotest.New(t)
			fake.HandleRaw(dinterotest.OpAuthorize, func(w http.ResponseWriter, r *http.Request) {
				if tc.loc != "" {
					w.Header().Set("Location", tc.loc)
				}
				if tc.body != "" {
					w.Header().Set("Content-Type", "application/json")
				}
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
			})
			c := newClient(t, fake.URL)
			rd, meta, err := c.Authorize(context.Background(), callerAt(fake, allParams.OID), allParams)
			if !meta.Sent || meta.Attempts != 1 {
				t.Errorf("got meta %+v; want sent, once", meta)
			}
			var oe *upstream.OAuthError
			switch {
			case tc.wantOAuth != "" || strings.Contains(tc.loc, "?error#"):
				if !errors.As(err, &oe) || oe.Code != tc.wantOAuth || oe.StatusCode != tc.status {
					t.Fatalf("got %v; want OAuth's %s", err, tc.wantOAuth)
				}
				return
			case tc.wantErr != nil:
				var e *upstream.Error
				if !errors.Is(err, tc.wantErr) || !errors.As(err, &e) || e.StatusCode != tc.status {
					t.Fatalf("got %v; want %v with status %d", err, tc.wantErr, tc.status)
				}
				if strings.Contains(err.Error(), "%zz") || strings.Contains(err.Error(), "id_token=") {
					t.Errorf("error %q quotes the location", err)
				}
				return
			case err != nil:
				t.Fatalf("got %v; want success", err)
			}
			if rd.IDToken != tc.wantID || rd.AccessToken != tc.wantAccess || !maps.Equal(rd.Fragment, tc.wantFragment) {
				t.Errorf("got id_token %q access_token %q fragment %v; want %q %q %v", rd.IDToken, rd.AccessToken, rd.Fragment, tc.wantID, tc.wantAccess, tc.wantFragment)
			}
			if _, ok := rd.Fragment["access_token"]; ok {
				t.Errorf("access_token repeated in fragment %v", rd.Fragment)
			}
		})
	}
}

// TestAuthorizeOAuthErrorIsMasked: an error description, URI or state that
// echoes the verification code or a token does not carry it on.
func TestAuthorizeOAuthErrorIsMasked(t *testing.T) {
	fake := dinterotest.New(t)
	call := callerAt(fake, allParams.OID)
	fake.HandleRaw(dinterotest.OpAuthorize, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", "https://app.example.com/cb?error=access_denied&error_description="+
			"code+VC-SECRET-9731+refused+for+"+strings.ReplaceAll(call.Authorization, " ", "+")+
			"&error_uri=https%3A%2F%2Fx.example%2F%3Fc%3DVC-SECRET-9731&state=st-VC-SECRET-9731")
		w.WriteHeader(302)
	})
	c := newClient(t, fake.URL)
	_, _, err := c.Authorize(context.Background(), call, allParams)
	var oe *upstream.OAuthError
	if !errors.As(err, &oe) {
		t.Fatalf("got %v; want OAuth's error", err)
	}
	_, tok, _ := strings.Cut(call.Authorization, " ")
	for _, secret := range []string{"VC-SECRET-9731", tok} {
		if strings.Contains(oe.Description, secret) || strings.Contains(oe.URI, secret) || strings.Contains(oe.State, secret) || strings.Contains(err.Error(), secret) {
			t.Errorf("the description %q, URI %q or state %q carries a secret", oe.Description, oe.URI, oe.State)
		}
	}
	if !strings.Contains(oe.Description, "refused") {
		t.Errorf("got description %q; want the rest of it kept", oe.Description)
	}
}

// TestAuthorizeNotSent: when nothing left the process, the call says so.
func TestAuthorizeNotSent(t *testing.T) {
	t.Run("connection refused, tried again", func(t *testing.T) {
		// The keys come from the mock; authorize goes to a port that
		// refuses connections.
		fake := dinterotest.New(t)
		refused, err := url.Parse(dinterotest.RefusingURL(t))
		if err != nil {
			t.Fatal(err)
		}
		obs := &counter{}
		c := newClient(t, fake.URL, func(o *upstream.Options) {
			o.Observer = obs
			base := o.Transport
			o.Transport = roundTripFunc(func(r *http.Request) (*http.Response, error) {
				if r.Method == http.MethodPost {
					r = r.Clone(r.Context())
					r.URL.Host = refused.Host
				}
				return base.RoundTrip(r)
			})
		})
		call := callerAt(fake, allParams.OID)
		_, meta, err := c.Authorize(context.Background(), call, allParams)
		if !errors.Is(err, upstream.ErrTransport) || meta.Attempts != 3 || obs.get(upstream.OpAuthorize.Name()) != 3 || meta.Sent {
			t.Errorf("got %v after %d attempts, sent %v; want ErrTransport after 3, not sent", err, meta.Attempts, meta.Sent)
		}
		for _, secret := range []string{allParams.VerificationCode, strings.TrimPrefix(call.Authorization, "Bearer ")} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error %q holds a secret", err)
			}
		}
	})
	t.Run("no credentials", func(t *testing.T) {
		fake := dinterotest.New(t)
		c := newClient(t, fake.URL)
		if _, meta, err := c.Authorize(context.Background(), upstream.Call{}, allParams); !errors.Is(err, upstream.ErrNoCredentials) || meta.Sent {
			t.Errorf("got %v, sent %v; want ErrNoCredentials, not sent", err, meta.Sent)
		}
	})
	t.Run("a reset is not tried again", func(t *testing.T) {
		fake := dinterotest.New(t)
		fake.HandleRaw(dinterotest.OpAuthorize, dinterotest.Reset)
		c := newClient(t, fake.URL)
		_, meta, err := c.Authorize(context.Background(), callerAt(fake, allParams.OID), allParams)
		if !errors.Is(err, upstream.ErrTransport) || fake.Count(dinterotest.OpAuthorize) != 1 || meta.Attempts != 1 || !meta.Sent {
			t.Errorf("got %v after %d requests, sent %v; want ErrTransport after 1, sent", err, fake.Count(dinterotest.OpAuthorize), meta.Sent)
		}
		if strings.Contains(err.Error(), allParams.VerificationCode) {
			t.Errorf("error %q holds the verification code", err)
		}
	})
}

// TestAuthorizeBrokenBody: a 302 whose body breaks off after its headers
// still gives its redirect: the code is spent, and its token is not lost.
func TestAuthorizeBrokenBody(t *testing.T) {
	fake := dinterotest.New(t)
	fake.HandleRaw(dinterotest.OpAuthorize, func(w http.ResponseWriter, r *http.Request) {
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		_, _ = buf.WriteString("HTTP/1.1 302 Found\r\nLocation: https://app.example.com/cb?id_token=T1&state=s\r\nContent-Length: 100\r\n\r\n<html>")
		_ = buf.Flush()
		_ = conn.Close()
	})
	c := newClient(t, fake.URL)
	rd, meta, err := c.Authorize(context.Background(), callerAt(fake, allParams.OID), allParams)
	if err != nil || rd.IDToken != "T1" || meta.Status != 302 || !meta.Sent {
		t.Errorf("got %+v, %+v, %v; want the redirect's id_token", rd, meta, err)
	}
}

// TestOAuthCodeKeptThroughMasking: a verification code that is a word of
// OAuth's error code must not turn access_denied into something else.
func TestOAuthCodeKeptThroughMasking(t *testing.T) {
	fake := dinterotest.New(t)
	fake.HandleRaw(dinterotest.OpAuthorize, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", "https://app.example.com/cb?error=access_denied&error_description=code+denied+is+wrong")
		w.WriteHeader(302)
	})
	c := newClient(t, fake.URL)
	p := allParams
	p.VerificationCode = "denied"
	_, _, err := c.Authorize(context.Background(), callerAt(fake, allParams.OID), p)
	var oe *upstream.OAuthError
	if !errors.As(err, &oe) || oe.Code != "access_denied" || strings.Contains(oe.Description, " denied ") {
		t.Errorf("got %v (%+v); want access_denied, the description masked", err, oe)
	}
}
