package upstream

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/go-json-experiment/json"
	"golang.org/x/net/http/httpguts"

	"github.com/dintero-facade/dintero-facade/internal/tokensource"
)

// OpToken is Dintero's token endpoint, asked for a client_credentials
// token with the facade's credentials.
var OpToken = define(Operation{
	name: "Token", method: http.MethodPost, path: "/accounts/{oid}/auth/token",
	operationID: "aid_auths_oauth_token_post", idempotent: true,
})

// accessToken is Dintero's token answer.
type accessToken struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
}

// fetchToken asks Dintero's token endpoint for a client_credentials token
// with creds, with the retries of an idempotent call.
func (c *Client) fetchToken(ctx context.Context, creds *Credentials) (tokensource.Token, error) {
	audience := creds.audience()
	body, err := json.Marshal(struct {
		GrantType string `json:"grant_type"`
		Audience  string `json:"audience"`
	}{"client_credentials", audience})
	if err != nil {
		return tokensource.Token{}, err
	}
	path, err := OpToken.urlPath(creds.AccountID)
	if err != nil {
		return tokensource.Token{}, fmt.Errorf("token endpoint: %w", err)
	}
	req := request{op: OpToken, path: path, body: body, basic: creds}
	res, err := c.do(ctx, &req)
	if err != nil {
		return tokensource.Token{}, fmt.Errorf("%w: %w", ErrTokenFetch, err)
	}
	if res.status/100 != 2 {
		return tokensource.Token{}, fmt.Errorf("%w: %w", ErrTokenFetch, c.answerError(&req, res, fmt.Errorf("%w: HTTP %d to the token endpoint", ErrUnexpectedResponse, res.status)))
	}
	var at accessToken
	if err := json.Unmarshal(res.body, &at); err != nil {
		return tokensource.Token{}, fmt.Errorf("%w: %w", ErrTokenFetch, &Error{StatusCode: res.status, RequestID: requestID(res.header, req.secretValues()...), Reason: fmt.Errorf("%w: the token answer is not the documented JSON object", ErrDecode)})
	}
	if at.AccessToken == "" || !httpguts.ValidHeaderFieldValue(at.AccessToken) || (at.TokenType != "" && !strings.EqualFold(at.TokenType, "Bearer")) {
		return tokensource.Token{}, fmt.Errorf("%w: %w", ErrTokenFetch, &Error{StatusCode: res.status, RequestID: requestID(res.header, req.secretValues()...), Reason: fmt.Errorf("%w: no bearer access_token", ErrUnexpectedResponse)})
	}
	c.opts.Observer.TokenFetched()
	return tokensource.Token{Value: at.AccessToken, ExpiresIn: at.ExpiresIn}, nil
}
