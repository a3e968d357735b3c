package mask_test

import (
	"encoding/base64"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/dintero-facade/dintero-facade/internal/mask"
)

// TestForms: each form in which a server may echo a secret is masked, and
// the text around it is kept.
func TestForms(t *testing.T) {
	const secret = "s3cr3t/PW=1+long-enough" // 23 bytes: cut copies count
	b := []byte(secret)
	m := mask.New(secret, "ab", "")
	for _, tc := range []struct{ name, in, want string }{
		{"raw", "you sent " + secret + ".", "you sent [REDACTED]."},
		{"base64", "b " + base64.StdEncoding.EncodeToString(b), "b [REDACTED]"},
		{"base64 unpadded", "b " + base64.RawStdEncoding.EncodeToString(b), "b [REDACTED]"},
		{"base64url", "b " + base64.URLEncoding.EncodeToString(b), "b [REDACTED]"},
		{"base64url unpadded", "b " + base64.RawURLEncoding.EncodeToString(b), "b [REDACTED]"},
		{"query-escaped", "q=" + url.QueryEscape(secret), "q=[REDACTED]"},
		{"path-escaped", "/" + url.PathEscape(secret), "/[REDACTED]"},
		{"escaped twice", "q=" + url.QueryEscape(url.QueryEscape(secret)), "q=[REDACTED]"},
		{"lower-case hex", "q=" + strings.NewReplacer("%2F", "%2f", "%3D", "%3d", "%2B", "%2b").Replace(url.QueryEscape(secret)), "q=[REDACTED]"},
		{"another case", "S3CR3T/pw=1+LONG-ENOUGH!", "[REDACTED]!"},
		{"cut after 16 bytes", "got " + secret[:16] + " then", "got [REDACTED] then"},
		{"cut before 16 bytes: kept", "got " + secret[:15] + " then", "got " + secret[:15] + " then"},
		{"a short secret as a word", "code ab refused", "code [REDACTED] refused"},
		{"a short secret inside a word: kept", "absent", "absent"},
		{"a short secret twice in a word: kept", "abab", "abab"},
		{"any Authorization value", "header Basic Zm9vOmJhcg== echoed", "header Basic [REDACTED] echoed"},
		{"a bearer after a tab", "bearer\tabcdefgh", "bearer [REDACTED]"},
		{"a word after bearer: kept", "no Bearer token", "no Bearer token"},
		{"any JWT, cut after its payload", "tok eyJhbGciOi.eyJzdWIiOiJ4In0", "tok [REDACTED]"},
	} {
		if got := m.Text(tc.in); got != tc.want {
			t.Errorf("%s: Text(%q) = %q; want %q", tc.name, tc.in, got, tc.want)
		}
	}
	// A secret whose base64 holds + and /, which base64url spells - and _.
	odd := "\xfb\xef\xbe-odd-secret"
	std, url64 := base64.StdEncoding.EncodeToString([]byte(odd)), base64.URLEncoding.EncodeToString([]byte(odd))
	if !strings.ContainsAny(std, "+/") {
		t.Fatalf("%q: the test secret's base64 %s has neither + nor /", odd, std)
	}
	mo := mask.New(odd)
	for _, form := range []string{std, url64, strings.TrimRight(url64, "=")} {
		if got := mo.Text("x " + form); got != "x [REDACTED]" {
			t.Errorf("Text(%q) = %q; want it masked", "x "+form, got)
		}
	}
	j := m.JSON(map[string]any{"field " + secret: []any{"v " + secret, 1.5, true, nil}})
	if got := j.(map[string]any)["field [REDACTED]"].([]any); got[0] != "v [REDACTED]" || got[1] != 1.5 || got[2] != true || got[3] != nil {
		t.Errorf("JSON: got %v; want the strings masked, keys too, the rest kept", j)
	}
}

// TestJWTBesideASecretOfTheSameIssuer: a JWT in the text that begins as
// a secret JWT does (the same issuer's header: a caller's access token and
// an id_token) is masked whole, not cut where the secret's prefix ends,
// which would leave its payload and signature behind for anyone to put
// the issuer's well-known header back on.
func TestJWTBesideASecretOfTheSameIssuer(t *testing.T) {
	const header = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIiwidHlwIjoiSldUIn0"
	access := header + ".eyJzdWIiOiJjbGllbnQiLCJzY29wZSI6ImFkbWluIn0.c2lnbmF0dXJlLW9mLXRoZS1hY2Nlc3MtdG9rZW4"
	idToken := header + ".eyJzdWIiOiJ1c2VyLTQyIiwiZW1haWwiOiJ1c2VyQGV4YW1wbGUuY29tIn0.c2lnbmF0dXJlLW9mLXRoZS1pZC10b2tlbg"
	m := mask.New(access)
	for _, in := range []string{"token " + access + " and " + idToken, "and " + idToken} {
		got := m.Text(in)
		_, payload, _ := strings.Cut(idToken, ".")
		if strings.Contains(got, payload[:20]) || strings.Contains(got, "c2lnbmF0dXJl") {
			t.Errorf("Text(%q) = %q; want every JWT masked whole", in, got)
		}
	}
	// The same of an opaque token after Bearer that begins as the
	// secret does.
	mo := mask.New("opaque-0123456789-mine")
	if got := mo.Text("got Bearer opaque-0123456789-theirs-77"); got != "got Bearer [REDACTED]" {
		t.Errorf("got %q; want the other bearer masked whole", got)
	}
}

// TestValue: a secret printed whole says only whether it was set.
func TestValue(t *testing.T) {
	if got := mask.Value("very-secret"); got != mask.Redacted {
		t.Errorf("Value of a secret = %q; want %q", got, mask.Redacted)
	}
	if got := mask.Value(""); got != "" {
		t.Errorf("Value of nothing = %q; want empty", got)
	}
}

// FuzzMask checks that no secret of at least 4 bytes survives masking in
// any of the forms a server may echo it.
func FuzzMask(f *testing.F) {
	f.Add("s3cr3t/PW=1", "you sent s3cr3t/PW=1 and czNjcjN0L1BXPTE= and s3cr3t%2FPW%3D1")
	f.Add("abcd", "abcdabcd")
	f.Add("Basic Zm9vOmJhcg==", "header Basic Zm9vOmJhcg== echoed")
	f.Fuzz(func(t *testing.T, secret, text string) {
		if len(secret) < 4 {
			return
		}
		m := mask.New(secret)
		for _, form := range []string{secret, base64.StdEncoding.EncodeToString([]byte(secret)), base64.RawURLEncoding.EncodeToString([]byte(secret)), url.QueryEscape(secret)} {
			got := m.Text(text + form + text)
			if strings.Contains(got, form) && !strings.Contains(strings.ReplaceAll(text+form+text, form, ""), form) {
				t.Fatalf("Text(%q) = %q still holds %q", text+form+text, got, form)
			}
		}
	})
}

// TestCutFreesNoSecret: whatever the masked text and wherever the cut, Cut
// keeps a prefix of at most n bytes on a rune boundary in which the masker
// finds nothing more: a short secret, masked only as a word of its own,
// is not freed by taking away its neighbour. Every text of up to five
// runes over an alphabet of word and other runes, one and several bytes
// long, is cut at every length, under secrets that begin or end with
// either kind.
func TestCutFreesNoSecret(t *testing.T) {
	alphabet := []string{"1", "2", "-", " ", "é", "…"}
	secrets := [][]string{{"12"}, {"1"}, {"1-"}, {"-1"}, {"2é"}, {"…1"}, {"1", "2-"}}
	var texts []string
	var grow func(s string, runes int)
	grow = func(s string, runes int) {
		texts = append(texts, s)
		if runes == 5 {
			return
		}
		for _, a := range alphabet {
			grow(s+a, runes+1)
		}
	}
	grow("", 0)
	for _, ss := range secrets {
		m := mask.New(ss...)
		for _, text := range texts {
			masked := m.Text(text)
			for n := range len(masked) + 1 {
				got := mask.Cut(masked, n)
				switch {
				case len(got) > n || !strings.HasPrefix(masked, got) || !utf8.ValidString(got):
					t.Fatalf("Cut(%q, %d) = %q; want a prefix of at most %d bytes on a rune boundary", masked, n, got, n)
				case m.Text(got) != got:
					t.Fatalf("secrets %q: Cut(%q, %d) = %q frees a secret: %q", ss, masked, n, got, m.Text(got))
				}
			}
		}
	}
}

// TestCutKeeps: Cut drops no more than it must.
func TestCutKeeps(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"request failed because the code was wrong", 36, "request failed because the code was "},
		{strings.Repeat("x", 20), 10, strings.Repeat("x", 10)},
		{"3f9c2a7e-5b1d-4c8e-9f00-1234567890ab", 20, "3f9c2a7e-5b1d-4c8e-"},
		{"xxxx-1234567", 8, "xxxx-"},
		{"xxxx-1234567", 9, "xxxx-1234"},
		{"ab cd", 4, "ab "},
		{"ab cd", 3, "ab "},
		{"a1-2b", 4, "a1-"},
		{"xy abé", 5, "xy "},
		{"short", 10, "short"},
	} {
		if got := mask.Cut(tc.in, tc.n); got != tc.want {
			t.Errorf("Cut(%q, %d) = %q; want %q", tc.in, tc.n, got, tc.want)
		}
	}
}
