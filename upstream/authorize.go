package upstream

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/go-json-experiment/json"

	"github.com/dintero-facade/dintero-facade/internal/idtoken"
	"github.com/dintero-facade/dintero-facade/internal/mask"
)

// AuthorizeParams are the query parameters of authorize; those left empty
// are not sent.
type AuthorizeParams struct {
	OID              string
	Audience         string
	Scope            string
	ResponseType     string
	ClientID         string
	State            string
	RedirectURI      string
	VerificationCode string
	Connection       string
}

// Redirect is authorize's answer taken apart: where Dintero sends the
// user's browser, and the tokens that carries.
type Redirect struct {
	// Location is the redirect URL, whole: the Location of a 3xx, or the
	// redirect_uri of a JSON answer.
	Location string
	// IDToken and AccessToken are the tokens it carries, read from its
	// query or, as for response_type=token, its fragment.
	IDToken, AccessToken string
	// Query and Fragment hold its other parameters (state, say), the first
	// value of each; the tokens are not repeated there.
	Query, Fragment map[string]string
	// Verification is what IDToken proves, checked against the
	// account's signing keys.
	Verification idtoken.Verification
}

// OAuthError is authorize's refusal delivered as OAuth delivers it (RFC
// 6749 §4.1.2.1 and §4.2.2.1): a redirect whose query or fragment carries
// error, error_description, error_uri and state. The verification code was
// sent, and may be spent.
type OAuthError struct {
	// Code is OAuth's error (access_denied, invalid_request, …) as sent.
	Code string
	// Description, URI and State are error_description, error_uri and
	// state, when sent, each masked like Dintero's messages (the state
	// only when it is not the request's).
	Description, URI, State string
	// StatusCode is the HTTP status of the answer that carried it.
	StatusCode int
	// RequestID is Dintero's request id.
	RequestID string
}

// Error describes the refusal without any secret.
func (e *OAuthError) Error() string {
	s := "dintero: authorize refused: " + e.Code
	if e.Description != "" {
		s += ": " + e.Description
	}
	return s
}

// OpAuthorize is Dintero's authorize, which redeems a verification code:
// never sent again once it may have left, as the code works once.
var OpAuthorize = define(Operation{
	name: "Authorize", method: http.MethodPost, path: "/accounts/{oid}/auth/authorize",
	operationID: "aid_auths_oauth_authorize_post",
})

// Authorize redeems a one-time verification code. Dintero answers with a
// redirect, which is returned taken apart, not followed: a 3xx whose
// Location carries the id_token (or OAuth's error) in its query or fragment,
// or a 2xx JSON {"redirect_uri": …} carrying the same. The call is never
// retried once the request may have left the process, because the code
// works once.
//
// The account's signing keys are made sure of first: without them the code
// is not sent (ErrSigningKeys). The id_token is then verified, and the
// outcome, good or bad, is in the Redirect's Verification: the code is spent
// either way, so the answer is not withheld.
func (c *Client) Authorize(ctx context.Context, call Call, p AuthorizeParams) (*Redirect, Meta, error) {
	path, err := OpAuthorize.urlPath(p.OID)
	if err != nil {
		return nil, Meta{}, err
	}
	keys := &accountKeys{c: c, call: call, account: p.OID}
	if meta, err := c.ensureKeys(ctx, keys); err != nil {
		meta.Sent = false
		return nil, meta, err
	}
	q := make(url.Values, 8)
	for _, kv := range [...]struct{ k, v string }{
		{"audience", p.Audience},
		{"scope", p.Scope},
		{"response_type", p.ResponseType},
		{"client_id", p.ClientID},
		{"state", p.State},
		{"redirect_uri", p.RedirectURI},
		{"verification_code", p.VerificationCode},
		{"connection", p.Connection},
	} {
		if kv.v != "" {
			q[kv.k] = []string{kv.v}
		}
	}
	r := request{op: OpAuthorize, path: path, query: q.Encode(), secrets: []string{p.VerificationCode}}
	res, meta, err := c.send(ctx, call, p.OID, &r)
	if err != nil {
		return nil, meta, err
	}
	var loc string
	switch res.status / 100 {
	case 3:
		loc = res.header.Get("Location")
	case 2:
		loc = res.header.Get("Location")
		if loc == "" {
			loc = redirectFromJSON(res.body)
		}
	default:
		return nil, meta, c.answerError(&r, res, fmt.Errorf("%w: HTTP %d to authorize", ErrUnexpectedResponse, res.status))
	}
	rd, err := parseRedirect(loc)
	if code, ok := rd.param("error"); ok {
		// OAuth's error wins over everything else the redirect carries,
		// a token or a part that does not parse: a refusal is never
		// reported as a success, nor hidden behind an unusable answer.
		m := mask.New(r.secretValues()...)
		desc, _ := rd.param("error_description")
		uri, _ := rd.param("error_uri")
		state, _ := rd.param("state")
		if !oauthError(code) {
			// Only a code of OAuth's own is taken as sent; another may
			// echo anything, and is masked like a message.
			code = m.Text(code)
		}
		// The state too, unless it is the request's: a redirect that is
		// not the request's may carry anything in it.
		if state != p.State {
			state = m.Text(state)
		}
		return nil, meta, &OAuthError{Code: code, Description: m.Text(desc), URI: m.Text(uri), State: state, StatusCode: res.status, RequestID: meta.RequestID}
	}
	if err != nil {
		return nil, meta, &Error{StatusCode: res.status, RequestID: meta.RequestID, Reason: err}
	}
	if rd.IDToken == "" && rd.AccessToken == "" {
		return nil, meta, &Error{StatusCode: res.status, RequestID: meta.RequestID, Reason: fmt.Errorf("%w: the redirect carries neither a token nor an error", ErrUnexpectedResponse)}
	}
	if rd.IDToken != "" {
		rd.Verification = c.verifier.Verify(ctx, rd.IDToken, keys, p.RedirectURI, p.ClientID)
	}
	return rd, meta, nil
}

// redirectFromJSON reads {"redirect_uri": …}, the JSON form of a redirect
// (Dintero's /auth/redirect answers so to Accept: application/json); "" when
// the body is not that.
func redirectFromJSON(body []byte) string {
	var v struct {
		RedirectURI string `json:"redirect_uri"`
	}
	if json.Unmarshal(body, &v) != nil {
		return ""
	}
	return v.RedirectURI
}

// oauthError reports whether code is an error code of OAuth 2.0 (RFC 6749
// §4.1.2.1, §4.2.2.1) or OpenID Connect Core (§3.1.2.6) an authorization
// redirect may carry.
func oauthError(code string) bool {
	switch code {
	case "invalid_request", "unauthorized_client", "access_denied", "unsupported_response_type",
		"invalid_scope", "server_error", "temporarily_unavailable",
		"interaction_required", "login_required", "account_selection_required", "consent_required",
		"invalid_request_uri", "invalid_request_object", "request_not_supported",
		"request_uri_not_supported", "registration_not_supported":
		return true
	}
	return false
}

// param returns a parameter of the redirect's query, else its fragment; a
// nil redirect has none.
func (rd *Redirect) param(k string) (string, bool) {
	if rd == nil {
		return "", false
	}
	if v, ok := rd.Query[k]; ok {
		return v, true
	}
	v, ok := rd.Fragment[k]
	return v, ok
}

// parseRedirect takes a redirect URL apart. One that is not an absolute
// http or https URL is an error wrapping ErrUnexpectedResponse that quotes
// none of it: it may hold a token. So is one whose query or fragment does
// not parse; the redirect then holds what did, so that OAuth's error is
// still seen.
func parseRedirect(location string) (*Redirect, error) {
	if location == "" {
		return nil, fmt.Errorf("%w: the answer has no redirect", ErrUnexpectedResponse)
	}
	u, err := url.Parse(location)
	if err != nil || !u.IsAbs() || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("%w: the redirect is not an absolute http(s) URL", ErrUnexpectedResponse)
	}
	rd := &Redirect{Location: location}
	var qerr, ferr error
	rd.Query, qerr = tokenParams(u.RawQuery, &rd.IDToken, &rd.AccessToken)
	rd.Fragment, ferr = tokenParams(u.EscapedFragment(), &rd.IDToken, &rd.AccessToken)
	switch {
	case qerr != nil:
		return rd, fmt.Errorf("%w: the redirect has an invalid query", ErrUnexpectedResponse)
	case ferr != nil:
		return rd, fmt.Errorf("%w: the redirect has an invalid fragment", ErrUnexpectedResponse)
	}
	return rd, nil
}

// tokenParams parses a query or fragment: the tokens go to idToken and
// accessToken (a query's over a fragment's), the other parameters, the first
// value of each, into the map. On a malformed part it returns the parts
// that parsed and the error.
func tokenParams(raw string, idToken, accessToken *string) (map[string]string, error) {
	out := map[string]string{}
	if raw == "" {
		return out, nil
	}
	q, err := url.ParseQuery(raw)
	for k, v := range q {
		switch {
		case len(v) == 0 || k == "":
		case k == "id_token":
			if *idToken == "" {
				*idToken = v[0]
			}
		case k == "access_token":
			if *accessToken == "" {
				*accessToken = v[0]
			}
		default:
			out[k] = v[0]
		}
	}
	return out, err
}
