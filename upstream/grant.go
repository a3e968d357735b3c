package upstream

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// Grant is Dintero's client grant, as returned by DELETE client-grants/{id}.
// Unset fields are left out when it is encoded, as Dintero does (the mock
// Dintero serves this type).
type Grant struct {
	ID        string     `json:"id"`
	ClientID  string     `json:"client_id"`
	Audience  string     `json:"audience"`
	Scope     []string   `json:"scope"`
	Type      string     `json:"type,omitempty"`
	OIDC      *OIDC      `json:"oidc,omitempty"`
	CreatedAt *time.Time `json:"created_at,omitempty"`
	UpdatedAt *time.Time `json:"updated_at,omitempty"`
	DeletedAt *time.Time `json:"deleted_at,omitempty"`
	CreatedBy string     `json:"created_by,omitempty"`
	DeletedBy string     `json:"deleted_by,omitempty"`
}

// OIDC is a grant's OpenID Connect configuration. Its ClientSecret is
// returned to the caller, so it is kept, but it is masked whenever the value
// is printed or logged.
type OIDC struct {
	ClientID     string `json:"client_id,omitempty"`
	ClientSecret string `json:"client_secret,omitempty"`
	Authority    string `json:"authority,omitempty"`
}

// String prints the configuration with the client secret masked.
func (o OIDC) String() string {
	return fmt.Sprintf("{ClientID:%s ClientSecret:%s Authority:%s}", o.ClientID, mask(o.ClientSecret), o.Authority)
}

// GoString is String, so that %#v masks the secret too.
func (o OIDC) GoString() string { return o.String() }

// LogValue logs the configuration with the client secret masked.
func (o OIDC) LogValue() slog.Value {
	return slog.GroupValue(slog.String("client_id", o.ClientID), slog.String("client_secret", mask(o.ClientSecret)), slog.String("authority", o.Authority))
}

// mask hides a secret, telling only whether it was set.
func mask(s string) string {
	if s == "" {
		return ""
	}
	return "[REDACTED]"
}

// DecodeGrant decodes Dintero's grant JSON. Unknown fields are ignored, so
// that a field Dintero adds later is not fatal; a body that is not a JSON
// object, or a timestamp that is not RFC 3339, is an error wrapping
// ErrDecode that quotes none of the body. It runs on every DELETE, so it
// uses the JSON v2 decoder, which is about 2.7 times as fast with a third of
// the allocations (BenchmarkDecodeGrant).
func DecodeGrant(body []byte) (*Grant, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		return nil, fmt.Errorf("%w: grant is not a JSON object", ErrDecode)
	}
	var g Grant
	if err := jsonv2.Unmarshal(body, &g); err != nil {
		return nil, fmt.Errorf("%w: grant: %s", ErrDecode, describeJSONError(err))
	}
	return &g, nil
}

// describeJSONError says what was wrong with a JSON document without
// quoting its values, which may be secrets.
func describeJSONError(err error) string {
	var se *jsonv2.SemanticError
	var sy *jsontext.SyntacticError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("field %q: JSON %s where %v was expected", string(se.JSONPointer), se.JSONKind, se.GoType)
	case errors.As(err, &sy):
		return fmt.Sprintf("invalid JSON at offset %d", sy.ByteOffset)
	}
	switch e := err.(type) {
	case *json.SyntaxError:
		return fmt.Sprintf("invalid JSON at offset %d", e.Offset)
	case *json.UnmarshalTypeError:
		return fmt.Sprintf("field %q: JSON %s where %s was expected", e.Field, e.Value, e.Type)
	case *time.ParseError:
		return "timestamp is not RFC 3339"
	}
	return "invalid JSON"
}

// Redirect is Dintero's 302 answer to authorize, taken apart.
type Redirect struct {
	// Location is the Location header, whole.
	Location string
	// IDToken is the id_token query parameter of Location.
	IDToken string
	// Query holds Location's other query parameters, the first value of
	// each; id_token is not repeated here.
	Query map[string]string
}

// ParseLocation takes a Location header apart. A location that is not a
// valid URL, or whose query cannot be parsed, is an error wrapping
// ErrUnexpectedResponse that quotes none of it: it holds the id_token.
func ParseLocation(location string) (*Redirect, error) {
	if location == "" {
		return nil, fmt.Errorf("%w: success without a Location", ErrUnexpectedResponse)
	}
	u, err := url.Parse(location)
	if err != nil {
		return nil, fmt.Errorf("%w: Location is not a valid URL", ErrUnexpectedResponse)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, fmt.Errorf("%w: Location has an invalid query", ErrUnexpectedResponse)
	}
	r := &Redirect{Location: location, Query: make(map[string]string, len(q))}
	for k, v := range q {
		if len(v) == 0 {
			continue
		}
		if k == "id_token" {
			r.IDToken = v[0]
			continue
		}
		r.Query[k] = v[0]
	}
	return r, nil
}
