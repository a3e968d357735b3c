package upstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-json-experiment/json"
	"golang.org/x/net/http/httpguts"
	"golang.org/x/sync/singleflight"
)

// Credentials are the facade's own Dintero client credentials for one
// account, used for calls to that account that bring no token of their own.
type Credentials struct {
	// AccountID is the account whose token endpoint issues the tokens.
	AccountID string
	// ClientID and ClientSecret authenticate the client (HTTP Basic).
	ClientID     string
	ClientSecret string
	// Audience is the audience the tokens are for; empty means
	// defaultAudience(AccountID).
	Audience string
}

// Check says what is wrong with the credentials, naming fields, never a
// value.
func (c Credentials) Check() error {
	var missing []string
	if c.ClientID == "" {
		missing = append(missing, "client_id")
	}
	if c.ClientSecret == "" {
		missing = append(missing, "client_secret")
	}
	switch {
	case !ValidAccountID(c.AccountID):
		return errors.New("account_id is not a Dintero account id (P or T, then 3 or 8 digits)")
	case len(missing) > 0:
		return fmt.Errorf("account %s needs %s", c.AccountID, strings.Join(missing, " and "))
	case strings.ContainsAny(c.ClientID, ":\r\n"):
		return fmt.Errorf("account %s: client_id must not contain a colon or a line break", c.AccountID)
	}
	return nil
}

// String prints the credentials with the secret masked, so that a
// configuration can be printed whole.
func (c Credentials) String() string {
	return fmt.Sprintf("{AccountID:%s ClientID:%s ClientSecret:%s Audience:%s}", c.AccountID, c.ClientID, mask(c.ClientSecret), c.Audience)
}

// GoString is String, so that %#v masks the secret too.
func (c Credentials) GoString() string { return c.String() }

// MarshalJSON encodes the credentials with the secret masked: slog, for
// one, encodes a struct nested in a list as JSON, without its LogValue.
func (c Credentials) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		AccountID    string `json:"account_id"`
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
		Audience     string `json:"audience"`
	}{c.AccountID, c.ClientID, mask(c.ClientSecret), c.Audience})
}

// LogValue logs the credentials with the secret masked.
func (c Credentials) LogValue() slog.Value {
	return slog.GroupValue(slog.String("account_id", c.AccountID), slog.String("client_id", c.ClientID), slog.String("client_secret", mask(c.ClientSecret)), slog.String("audience", c.Audience))
}

// maxTokenLife caps the lifetime of a token, in seconds.
const maxTokenLife = 24 * 60 * 60

// maxTokenMargin caps how early a cached token is refreshed.
const maxTokenMargin = 5 * time.Minute

// tokenSource fetches the facade's access token with client credentials and
// caches it until shortly before it expires. Concurrent callers share one
// fetch, which is not tied to any one caller's context: a caller that gives
// up does not fail the others waiting on it.
type tokenSource struct {
	c     *Client
	creds Credentials
	group singleflight.Group

	mu      sync.Mutex
	token   string
	refresh time.Time // when the token stops being handed out
}

// get returns a valid access token, fetching one if none is cached.
func (ts *tokenSource) get(ctx context.Context) (token string, err error) {
	if token, ok := ts.cached(); ok {
		return token, nil
	}
	ch := ts.group.DoChan("token", func() (any, error) {
		// A caller that found no token may join only after the fetch
		// that was in flight then has ended, and stored its token.
		if token, ok := ts.cached(); ok {
			return token, nil
		}
		// The fetch keeps the first caller's values (request id, trace)
		// but not its cancellation, and is bounded on its own.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ts.c.opts.Timeout)
		defer cancel()
		return ts.fetch(fctx)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return "", r.Err
		}
		return r.Val.(string), nil
	case <-ctx.Done():
		return "", fmt.Errorf("waiting for a Dintero token: %w", context.Cause(ctx))
	}
}

// cached returns the cached token while it is handed out.
func (ts *tokenSource) cached() (string, bool) {
	now := ts.c.now()
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.token != "" && now.Before(ts.refresh) {
		return ts.token, true
	}
	return "", false
}

// drop forgets token if it is still the cached one, after Dintero refused
// it. A token fetched meanwhile by another caller is kept.
func (ts *tokenSource) drop(token string) {
	ts.mu.Lock()
	if ts.token == token {
		ts.token = ""
	}
	ts.mu.Unlock()
}

// accessToken is Dintero's token answer.
type accessToken struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
}

// fetch asks Dintero's token endpoint for a client_credentials token, with
// the retries of an idempotent call, and caches it.
func (ts *tokenSource) fetch(ctx context.Context) (string, error) {
	audience := ts.creds.Audience
	if audience == "" {
		audience = defaultAudience(ts.creds.AccountID)
	}
	body, err := json.Marshal(struct {
		GrantType string `json:"grant_type"`
		Audience  string `json:"audience"`
	}{"client_credentials", audience})
	if err != nil {
		return "", err
	}
	path, err := ts.c.path("accounts", ts.creds.AccountID, "auth", "token")
	if err != nil {
		return "", fmt.Errorf("token endpoint: %w", err)
	}
	req := request{
		op:         "Token",
		method:     http.MethodPost,
		path:       path,
		body:       body,
		idempotent: true,
		basic:      &ts.creds,
	}
	res, err := ts.c.do(ctx, &req)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrTokenFetch, err)
	}
	if res.status/100 != 2 {
		return "", fmt.Errorf("%w: %w", ErrTokenFetch, ts.c.answerError(&req, res, fmt.Errorf("%w: HTTP %d to the token endpoint", ErrUnexpectedResponse, res.status)))
	}
	var at accessToken
	if err := json.Unmarshal(res.body, &at); err != nil {
		return "", fmt.Errorf("%w: %w", ErrTokenFetch, &Error{StatusCode: res.status, RequestID: requestID(res.header), Reason: fmt.Errorf("%w: the token answer is not the documented JSON object", ErrDecode)})
	}
	if at.AccessToken == "" || !httpguts.ValidHeaderFieldValue(at.AccessToken) || (at.TokenType != "" && !strings.EqualFold(at.TokenType, "Bearer")) {
		return "", fmt.Errorf("%w: %w", ErrTokenFetch, &Error{StatusCode: res.status, RequestID: requestID(res.header), Reason: fmt.Errorf("%w: no bearer access_token", ErrUnexpectedResponse)})
	}
	// A token without a positive lifetime is used for this call only; an
	// absurd lifetime is cut to a day, so a refresh still comes.
	life := time.Duration(min(max(at.ExpiresIn, 0), maxTokenLife)) * time.Second
	margin := min(maxTokenMargin, life/10)
	ts.mu.Lock()
	ts.token = at.AccessToken
	ts.refresh = ts.c.now().Add(life - margin)
	ts.mu.Unlock()
	ts.c.opts.Observer.TokenFetched()
	return at.AccessToken, nil
}
