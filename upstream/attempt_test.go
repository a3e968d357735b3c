package upstream_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/dintero-facade/dintero-facade/internal/dinteromock"
	"github.com/dintero-facade/dintero-facade/internal/dinterotest"
	"github.com/dintero-facade/dintero-facade/upstream"
)

// TestWhatTheTransportHands: the client sends each attempt straight to its
// transport, not through an http.Client, so it takes what a transport may
// hand back as http.Client did: no answer and no error, an answer without a
// body or without the body it announced, an answer with an error, plain
// HTTP where TLS was expected, an error text quoting the request's secrets.
// And the headers it sends stay its own when a transport adds to every one
// of them.
func TestWhatTheTransportHands(t *testing.T) {
	t.Run("neither an answer nor an error", func(t *testing.T) {
		c := newClient(t, "https://dintero.test/v1", func(o *upstream.Options) {
			o.Transport = roundTripFunc(func(*http.Request) (*http.Response, error) { return nil, nil })
		})
		_, meta, err := c.DeleteClientGrant(context.Background(), upstream.Call{Authorization: "Bearer t"}, "T12345678", "g")
		if !errors.Is(err, upstream.ErrTransport) || meta.Attempts == 0 {
			t.Errorf("got %v after %d attempts; want ErrTransport", err, meta.Attempts)
		}
	})
	t.Run("an answer without a body", func(t *testing.T) {
		c := newClient(t, "https://dintero.test/v1", func(o *upstream.Options) {
			o.Transport = roundTripFunc(func(*http.Request) (*http.Response, error) {
				return &http.Response{StatusCode: http.StatusNoContent, Header: http.Header{}}, nil
			})
		})
		g, _, err := c.DeleteClientGrant(context.Background(), upstream.Call{Authorization: "Bearer t"}, "T12345678", "g")
		if err != nil || g.ID != "g" {
			t.Errorf("got %+v, %v; want grant g", g, err)
		}
	})
	t.Run("an announced body missing", func(t *testing.T) {
		c := newClient(t, "https://dintero.test/v1", func(o *upstream.Options) {
			o.Transport = roundTripFunc(func(*http.Request) (*http.Response, error) {
				return &http.Response{StatusCode: http.StatusOK, Header: http.Header{}, ContentLength: 541}, nil
			})
		})
		if _, _, err := c.DeleteClientGrant(context.Background(), upstream.Call{Authorization: "Bearer t"}, "T12345678", "g"); !errors.Is(err, upstream.ErrTransport) {
			t.Errorf("got %v; want ErrTransport: 541 bytes were announced and none came", err)
		}
	})
	t.Run("an answer and an error", func(t *testing.T) {
		body := &closeRecorder{Reader: strings.NewReader("{}")}
		c := newClient(t, "https://dintero.test/v1", func(o *upstream.Options) {
			o.Transport = roundTripFunc(func(*http.Request) (*http.Response, error) {
				return &http.Response{StatusCode: http.StatusOK, Header: http.Header{}, Body: body}, errors.New("both")
			})
		})
		if _, _, err := c.DeleteClientGrant(context.Background(), upstream.Call{Authorization: "Bearer t"}, "T12345678", "g"); !errors.Is(err, upstream.ErrTransport) {
			t.Errorf("got %v; want ErrTransport", err)
		}
		if body.closed.Load() == 0 {
			t.Error("the body that came with an error was not closed")
		}
	})
	t.Run("plain HTTP where TLS was expected", func(t *testing.T) {
		fake := dinterotest.New(t)
		c := newClient(t, "https://"+strings.TrimPrefix(fake.URL, "http://"))
		_, _, err := c.DeleteClientGrant(context.Background(), caller(fake), "T12345678", "g")
		if !errors.Is(err, upstream.ErrTransport) || !strings.Contains(err.Error(), http.ErrSchemeMismatch.Error()) {
			t.Errorf("got %v; want ErrTransport saying %q", err, http.ErrSchemeMismatch)
		}
	})
	t.Run("a transport's error quoting the URL", func(t *testing.T) {
		fake := dinterotest.New(t)
		c := newClient(t, fake.URL, func(o *upstream.Options) {
			base := o.Transport
			o.Transport = roundTripFunc(func(r *http.Request) (*http.Response, error) {
				if r.Method == http.MethodPost {
					return nil, fmt.Errorf("wrapped: cannot send %s with %s", r.URL, r.Header.Get("Authorization"))
				}
				return base.RoundTrip(r)
			})
		})
		call := callerAt(fake, allParams.OID)
		_, _, err := c.Authorize(context.Background(), call, allParams)
		if !errors.Is(err, upstream.ErrTransport) {
			t.Fatalf("got %v; want ErrTransport", err)
		}
		for _, secret := range []string{allParams.VerificationCode, strings.TrimPrefix(call.Authorization, "Bearer ")} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error %q holds a secret", err)
			}
		}
	})
	// Each header is added to, in a DELETE with the caller's token and in
	// the token fetch with the facade's credentials; every value the
	// facade set must stay.
	fake := dinterotest.New(t, dinterotest.Options{Mock: dinteromock.Options{Clients: twoClients("secret-b-0002")}})
	fake.AddGrants("T111", "g")
	var seen []http.Header
	c := newClient(t, fake.URL, func(o *upstream.Options) {
		base := o.Transport
		o.Transport = roundTripFunc(func(r *http.Request) (*http.Response, error) {
			want := r.Header.Clone()
			for _, k := range slices.Sorted(maps.Keys(want)) {
				r.Header.Add(k, "added-by-the-transport")
			}
			for k, v := range want {
				if got := r.Header[k]; len(got) != len(v)+1 || !slices.Equal(got[:len(v)], v) {
					t.Errorf("%s %s: %s became %q after adding to every header; want %q first", r.Method, r.URL.Path, k, got, v)
				}
			}
			seen = append(seen, want)
			for k, v := range want {
				r.Header[k] = v
			}
			return base.RoundTrip(r)
		})
		o.Credentials = twoCredentials()[:1]
	})
	if _, _, err := c.DeleteClientGrant(context.Background(), upstream.Call{Authorization: fake.Bearer("T111"), RequestID: "req-42"}, "T111", "g"); err != nil {
		t.Fatal(err)
	}
	fake.AddGrants("T111", "g2")
	if _, _, err := c.DeleteClientGrant(context.Background(), facade(c, "T111"), "T111", "g2"); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, h := range seen {
		for k := range h {
			names = append(names, k)
		}
	}
	for _, k := range []string{"Accept", "User-Agent", "Content-Type", "Authorization", "X-Request-Id"} {
		if !slices.Contains(names, k) {
			t.Errorf("no request carried %s; the test must add to every header the facade sets", k)
		}
	}
}

// closeRecorder is a body that counts its closes.
type closeRecorder struct {
	io.Reader
	closed atomic.Int32
}

func (c *closeRecorder) Close() error { c.closed.Add(1); return nil }
