package upstream

import (
	"bytes"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// grantJSON is Dintero's grant JSON, as the fast path decodes it.
type grantJSON struct {
	ID        string    `json:"id"`
	ClientID  string    `json:"client_id"`
	Audience  string    `json:"audience"`
	Scope     []string  `json:"scope"`
	Type      string    `json:"type"`
	OIDC      *oidcJSON `json:"oidc"`
	CreatedAt stamp     `json:"created_at"`
	UpdatedAt stamp     `json:"updated_at"`
	DeletedAt stamp     `json:"deleted_at"`
	CreatedBy string    `json:"created_by"`
	DeletedBy string    `json:"deleted_by"`
}

// stamp is a timestamp of Dintero's JSON, read with parseTimestamp; set
// is false for none (absent or null). It is a value, not a pointer, so
// that the decoder allocates nothing for it.
type stamp struct {
	t   time.Time
	set bool
}

// UnmarshalJSONFrom reads a JSON string as a timestamp, and null as none.
func (s *stamp) UnmarshalJSONFrom(d *jsontext.Decoder) error {
	tok, err := d.ReadToken()
	if err != nil {
		return err
	}
	if tok.Kind() == 'n' {
		*s = stamp{}
		return nil
	}
	if tok.Kind() != '"' {
		return fmt.Errorf("%w: a timestamp must be a JSON string", ErrDecode)
	}
	t, err := parseTimestamp(tok.String())
	if err != nil {
		return err
	}
	*s = stamp{t: t, set: true}
	return nil
}

// into puts the instant in *t and returns t, or nil for none.
func (s *stamp) into(t *time.Time) *time.Time {
	if !s.set {
		return nil
	}
	*t = s.t
	return t
}

// decodedGrant is a decoded grant with what it points to, its timestamps,
// and the JSON it was decoded from, so that decoding allocates them once.
type decodedGrant struct {
	g     Grant
	times [3]time.Time
	j     grantJSON
}

type oidcJSON struct {
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
	Authority    string `json:"authority"`
}

// decodeGrant reads Dintero's grant JSON, leniently: a 2xx to DELETE is a
// deletion whatever its body, so a part that cannot be read is left unset
// and named in undecoded ("body" when the body is not a JSON object), and
// the id falls back to the id the call named. Unknown fields are ignored,
// so that a field Dintero adds later changes nothing. A grant without a
// type is of Dintero's default type, any.
func decodeGrant(body []byte, id string) (g *Grant, undecoded []string) {
	if b := bytes.TrimSpace(body); len(b) == 0 || b[0] != '{' {
		return &Grant{ID: id}, []string{"body"}
	}
	d := new(decodedGrant)
	j := &d.j
	if err := json.Unmarshal(body, j); err != nil {
		// The fast path failed: read field by field.
		*j, undecoded = decodeGrantFields(body)
	}
	g = &d.g
	*g = Grant{
		ID: j.ID, ClientID: j.ClientID, Audience: j.Audience, Scope: j.Scope, Type: j.Type,
		CreatedAt: j.CreatedAt.into(&d.times[0]), UpdatedAt: j.UpdatedAt.into(&d.times[1]), DeletedAt: j.DeletedAt.into(&d.times[2]),
		CreatedBy: j.CreatedBy, DeletedBy: j.DeletedBy,
		// The same fields: the decoded configuration is the grant's.
		OIDC: (*OIDC)(j.OIDC),
	}
	if g.ID == "" {
		g.ID = id
	}
	if g.Type == "" && !slices.Contains(undecoded, "body") && !slices.Contains(undecoded, "type") {
		g.Type = "any"
	}
	return g, undecoded
}

// decodeGrantFields decodes each field of a grant on its own, and names
// those that do not decode.
func decodeGrantFields(body []byte) (j grantJSON, undecoded []string) {
	fields := objectFields(body)
	if fields == nil {
		return j, []string{"body"}
	}
	bad := func(name string) { undecoded = append(undecoded, name) }
	for name, target := range map[string]*string{
		"id": &j.ID, "client_id": &j.ClientID, "audience": &j.Audience, "type": &j.Type,
		"created_by": &j.CreatedBy, "deleted_by": &j.DeletedBy,
	} {
		decodeField(fields, name, target, bad)
	}
	decodeField(fields, "scope", &j.Scope, bad)
	for name, target := range map[string]*stamp{"created_at": &j.CreatedAt, "updated_at": &j.UpdatedAt, "deleted_at": &j.DeletedAt} {
		decodeField(fields, name, target, bad)
	}
	if v, ok := fields["oidc"]; ok && !bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
		o, bad := decodeOIDCFields(v)
		j.OIDC = o
		undecoded = append(undecoded, bad...)
	}
	sort.Strings(undecoded)
	return j, undecoded
}

// decodeField decodes fields[name] into target, which it leaves as it was
// when the value does not decode, and then tells bad.
func decodeField[T any](fields map[string]jsontext.Value, name string, target *T, bad func(string)) {
	v, ok := fields[name]
	if !ok {
		return
	}
	var t T
	if err := json.Unmarshal(v, &t, lenient...); err != nil {
		bad(name)
		return
	}
	*target = t
}

func decodeOIDCFields(v jsontext.Value) (*oidcJSON, []string) {
	fields := objectFields(v)
	if fields == nil {
		return nil, []string{"oidc"}
	}
	o := &oidcJSON{}
	var undecoded []string
	for name, target := range map[string]*string{"client_id": &o.ClientID, "client_secret": &o.ClientSecret, "authority": &o.Authority} {
		decodeField(fields, name, target, func(name string) { undecoded = append(undecoded, "oidc."+name) })
	}
	return o, undecoded
}

// timestampLayouts are the forms parseTimestamp reads after RFC 3339: an
// offset without a colon (+0000) or with hours only (+00), and no zone at
// all, which is read as UTC. The fraction is optional in each.
var timestampLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999Z0700",
	"2006-01-02T15:04:05.999999999Z07",
	"2006-01-02T15:04:05.999999999",
}

// parseTimestamp reads a timestamp in every RFC 3339 form (lower-case t
// and z, a space for T, any fraction, a leap second) and the common
// variants in timestampLayouts. An offset of a day or more, or an instant a
// protobuf Timestamp cannot hold (before year 1 or after 9999, in UTC), is
// refused.
func parseTimestamp(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if len(s) > 10 && (s[10] == ' ' || s[10] == 't') {
		s = s[:10] + "T" + s[11:]
	}
	if n := len(s); n > 0 && s[n-1] == 'z' {
		s = s[:n-1] + "Z"
	}
	// RFC 3339 allows a leap second, 23:59:60; Go does not: it is read as
	// the second after :59.
	var leap time.Duration
	if len(s) >= 19 && s[16] == ':' && s[17:19] == "60" {
		s, leap = s[:17]+"59"+s[19:], time.Second
	}
	for _, layout := range timestampLayouts {
		t, err := time.Parse(layout, s)
		if err != nil {
			continue
		}
		t = t.Add(leap)
		_, offset := t.Zone()
		if u := t.UTC(); offset <= -24*60*60 || offset >= 24*60*60 || u.Year() < 1 || u.Year() > 9999 {
			break
		}
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%w: timestamp is not RFC 3339", ErrDecode)
}
