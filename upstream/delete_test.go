package upstream_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dintero-facade/dintero-facade/internal/dinteromock"
	"github.com/dintero-facade/dintero-facade/internal/dinterotest"
	"github.com/dintero-facade/dintero-facade/upstream"
)

func TestDeleteClientGrant(t *testing.T) {
	fake := dinterotest.New(t)
	fake.AddGrants("T12345678", "grant-1")
	c := newClient(t, fake.URL)
	call := upstream.Call{Authorization: fake.Bearer("T12345678"), RequestID: "req-42"}

	g, meta, err := c.DeleteClientGrant(context.Background(), call, "T12345678", "grant-1")
	if err != nil {
		t.Fatalf("DeleteClientGrant: %v", err)
	}
	want := dinterotest.FullGrant("T12345678", "grant-1")
	if g.ID != want.ID || g.ClientID != want.ClientID || g.Audience != want.Audience || !slices.Equal(g.Scope, want.Scope) || g.Type != want.Type ||
		g.OIDC == nil || *g.OIDC != (upstream.OIDC{ClientID: want.OIDC.ClientID, ClientSecret: want.OIDC.ClientSecret, Authority: want.OIDC.Authority}) ||
		g.CreatedAt == nil || !g.CreatedAt.Equal(want.CreatedAt) || g.UpdatedAt == nil || g.DeletedAt == nil ||
		g.CreatedBy != want.CreatedBy || g.DeletedBy != "caller-T12345678" {
		t.Errorf("got grant %+v; want %+v, deleted by the caller", g, want)
	}
	if meta.Status != 200 || meta.Attempts != 1 || !strings.HasPrefix(meta.RequestID, "mock-") || !meta.Sent || meta.Uncertain != nil || meta.Undecoded != nil {
		t.Errorf("got meta %+v; want status 200, 1 attempt, the mock's request id, sent, nothing uncertain or undecoded", meta)
	}
	reqs := fake.Requests()
	if len(reqs) != 1 {
		t.Fatalf("got %d requests; want 1", len(reqs))
	}
	r := reqs[0]
	for k, want := range map[string]string{
		"Authorization": call.Authorization,
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
	if fake.Mock.HasGrant("T12345678", "grant-1") {
		t.Error("the grant was not deleted")
	}
}

func TestPathEscaping(t *testing.T) {
	fake := dinterotest.New(t)
	c := newClient(t, fake.URL)
	ids := []string{"../token", "a/b", "x?y=1#z", "%2e%2e", "sp ace", "..%2F..", "ä/ö", "a;b=c", "...", "/"}
	fake.AddGrants("T123", ids...)
	for _, id := range ids {
		t.Run(id, func(t *testing.T) {
			before := len(fake.Requests())
			g, _, err := c.DeleteClientGrant(context.Background(), caller(fake), "T123", id)
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
			if g.ID != id || fake.Mock.HasGrant("T123", id) {
				t.Errorf("got grant id %q; want %q deleted", g.ID, id)
			}
		})
	}
	for _, tc := range []struct{ oid, id string }{{"T123", "."}, {"T123", ".."}, {"T123", ""}, {"..", "x"}, {"", "x"}} {
		t.Run("refused "+tc.oid+"/"+tc.id, func(t *testing.T) {
			before := len(fake.Requests())
			_, meta, err := c.DeleteClientGrant(context.Background(), caller(fake), tc.oid, tc.id)
			if !errors.Is(err, upstream.ErrInvalidArgument) || meta.Sent {
				t.Errorf("got %v, sent %v; want ErrInvalidArgument, nothing sent", err, meta.Sent)
			}
			if n := len(fake.Requests()) - before; n != 0 {
				t.Errorf("got %d requests; want none", n)
			}
		})
	}
}

// TestDeleteAnswers: any 2xx is a deletion. What cannot be read of the
// grant is left unset and named; the id falls back to the one called.
func TestDeleteAnswers(t *testing.T) {
	ts := func(s string) *time.Time {
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return &v
	}
	tests := []struct {
		name          string
		status        int
		body          string
		wantErr       error
		want          upstream.Grant
		wantUndecoded []string
	}{
		{"204", 204, ``, nil, upstream.Grant{ID: "g"}, nil},
		{"201", 201, `{"id":"g","client_id":"c","type":"password"}`, nil, upstream.Grant{ID: "g", ClientID: "c", Type: "password"}, nil},
		{"not json", 200, `<html>deleted</html>`, nil, upstream.Grant{ID: "g"}, []string{"body"}},
		{"empty", 200, ``, nil, upstream.Grant{ID: "g"}, []string{"body"}},
		{"null", 200, `null`, nil, upstream.Grant{ID: "g"}, []string{"body"}},
		{"array", 200, `[]`, nil, upstream.Grant{ID: "g"}, []string{"body"}},
		{"a bad timestamp", 200, `{"id":"g","client_id":"c","created_at":"yesterday","deleted_at":"2023-11-07T05:31:56Z"}`, nil,
			upstream.Grant{ID: "g", ClientID: "c", Type: "any", DeletedAt: ts("2023-11-07T05:31:56Z")}, []string{"created_at"}},
		{"an id of the wrong type", 200, `{"id":7,"client_id":"c"}`, nil, upstream.Grant{ID: "g", ClientID: "c", Type: "any"}, []string{"id"}},
		{"a type of the wrong type", 200, `{"id":"g","type":3}`, nil, upstream.Grant{ID: "g"}, []string{"type"}},
		{"oidc half readable", 200, `{"id":"g","oidc":{"client_id":"x","client_secret":1}}`, nil,
			upstream.Grant{ID: "g", Type: "any", OIDC: &upstream.OIDC{ClientID: "x"}}, []string{"oidc.client_secret"}},
		{"oidc not an object", 200, `{"id":"g","oidc":"x"}`, nil, upstream.Grant{ID: "g", Type: "any"}, []string{"oidc"}},
		{"no type is any", 200, `{"id":"g"}`, nil, upstream.Grant{ID: "g", Type: "any"}, nil},
		{"no id", 200, `{"client_id":"c"}`, nil, upstream.Grant{ID: "g", ClientID: "c", Type: "any"}, nil},
		{"unknown fields are ignored", 200, `{"id":"g","new_field":{"a":1},"type":"any"}`, nil, upstream.Grant{ID: "g", Type: "any"}, nil},
		{"+0000 and no zone", 200, `{"id":"g","created_at":"2023-11-07T05:31:56.123+0000","deleted_at":"2023-11-07T05:31:56"}`, nil,
			upstream.Grant{ID: "g", Type: "any", CreatedAt: ts("2023-11-07T05:31:56.123Z"), DeletedAt: ts("2023-11-07T05:31:56Z")}, nil},
		{"too large to read", 200, `{"id":"` + strings.Repeat("x", 2<<20) + `"}`, nil, upstream.Grant{ID: "g"}, []string{"body"}},
		{"a redirect is no deletion", 302, ``, upstream.ErrUnexpectedResponse, upstream.Grant{}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake := dinterotest.New(t)
			fake.HandleRaw(dinterotest.OpDelete, func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
			})
			c := newClient(t, fake.URL)
			g, meta, err := c.DeleteClientGrant(context.Background(), caller(fake), "T123", "g")
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("got %v; want %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if got, want := describe(g), describe(&tc.want); got != want {
				t.Errorf("got grant %s; want %s", got, want)
			}
			if !slices.Equal(meta.Undecoded, tc.wantUndecoded) || meta.Status != tc.status || meta.Attempts != 1 {
				t.Errorf("got meta %+v; want status %d, 1 attempt, undecoded %v", meta, tc.status, tc.wantUndecoded)
			}
		})
	}
}

// describe prints a grant with its timestamps as instants.
func describe(g *upstream.Grant) string {
	ts := func(t *time.Time) string {
		if t == nil {
			return "-"
		}
		return t.UTC().Format(time.RFC3339Nano)
	}
	o := "-"
	if g.OIDC != nil {
		o = g.OIDC.ClientID + "/" + g.OIDC.ClientSecret + "/" + g.OIDC.Authority
	}
	return strings.Join([]string{g.ID, g.ClientID, g.Audience, strings.Join(g.Scope, ","), g.Type, o, ts(g.CreatedAt), ts(g.UpdatedAt), ts(g.DeletedAt), g.CreatedBy, g.DeletedBy}, "|")
}

// TestDeleteShapesOfTheMock: the mock's 204, and its timestamps written
// with +0000 or without a zone, are deletions read whole.
func TestDeleteShapesOfTheMock(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    dinteromock.Behaviour
	}{
		{"204", dinteromock.Behaviour{DeleteNoContent: true}},
		{"+0000", dinteromock.Behaviour{TimeLayout: "2006-01-02T15:04:05.000-0700"}},
		{"no zone", dinteromock.Behaviour{TimeLayout: "2006-01-02T15:04:05.000000"}},
		{"a space and a long fraction", dinteromock.Behaviour{TimeLayout: "2006-01-02 15:04:05.000000000Z07:00"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := dinterotest.New(t)
			// Timestamps off RFC 3339 break Dintero's spec: its check is
			// skipped for them.
			fake.HandleRaw(dinterotest.OpDelete, fake.Mock.ServeHTTP)
			fake.Mock.SetBehaviour(tc.b)
			fake.AddGrants("T123", "g")
			c := newClient(t, fake.URL)
			g, meta, err := c.DeleteClientGrant(context.Background(), caller(fake), "T123", "g")
			if err != nil || g.ID != "g" || meta.Undecoded != nil {
				t.Fatalf("got %v, %+v, %v; want the grant read whole", g, meta, err)
			}
			if tc.b.DeleteNoContent {
				if g.CreatedAt != nil || g.Type != "" {
					t.Errorf("got %+v from a 204; want the id alone", g)
				}
				return
			}
			want := dinterotest.FullGrant("T123", "g").CreatedAt
			if g.CreatedAt == nil || !g.CreatedAt.Equal(want) || g.DeletedAt == nil || time.Since(*g.DeletedAt) > time.Minute || time.Since(*g.DeletedAt) < -time.Minute {
				t.Errorf("got created_at %v, deleted_at %v; want %v and about now", g.CreatedAt, g.DeletedAt, want)
			}
		})
	}
}
