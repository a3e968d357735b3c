package upstream_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/dintero-facade/dintero-facade/internal/dinterotest"
	"github.com/dintero-facade/dintero-facade/internal/h2transport"
	"github.com/dintero-facade/dintero-facade/upstream"
)

// TestLostAnswer: Dintero deletes the grant and the answer is lost; the
// retry finds no grant. The 404 then carries the attempts whose outcome was
// unknown, so the caller can tell it from a grant that never existed.
func TestLostAnswer(t *testing.T) {
	tests := []struct {
		name          string
		fault         func(fake *dinterotest.Server) http.HandlerFunc
		headerTimeout time.Duration
		wantUncertain []string
	}{
		{"reset after Dintero acted", func(f *dinterotest.Server) http.HandlerFunc { return dinterotest.LoseAnswer(f.Mock) }, 0, []string{"no answer: connection failed"}},
		{"502 from a proxy after Dintero acted", func(f *dinterotest.Server) http.HandlerFunc {
			return dinterotest.ActThen(f.Mock, dinterotest.Body(502, "text/html", []byte("<html>bad gateway</html>")))
		}, 0, []string{"HTTP 502"}},
		{"503 after Dintero acted", func(f *dinterotest.Server) http.HandlerFunc {
			return dinterotest.ActThen(f.Mock, dinterotest.Status(503))
		}, 0, []string{"HTTP 503"}},
		{"504 after Dintero acted", func(f *dinterotest.Server) http.HandlerFunc {
			return dinterotest.ActThen(f.Mock, dinterotest.Status(504))
		}, 0, []string{"HTTP 504"}},
		{"no answer before the header timeout", func(f *dinterotest.Server) http.HandlerFunc {
			return dinterotest.ActThen(f.Mock, dinterotest.Stall)
		}, 100 * time.Millisecond, []string{"no answer: timeout"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake := dinterotest.New(t)
			fake.AddGrants("T123", "g")
			fake.HandleRaw(dinterotest.OpDelete, dinterotest.Times(1, tc.fault(fake), fake.Mock))
			c := newClient(t, fake.URL, func(o *upstream.Options) {
				if tc.headerTimeout > 0 {
					tr := h2transport.New(tc.headerTimeout)
					t.Cleanup(tr.CloseIdleConnections)
					o.Transport = tr
				}
			})
			_, meta, err := c.DeleteClientGrant(context.Background(), caller(fake), "T123", "g")
			var e *upstream.Error
			if !errors.As(err, &e) || e.StatusCode != 404 {
				t.Fatalf("got %v; want Dintero's 404 to the retry", err)
			}
			if !slices.Equal(e.Uncertain, tc.wantUncertain) || !slices.Equal(meta.Uncertain, tc.wantUncertain) || meta.Attempts != 2 {
				t.Errorf("got uncertain %q (meta %q) after %d attempts; want %q after 2", e.Uncertain, meta.Uncertain, meta.Attempts, tc.wantUncertain)
			}
			if fake.Mock.HasGrant("T123", "g") {
				t.Error("the grant is still there: the fault did not let Dintero act")
			}
		})
	}
	t.Run("a 404 after a 429 is a plain 404", func(t *testing.T) {
		fake := dinterotest.New(t)
		fake.HandleRaw(dinterotest.OpDelete, dinterotest.Times(1, dinterotest.RateLimited(nil), fake.Mock))
		c := newClient(t, fake.URL)
		_, meta, err := c.DeleteClientGrant(context.Background(), caller(fake), "T123", "never-was")
		var e *upstream.Error
		if !errors.As(err, &e) || e.StatusCode != 404 || e.Uncertain != nil || meta.Uncertain != nil || meta.Attempts != 2 {
			t.Errorf("got %v (uncertain %q, meta %+v); want a plain 404 after 2 attempts", err, e.Uncertain, meta)
		}
	})
	t.Run("a lost answer without Dintero acting, then success", func(t *testing.T) {
		fake := dinterotest.New(t)
		fake.AddGrants("T123", "g")
		fake.HandleRaw(dinterotest.OpDelete, dinterotest.Times(1, dinterotest.Reset, fake.Mock))
		c := newClient(t, fake.URL)
		g, meta, err := c.DeleteClientGrant(context.Background(), caller(fake), "T123", "g")
		if err != nil || g.ID != "g" || meta.Attempts != 2 {
			t.Errorf("got %v after %d attempts; want the grant after 2", err, meta.Attempts)
		}
	})
}

// TestBrokenBody: the status line and the headers are the answer; a body
// that breaks off after them loses only its detail. A 200 to DELETE is a
// deletion at once, with nothing to retry.
func TestBrokenBody(t *testing.T) {
	fake := dinterotest.New(t)
	fake.AddGrants("T123", "g")
	fake.HandleRaw(dinterotest.OpDelete, dinterotest.ActThen(fake.Mock, dinterotest.ResetMidBody(dinterotest.GrantJSON("g"))))
	c := newClient(t, fake.URL)
	g, meta, err := c.DeleteClientGrant(context.Background(), caller(fake), "T123", "g")
	if err != nil || g.ID != "g" || meta.Attempts != 1 || meta.Status != 200 || !slices.Equal(meta.Undecoded, []string{"body"}) || meta.Uncertain != nil {
		t.Errorf("got %+v, %+v, %v; want the deletion after 1 attempt, the body undecoded, nothing uncertain", g, meta, err)
	}
	if fake.Mock.HasGrant("T123", "g") {
		t.Error("the grant is still there")
	}
}
