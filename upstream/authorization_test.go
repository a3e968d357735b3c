package upstream_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/dintero-facade/dintero-facade/internal/dinterotest"
	"github.com/dintero-facade/dintero-facade/upstream"
)

// TestBadAuthorizationRefused: an authorization that is not "Bearer
// <token>" (RFC 7235's scheme in any case, one token68) is refused before
// anything is sent: an unset $TOKEN would otherwise spend a verification
// code on Dintero's refusal. A good one's token is passed as it came,
// after the scheme as RFC 6750 spells it.
func TestBadAuthorizationRefused(t *testing.T) {
	for _, auth := range []string{"Bearer ", "Bearer", "Bearer  ", " ", "\t", "Bearer\ttoken-1234", "Basic dXNlcjpwdw==", "Bearer a b", "Bearer tok;x", "Bearer =abc", "Token abc", "Bearer tok\r\n"} {
		fake := dinterotest.New(t)
		c := newClient(t, fake.URL)
		call := upstream.Call{Authorization: auth}
		_, meta, err := c.Authorize(context.Background(), call, allParams)
		if !errors.Is(err, upstream.ErrBadAuthorization) || meta.Sent {
			t.Errorf("Authorize with %q: got %v, sent %v; want ErrBadAuthorization, not sent", auth, err, meta.Sent)
		}
		if _, meta, err = c.DeleteClientGrant(context.Background(), call, "T123", "g"); !errors.Is(err, upstream.ErrBadAuthorization) || meta.Sent {
			t.Errorf("DELETE with %q: got %v, sent %v; want ErrBadAuthorization, not sent", auth, err, meta.Sent)
		}
		if n := len(fake.Requests()); n != 0 {
			t.Errorf("%q: %d requests reached Dintero; want none", auth, n)
		}
	}
	fake := dinterotest.New(t)
	fake.AddGrants("T123", "g1", "g2", "g3")
	tok := strings.TrimPrefix(fake.Bearer("T123"), "Bearer ")
	for i, auth := range []string{"Bearer " + tok, "bearer " + tok, "BEARER  " + tok} {
		c := newClient(t, fake.URL)
		id := []string{"g1", "g2", "g3"}[i]
		if _, _, err := c.DeleteClientGrant(context.Background(), upstream.Call{Authorization: auth}, "T123", id); err != nil {
			t.Errorf("%q: %v", auth[:9], err)
		}
		if got := fake.Requests()[i].Header.Get("Authorization"); got != "Bearer "+tok {
			t.Errorf("sent %q; want the token as it came, after \"Bearer \"", got[:9])
		}
	}
}

// TestBearerMasking: a caller's token is masked wherever Dintero echoes
// it, whatever the case of its scheme and the spaces after it; any
// credential after "bearer" and any whitespace is masked; and Dintero's own
// words are left as they are where no secret stands.
func TestBearerMasking(t *testing.T) {
	const opaque = "OPAQUE-tok-8812"
	for _, tc := range []struct {
		auth, echoed, want string
	}{
		{"bearer   " + opaque, "token " + opaque + " expired", "token [REDACTED] expired"},
		{"BEARER " + opaque, "got " + opaque, "got [REDACTED]"},
		{"Bearer " + opaque, "header BeArEr\tsomething-else-77 refused", "header BeArEr [REDACTED] refused"},
		{"Bearer " + opaque, "no Bearer\n\tabcdef123456", "no Bearer [REDACTED]"},
		{"Bearer " + opaque, "no Bearer token", "no Bearer token"},
		{"Bearer " + opaque, "Bearer token expired; send a Bearer", "Bearer token expired; send a Bearer"},
	} {
		fake := dinterotest.New(t)
		fake.OpenKeys()
		fake.HandleRaw(dinterotest.OpDelete, dinterotest.Body(http.StatusUnauthorized, "application/json", []byte(`{"error":{"code":"UNAUTHORIZED","message":"`+strings.ReplaceAll(strings.ReplaceAll(tc.echoed, "\n", `\n`), "\t", `\t`)+`"}}`)))
		c := newClient(t, fake.URL)
		_, _, err := c.DeleteClientGrant(context.Background(), upstream.Call{Authorization: tc.auth}, "T123", "g")
		var e *upstream.Error
		if !errors.As(err, &e) || e.Message != tc.want {
			t.Errorf("Dintero said %q: got %v; want message %q", tc.echoed, err, tc.want)
		}
	}
}
