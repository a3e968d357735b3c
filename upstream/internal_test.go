package upstream

import (
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/dintero-facade/dintero-facade/internal/mask"
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
	f.Add(`{"id":"g","id":"h"}`)
	f.Add(`{"created_at":"0000-01-01T00:00:00Z"}`)
	f.Fuzz(func(t *testing.T, body string) {
		g, undecoded := decodeGrant([]byte(body), "called-id")
		if g == nil {
			t.Fatalf("decodeGrant(%q) = nil; a 2xx is always a grant", body)
		}
		if g.ID == "" {
			t.Fatalf("decodeGrant(%q) has no id; want the called one at least", body)
		}
		for _, ts := range []*time.Time{g.CreatedAt, g.UpdatedAt, g.DeletedAt} {
			if ts != nil && (ts.UTC().Year() < 1 || ts.UTC().Year() > 9999) {
				t.Fatalf("decodeGrant(%q) has a timestamp %v a protobuf Timestamp cannot hold", body, ts)
			}
		}
		for _, u := range undecoded {
			if strings.Contains(u, "SECRET") {
				t.Fatalf("undecoded %q quotes the body", undecoded)
			}
		}
	})
}

func FuzzParseRedirect(f *testing.F) {
	f.Add("https://a.example/cb?id_token=SECRET&state=s")
	f.Add("https://a.example/cb#id_token=SECRET&access_token=SECRET2")
	f.Add("https://a.example/cb?id_token=%zzSECRET")
	f.Add("https://a.example/cb?error=access_denied&error_description=x")
	f.Add("://SECRET")
	f.Add("")
	f.Add("/relative?id_token=a&id_token=b")
	f.Fuzz(func(t *testing.T, loc string) {
		r, err := parseRedirect(loc)
		if r == nil && err == nil {
			t.Fatalf("parseRedirect(%q) = nil, nil; want a redirect or an error", loc)
		}
		if err != nil && strings.Contains(loc, "SECRET") && strings.Contains(err.Error(), "SECRET") {
			t.Fatalf("error %q quotes the location", err)
		}
		if r == nil {
			return
		}
		if r.Location != loc {
			t.Fatalf("Location %q; want %q", r.Location, loc)
		}
		for _, m := range []map[string]string{r.Query, r.Fragment} {
			if _, ok := m["id_token"]; ok {
				t.Fatalf("id_token repeated in %v", m)
			}
			if _, ok := m["access_token"]; ok {
				t.Fatalf("access_token repeated in %v", m)
			}
		}
	})
}

func TestParseTimestamp(t *testing.T) {
	want := time.Date(2023, 11, 7, 5, 31, 56, 123000000, time.UTC)
	for _, s := range []string{
		"2023-11-07T05:31:56.123Z",
		"2023-11-07T05:31:56.123+00:00",
		"2023-11-07T05:31:56.123+0000",
		"2023-11-07T05:31:56.123+00",
		"2023-11-07T07:31:56.123+02:00",
		"2023-11-07T07:31:56.123+0200",
		"2023-11-07T00:01:56.123-05:30",
		"2023-11-07T05:31:56.123",
		"2023-11-07 05:31:56.123Z",
		"2023-11-07t05:31:56.123z",
		"2023-11-07T05:31:56.123000000000000Z",
		"2023-11-07T05:31:56.1230Z",
		" 2023-11-07T05:31:56.123Z ",
	} {
		got, err := parseTimestamp(s)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseTimestamp(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	if got, err := parseTimestamp("2023-11-07T05:31:56Z"); err != nil || !got.Equal(want.Truncate(time.Second)) {
		t.Errorf("without a fraction: got %v, %v", got, err)
	}
	for s, want := range map[string]time.Time{
		"2016-12-31T23:59:60Z": time.Date(2017, 1, 1, 0, 0, 0, 0, time.UTC),
		// The shortest form a leap second takes: no zone, no fraction.
		"2016-12-31T23:59:60": time.Date(2017, 1, 1, 0, 0, 0, 0, time.UTC),
		// The ends of the range a protobuf Timestamp holds.
		"0001-01-01T00:00:00Z":     time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
		"9999-12-31T23:59:59Z":     time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC),
		"2023-11-07T05:31:56+2359": time.Date(2023, 11, 6, 5, 32, 56, 0, time.UTC),
	} {
		if got, err := parseTimestamp(s); err != nil || !got.Equal(want) {
			t.Errorf("parseTimestamp(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for _, s := range []string{"", "yesterday", "2023-11-07", "2023-13-07T05:31:56Z", "0000-01-01T00:00:00Z", "2023-11-07T05:31:56.123+2", "1699335116",
		"0001-01-01T00:30:00+01:00", "9999-12-31T23:59:59-01:00", "2023-11-07T05:31:56+24:00", "2023-11-07T05:31:56+2400", "2023-11-07T05:31:56-2400", "2023-11-07T05:31:61Z"} {
		if got, err := parseTimestamp(s); err == nil {
			t.Errorf("parseTimestamp(%q) = %v; want an error", s, got)
		}
	}
}

// FuzzDeletePath checks the invariant of path building: the URL built for
// DeleteClientGrant has exactly the expected segments, each the caller's
// value, and no query or fragment; or the ids are refused.
func FuzzDeletePath(f *testing.F) {
	for _, s := range [][2]string{{"T123", "g"}, {"T123", "../token"}, {"..", "x"}, {"T1", "a/b?c=d#e"}, {"P00000000", "%2e%2e"}, {"", ""}, {"T1", "."}, {"x y", "\x00"}} {
		f.Add(s[0], s[1])
	}
	const base = "https://api.dintero.com/v1"
	f.Fuzz(func(t *testing.T, oid, id string) {
		p, err := OpDeleteClientGrant.urlPath(oid, id)
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
		u, err := url.Parse(base + p)
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

// BenchmarkDecodeGrant is the JSON decoding of Dintero's grant alone.
func BenchmarkDecodeGrant(b *testing.B) {
	body := []byte(`{"id":"3d5c2f3a-6a1e-4e55-9d2f-2f1b8f0c9a77","client_id":"0d5f2f0e-2d0a-4b8e-8b8a-5e3f3c1f9e21","audience":"https://api.dintero.com/v1/accounts/T12345678","scope":["admin:accounts","write:checkout","read:checkout"],"type":"authorization_code","oidc":{"client_id":"oidc-client-7d1f","client_secret":"oidc-secret-not-a-real-one","authority":"https://identityserver.example.com/access"},"created_at":"2024-01-02T03:04:05.123456+02:00","updated_at":"2024-01-02T03:04:05Z","deleted_at":"2026-11-26T06:00:00.5Z","created_by":"user-creator-0001","deleted_by":"client-deleter-0001"}`)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, undecoded := decodeGrant(body, "x"); undecoded != nil {
			b.Fatal(undecoded)
		}
	}
}

// TestBreakerDefaults: with no options, the breaker opens at the tenth
// failure in a row and not before, and on half of at least twenty calls
// and not on fewer calls or a smaller share.
func TestBreakerDefaults(t *testing.T) {
	fail := func() (*response, error) { return nil, errServerError }
	ok := func() (*response, error) { return &response{status: 200}, nil }
	run := func(calls ...func() (*response, error)) string {
		cb := newBreaker("test", BreakerOptions{}, func(string) {})
		for _, c := range calls {
			_, _ = cb.Execute(c)
		}
		return cb.State().String()
	}
	repeat := func(n int, c func() (*response, error)) []func() (*response, error) {
		out := make([]func() (*response, error), n)
		for i := range out {
			out[i] = c
		}
		return out
	}
	// alternating gives n calls, every other one failing, so no run of
	// failures builds up.
	alternating := func(n int) []func() (*response, error) {
		out := make([]func() (*response, error), n)
		for i := range out {
			out[i] = ok
			if i%2 == 1 {
				out[i] = fail
			}
		}
		return out
	}
	for _, tc := range []struct {
		name  string
		calls []func() (*response, error)
		want  string
	}{
		{"9 failures in a row", repeat(9, fail), "closed"},
		{"10 failures in a row", repeat(10, fail), "open"},
		{"10 of 19 calls failed", append(alternating(18), fail), "closed"},
		{"10 of 20 calls failed", alternating(20), "open"},
		{"9 of 20 calls failed", append(alternating(18), ok, ok), "closed"},
	} {
		if got := run(tc.calls...); got != tc.want {
			t.Errorf("%s: got %s; want %s", tc.name, got, tc.want)
		}
	}
}

// TestDecodeGrantNulls: a null or absent timestamp or oidc is none, not a
// part that failed to decode, and a present one is read, whichever the
// others are.
func TestDecodeGrantNulls(t *testing.T) {
	g, undecoded := decodeGrant([]byte(`{"id":"g","created_at":null,"oidc":null,"deleted_at":"2023-11-07T05:31:56Z"}`), "x")
	if len(undecoded) != 0 || g.CreatedAt != nil || g.UpdatedAt != nil || g.OIDC != nil || g.DeletedAt == nil || g.DeletedAt.Unix() != 1699335116 {
		t.Errorf("decodeGrant = %+v, undecoded %v; want only deleted_at, nothing undecoded", g, undecoded)
	}
	g, undecoded = decodeGrant([]byte(`{"id":"g","updated_at":"2023-11-07T05:31:56Z","oidc":{"client_id":"c","client_secret":"s","authority":"a"}}`), "x")
	if len(undecoded) != 0 || g.CreatedAt != nil || g.UpdatedAt == nil || g.DeletedAt != nil || g.OIDC == nil || *g.OIDC != (OIDC{ClientID: "c", ClientSecret: "s", Authority: "a"}) {
		t.Errorf("decodeGrant = %+v, undecoded %v; want updated_at and the oidc", g, undecoded)
	}
}

// TestMayHoldMissesNothing: requestID skips the masker only when mayHold
// says it would find nothing; every form the masker masks, of secrets of
// every kind, embedded in an id, is seen by mayHold.
func TestMayHoldMissesNothing(t *testing.T) {
	const jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
	// "~~~~~~" has nothing to escape, and a base64 ("fn5+fn5+") other
	// than its base64url ("fn5-fn5-").
	secrets := []string{"123", "~~~~~~", "VC-SECRET/9731+x", "vc-abcdef1234567890XYZ", "s\xfb\xff?>~", "opaque-Caller-Token_42-and-more", "Bearer " + jwt, jwt, "Basic " + base64.StdEncoding.EncodeToString([]byte("client:s3cr3t"))}
	for _, s := range secrets {
		var ids []string
		forms := []string{s, strings.ToUpper(s), strings.ToLower(s), url.QueryEscape(s), url.PathEscape(s), url.QueryEscape(url.QueryEscape(s)), strings.ToLower(url.QueryEscape(s)),
			base64.StdEncoding.EncodeToString([]byte(s)), base64.RawStdEncoding.EncodeToString([]byte(s)), base64.URLEncoding.EncodeToString([]byte(s)), base64.RawURLEncoding.EncodeToString([]byte(s))}
		if len(s) > 16 {
			forms = append(forms, s[:16], s[:len(s)-1])
		}
		for _, f := range forms {
			ids = append(ids, f, "id-"+f+"-x", "x"+f, f+"y")
		}
		ids = append(ids, "3f9c2a7e-5b1d-4c8e-9f00-1234567890ab", "req-123-x", "eyJ", "id-eyJhbGciOiJub25lIn0.eyJzdWIiOiJ5In0")
		// Each secret alone: one that always takes the masker would hide
		// what mayHold misses of another.
		m := mask.New(s)
		for _, id := range ids {
			if m.Text(id) != id && !mayHold(id, []string{s}) {
				t.Errorf("mayHold(%q, %q) = false; the masker masks it: %q", id, s, m.Text(id))
			}
		}
	}
	// An id that is too long is cut, masker or not.
	if got := requestID(http.Header{"Request-Id": {strings.Repeat("x", 300)}}, "123456"); got != strings.Repeat("x", maxRequestIDLen) {
		t.Errorf("a 300-byte id came back as %d bytes; want %d", len(got), maxRequestIDLen)
	}
	// A secret with bytes to escape always takes the masker; these not.
	if mayHold("3f9c2a7e-5b1d-4c8e-9f00-0987654321ab", []string{"123456", "vc-abcdef1234567890XYZ", "Bearer " + jwt, jwt}) {
		t.Error("mayHold of an id holding no secret = true; want the fast path")
	}
}

// TestRequestIDCutFreesNoCode: a short secret is masked only as a word of
// its own, so an id that holds it inside a longer word must not show it
// once the cut takes the rest of that word away.
func TestRequestIDCutFreesNoCode(t *testing.T) {
	for _, tc := range []struct {
		name, id string
		secrets  []string
	}{
		{"a code cut out of its word", strings.Repeat("x", maxRequestIDLen-4) + "-123" + "4567", []string{"123"}},
		{"a code cut out of its word, after an escape", strings.Repeat("x", maxRequestIDLen-5) + "\t" + "-123" + "4567", []string{"123"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := requestID(http.Header{"Request-Id": {tc.id}}, tc.secrets...)
			if len(got) > maxRequestIDLen {
				t.Errorf("got %d bytes; want at most %d", len(got), maxRequestIDLen)
			}
			if again := mask.New(tc.secrets...).Text(got); again != got {
				t.Errorf("got request id %q; the masker still finds a secret in it: %q", got, again)
			}
		})
	}
}
