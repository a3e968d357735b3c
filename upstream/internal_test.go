package upstream

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	base, max := 100*time.Millisecond, 2*time.Second
	for n, ceiling := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 3: 400 * time.Millisecond, 5: 1600 * time.Millisecond, 6: 2 * time.Second, 60: 2 * time.Second} {
		var seen time.Duration
		for range 2000 {
			d := backoff(base, max, n)
			if d < 0 || d > ceiling {
				t.Fatalf("backoff(%d) = %v; want within [0, %v]", n, d, ceiling)
			}
			seen = max2(seen, d)
		}
		// Full jitter spreads over the whole range.
		if seen < ceiling/2 {
			t.Errorf("backoff(%d): largest of 2000 draws %v; want near %v", n, seen, ceiling)
		}
	}
}

func max2(a, b time.Duration) time.Duration {
	if a > b {
		return a
	}
	return b
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 26, 6, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"-5", 0},
		{"7", 7 * time.Second},
		{"99999999999999", 365 * 24 * time.Hour},
		{"999999999999999999999", 365 * 24 * time.Hour},
		{"-999999999999999999999", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
		{"soon", 0},
		{"1.5", 0},
	}
	for _, tc := range tests {
		if got := parseRetryAfter(tc.in, now); got != tc.want {
			t.Errorf("parseRetryAfter(%q) = %v; want %v", tc.in, got, tc.want)
		}
	}
}

func FuzzDecodeError(f *testing.F) {
	for _, s := range []string{
		`{"error":{"code":"NOT_FOUND","message":"m","errors":[{"a":1}]}}`,
		`{"error":null}`, `{"error":"x"}`, `<html>`, ``, `{"error":{"message":`, `[]`, `{"error":{"errors":"no"}}`,
	} {
		f.Add(404, s, "3")
	}
	f.Fuzz(func(t *testing.T, status int, body, retryAfter string) {
		h := http.Header{}
		h.Set("Retry-After", retryAfter)
		e := decodeError(status, h, []byte(body), time.Now())
		if e == nil || e.StatusCode != status || e.Reason != nil || e.RetryAfter < 0 {
			t.Fatalf("decodeError(%d, %q) = %+v", status, body, e)
		}
		_ = e.Error()
	})
}

func FuzzDecodeGrant(f *testing.F) {
	f.Add(`{"id":"g","client_id":"c","audience":"a","scope":["s"],"type":"any","oidc":{"client_id":"x","client_secret":"SECRET","authority":"u"},"created_at":"2024-01-02T03:04:05.123+02:00"}`)
	f.Add(`{"id":7}`)
	f.Add(`null`)
	f.Add(`{"created_at":"SECRETSTAMP"}`)
	f.Add(`{"oidc":{"client_secret":1}}`)
	f.Fuzz(func(t *testing.T, body string) {
		g, err := DecodeGrant([]byte(body))
		if (g == nil) == (err == nil) {
			t.Fatalf("DecodeGrant(%q) = %v, %v; want exactly one", body, g, err)
		}
		if err != nil && strings.Contains(body, "SECRET") && strings.Contains(err.Error(), "SECRET") {
			t.Fatalf("error %q quotes the body", err)
		}
	})
}

func FuzzParseLocation(f *testing.F) {
	f.Add("https://a.example/cb?id_token=SECRET&state=s")
	f.Add("https://a.example/cb?id_token=%zzSECRET")
	f.Add("://SECRET")
	f.Add("")
	f.Add("/relative?id_token=a&id_token=b")
	f.Fuzz(func(t *testing.T, loc string) {
		r, err := ParseLocation(loc)
		if (r == nil) == (err == nil) {
			t.Fatalf("ParseLocation(%q) = %v, %v; want exactly one", loc, r, err)
		}
		if err != nil {
			if strings.Contains(loc, "SECRET") && strings.Contains(err.Error(), "SECRET") {
				t.Fatalf("error %q quotes the location", err)
			}
			return
		}
		if r.Location != loc {
			t.Fatalf("Location %q; want %q", r.Location, loc)
		}
		if _, ok := r.Query["id_token"]; ok {
			t.Fatalf("id_token repeated in %v", r.Query)
		}
	})
}

// FuzzDeletePath checks the invariant of path building: the URL built for
// DeleteClientGrant has exactly the expected segments, each the caller's
// value, and no query or fragment; or the ids are refused.
func FuzzDeletePath(f *testing.F) {
	for _, s := range [][2]string{{"T123", "g"}, {"T123", "../token"}, {"..", "x"}, {"T1", "a/b?c=d#e"}, {"P00000000", "%2e%2e"}, {"", ""}, {"T1", "."}, {"x y", "\x00"}} {
		f.Add(s[0], s[1])
	}
	c, err := New(Options{BaseURL: "https://api.dintero.com/v1"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, oid, id string) {
		p, err := c.path("accounts", oid, "auth", "client-grants", id)
		if err != nil {
			if !errors.Is(err, ErrInvalidArgument) {
				t.Fatalf("path(%q, %q): %v; want ErrInvalidArgument", oid, id, err)
			}
			for _, s := range []string{oid, id} {
				if s == "" || s == "." || s == ".." {
					return
				}
			}
			t.Fatalf("path(%q, %q) refused: %v", oid, id, err)
		}
		u, err := url.Parse(c.base + p)
		if err != nil {
			t.Fatalf("path(%q, %q) = %q does not parse: %v", oid, id, p, err)
		}
		if u.RawQuery != "" || u.Fragment != "" || u.Host != "api.dintero.com" {
			t.Fatalf("path(%q, %q) = %q has a query, fragment or other host", oid, id, p)
		}
		segs := strings.Split(u.EscapedPath(), "/")
		want := []string{"", "v1", "accounts", oid, "auth", "client-grants", id}
		if len(segs) != len(want) {
			t.Fatalf("path(%q, %q) = %q has %d segments; want %d", oid, id, u.EscapedPath(), len(segs), len(want))
		}
		for i, s := range segs {
			got, err := url.PathUnescape(s)
			if err != nil || got != want[i] {
				t.Fatalf("segment %d of %q is %q (%v); want %q", i, u.EscapedPath(), got, err, want[i])
			}
		}
	})
}
