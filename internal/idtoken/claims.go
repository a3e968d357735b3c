package idtoken

import (
	"math/big"

	"github.com/golang-jwt/jwt/v5"
)

// typedClaims reads the documented claims; ok is false when one of them
// has the wrong type.
func typedClaims(m jwt.MapClaims) (*Claims, bool) {
	cl := &Claims{Extra: map[string]any{}}
	str := func(k string, dst *string) bool {
		v, ok := m[k]
		if !ok {
			return true
		}
		*dst, ok = v.(string)
		return ok
	}
	if !str("sub", &cl.Subject) || !str("email", &cl.Email) || !str("name", &cl.Name) || !str("iss", &cl.Issuer) || cl.Subject == "" {
		return nil, false
	}
	for _, k := range [...]string{"exp", "nbf", "iat"} {
		if v, ok := m[k]; ok && !timeInRange(v) {
			return nil, false
		}
	}
	aud, err := m.GetAudience()
	if err != nil {
		return nil, false
	}
	cl.Audience = aud
	exp, err := m.GetExpirationTime()
	if err != nil || exp == nil {
		return nil, false
	}
	cl.Expires = exp.UTC()
	if iat, err := m.GetIssuedAt(); err != nil {
		return nil, false
	} else if iat != nil {
		cl.IssuedAt = iat.UTC()
	}
	for k, v := range m {
		switch k {
		case "sub", "email", "name", "iss", "aud", "exp", "iat":
			continue
		}
		if depth(v) > maxClaimDepth {
			return nil, false
		}
		cl.Extra[k] = plainJSON(v)
	}
	return cl, true
}

// maxTimeClaim is 9999-12-31T23:59:59Z, the last second a protobuf
// Timestamp (and so the caller) can hold.
const maxTimeClaim = 253402300799

// timeInRange reports whether a time claim is a number of seconds from
// 1970 to the year 9999: one beyond overflows or cannot be answered.
func timeInRange(v any) bool {
	n, ok := v.(interface{ Float64() (float64, error) })
	if !ok {
		return false
	}
	f, err := n.Float64()
	return err == nil && f >= 0 && f <= maxTimeClaim
}

// maxClaimDepth bounds the nesting of a claim, well within what a protobuf
// decoder on the caller's side accepts.
const maxClaimDepth = 32

// depth returns how deep v nests arrays and objects.
func depth(v any) int {
	d := 0
	switch v := v.(type) {
	case []any:
		for _, x := range v {
			d = max(d, depth(x))
		}
		return d + 1
	case map[string]any:
		for _, x := range v {
			d = max(d, depth(x))
		}
		return d + 1
	}
	return 0
}

// plainJSON turns the JSON numbers of a decoded claim into float64 where
// that keeps the value exactly, else into their decimal text, so that no
// digit is lost on the way to a protobuf Struct.
func plainJSON(v any) any {
	switch v := v.(type) {
	case interface{ String() string }:
		f, acc := exactFloat(v.String())
		if acc {
			return f
		}
		return v.String()
	case []any:
		for i := range v {
			v[i] = plainJSON(v[i])
		}
		return v
	case map[string]any:
		for k := range v {
			v[k] = plainJSON(v[k])
		}
		return v
	}
	return v
}

// exactFloat parses the JSON number s and reports whether a float64 holds
// it exactly.
func exactFloat(s string) (float64, bool) {
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return 0, false
	}
	return r.Float64()
}
