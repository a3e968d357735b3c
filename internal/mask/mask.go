// Package mask hides secrets in text that a server wrote: Dintero's error
// messages, codes and details, and the texts of transport errors, which may
// echo what the request carried.
package mask

import (
	"encoding/base64"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Redacted stands where a secret was.
const Redacted = "[REDACTED]"

// Value hides a secret whole, telling only whether it was set: Redacted,
// or "" for none. It is for printing a configuration or a value that holds
// a secret.
func Value(s string) string {
	if s == "" {
		return ""
	}
	return Redacted
}

// credentialPattern finds an Authorization value echoed in text, whatever
// its secret: the scheme and the credential after it.
var credentialPattern = regexp.MustCompile(`(?i)\b(basic|bearer)\s+[A-Za-z0-9._~+/=-]{6,}`)

// jwtPattern finds a JWT (a token, an id_token) echoed in text, whole or
// cut after its payload.
var jwtPattern = regexp.MustCompile(`eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}(?:\.[A-Za-z0-9_-]*)?`)

// Masker hides secrets in text: each secret in every form a server may
// echo it (raw; base64 in both alphabets, with and without padding;
// URL-escaped once or twice, with upper- or lower-case hex), any
// Authorization value, and any JWT. A secret shorter than 4 bytes is
// masked where it stands as a word of its own: anywhere, it would garble
// the text. Its zero value masks Authorization values and JWTs only.
type Masker struct {
	forms, words []string
	// long are the secrets of at least minPrefix bytes: a cut copy of
	// one, its first minPrefix bytes or more, is masked too, and so is a
	// copy in other ASCII letter case.
	long []string
}

// minPrefix is the shortest cut copy of a secret that is masked.
const minPrefix = 16

// minForm is the shortest secret masked in every form, wherever it
// stands; a shorter one is masked only as a word of its own.
const minForm = 4

// New returns a Masker of secrets; empty ones are ignored.
func New(secrets ...string) Masker {
	var forms, words, long []string
	for _, s := range secrets {
		switch {
		case s == "":
			continue
		case len(s) < minForm:
			words = append(words, s)
			continue
		}
		if len(s) >= minPrefix {
			long = append(long, s)
		}
		b := []byte(s)
		for _, esc := range []string{url.QueryEscape(s), url.PathEscape(s), url.QueryEscape(url.QueryEscape(s))} {
			forms = append(forms, esc, lowerHex(esc))
		}
		forms = append(forms, s,
			base64.StdEncoding.EncodeToString(b), base64.RawStdEncoding.EncodeToString(b),
			base64.URLEncoding.EncodeToString(b), base64.RawURLEncoding.EncodeToString(b))
	}
	// Longest first, so that a form inside another is not masked half.
	slices.SortFunc(forms, func(a, b string) int { return len(b) - len(a) })
	return Masker{forms: slices.Compact(forms), words: words, long: long}
}

// Text returns s with every secret of m, every Authorization value and
// every JWT replaced by Redacted. JWTs and Authorization values go first,
// each whole: one that begins as a secret does (the same issuer's JWT
// header, a token of the same prefix) would otherwise lose that prefix to
// the secret's mask, no longer read as what it is, and leave the rest.
func (m Masker) Text(s string) string {
	s = jwtPattern.ReplaceAllString(s, Redacted)
	s = credentialPattern.ReplaceAllString(s, "$1 "+Redacted)
	for _, f := range m.forms {
		if strings.Contains(s, f) {
			s = strings.ReplaceAll(s, f, Redacted)
		}
	}
	for _, w := range m.words {
		if strings.Contains(s, w) {
			s = maskWord(s, w)
		}
	}
	for _, l := range m.long {
		s = maskFolded(s, l)
		s = maskPrefixes(s, l)
	}
	return s
}

// JSON masks every string, keys included, of a decoded JSON value
// (map[string]any, []any, string, float64, bool or nil). Arrays are masked
// in place.
func (m Masker) JSON(v any) any {
	switch v := v.(type) {
	case string:
		return m.Text(v)
	case []any:
		for i := range v {
			v[i] = m.JSON(v[i])
		}
		return v
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[m.Text(k)] = m.JSON(x)
		}
		return out
	}
	return v
}

// Cut shortens text that Text masked to at most n bytes, on a rune
// boundary, without freeing a secret. A short secret is masked only where
// it stands as a word, so a cut between two letters or digits could free
// one that ended there: when the cut splits a run of letters and digits
// and keeps fewer than minForm bytes of it, it drops them too.
func Cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	if next, _ := utf8.DecodeRuneInString(s[n:]); !isWordRune(next) {
		return s[:n]
	}
	start := n
	for start > 0 && n-start < minForm {
		r, size := utf8.DecodeLastRuneInString(s[:start])
		if !isWordRune(r) {
			break
		}
		start -= size
	}
	if n-start < minForm {
		n = start
	}
	return s[:n]
}

// maskWord masks w in s wherever it stands as a word: no letter or digit
// touches a letter or digit at either of its ends (another would make it
// part of a longer word).
func maskWord(s, w string) string {
	first, _ := utf8.DecodeRuneInString(w)
	last, _ := utf8.DecodeLastRuneInString(w)
	var b strings.Builder
	for from := 0; ; {
		i := strings.Index(s[from:], w)
		if i < 0 {
			b.WriteString(s[from:])
			return b.String()
		}
		i += from
		before, _ := utf8.DecodeLastRuneInString(s[:i])
		after, _ := utf8.DecodeRuneInString(s[i+len(w):])
		b.WriteString(s[from:i])
		if i > 0 && isWordRune(first) && isWordRune(before) || i+len(w) < len(s) && isWordRune(last) && isWordRune(after) {
			b.WriteString(w)
		} else {
			b.WriteString(Redacted)
		}
		from = i + len(w)
	}
}

// maskFolded masks every copy of secret in s that differs from it only in
// the case of ASCII letters. Only ASCII is folded, so that byte offsets
// hold whatever the bytes (a secret need not be UTF-8).
func maskFolded(s, secret string) string {
	low, lowSecret := asciiLower(s), asciiLower(secret)
	if !strings.Contains(low, lowSecret) {
		return s
	}
	var b strings.Builder
	for {
		i := strings.Index(low, lowSecret)
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		b.WriteString(Redacted)
		s, low = s[i+len(secret):], low[i+len(secret):]
	}
}

// asciiLower lower-cases the ASCII letters of s, leaving every other byte.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// maskPrefixes masks every copy of secret's first minPrefix bytes or
// more in s: a secret echoed cut.
func maskPrefixes(s, secret string) string {
	head := secret[:minPrefix]
	var b strings.Builder
	for {
		i := strings.Index(s, head)
		if i < 0 {
			if b.Len() == 0 {
				return s
			}
			b.WriteString(s)
			return b.String()
		}
		n := minPrefix
		for i+n < len(s) && n < len(secret) && s[i+n] == secret[n] {
			n++
		}
		b.WriteString(s[:i])
		b.WriteString(Redacted)
		s = s[i+n:]
	}
}

func isWordRune(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }

// lowerHex lower-cases the hex digits of s's percent escapes.
func lowerHex(s string) string {
	b := []byte(s)
	for i := 0; i+2 < len(b); i++ {
		if b[i] == '%' {
			b[i+1], b[i+2] = toLower(b[i+1]), toLower(b[i+2])
		}
	}
	return string(b)
}

func toLower(c byte) byte {
	if 'A' <= c && c <= 'F' {
		return c + 'a' - 'A'
	}
	return c
}
