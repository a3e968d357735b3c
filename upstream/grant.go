package upstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/dintero-facade/dintero-facade/internal/mask"
)

// Grant is Dintero's client grant, as returned by DELETE client-grants/{id}.
type Grant struct {
	ID       string
	ClientID string
	Audience string
	Scope    []string
	// Type is Dintero's type verbatim; "any", Dintero's default, when the
	// grant came without one; empty when it could not be read.
	Type      string
	OIDC      *OIDC
	CreatedAt *time.Time
	UpdatedAt *time.Time
	DeletedAt *time.Time
	CreatedBy string
	DeletedBy string
}

// OIDC is a grant's OpenID Connect configuration. Its ClientSecret is
// returned to the caller, so it is kept, but it is masked whenever the value
// is printed or logged.
type OIDC struct {
	ClientID     string
	ClientSecret string
	Authority    string
}

// String prints the configuration with the client secret masked.
func (o OIDC) String() string {
	return fmt.Sprintf("{ClientID:%s ClientSecret:%s Authority:%s}", o.ClientID, mask.Value(o.ClientSecret), o.Authority)
}

// GoString is String, so that %#v masks the secret too.
func (o OIDC) GoString() string { return o.String() }

// LogValue logs the configuration with the client secret masked.
func (o OIDC) LogValue() slog.Value {
	return slog.GroupValue(slog.String("client_id", o.ClientID), slog.String("client_secret", mask.Value(o.ClientSecret)), slog.String("authority", o.Authority))
}

// OpDeleteClientGrant is Dintero's deletion of a client grant.
var OpDeleteClientGrant = define(Operation{
	name: "DeleteClientGrant", method: http.MethodDelete, path: "/accounts/{oid}/auth/client-grants/{id}",
	operationID: "aid_auths_client_grants_id_delete", idempotent: true,
})

// DeleteClientGrant deletes grant id of account oid and returns the deleted
// grant. It is idempotent, so it is retried on connection errors, 429, 502,
// 503 and 504. Any 2xx is a deletion: a 204, or a body whose parts cannot
// be read, gives the grant with what could be read (Meta.Undecoded names the
// rest). A 404 after an attempt whose outcome is unknown carries those
// attempts in Error.Uncertain: this very call may have deleted the grant.
func (c *Client) DeleteClientGrant(ctx context.Context, call Call, oid, id string) (*Grant, Meta, error) {
	path, err := OpDeleteClientGrant.urlPath(oid, id)
	if err != nil {
		return nil, Meta{}, err
	}
	r := request{op: OpDeleteClientGrant, path: path}
	res, meta, err := c.send(ctx, call, oid, &r)
	if err != nil {
		if e := (*Error)(nil); errors.As(err, &e) && errors.Is(err, ErrBodyTooLarge) && e.StatusCode/100 == 2 {
			// Dintero deleted the grant; its answer is only too large to
			// read.
			meta.Undecoded = []string{"body"}
			return &Grant{ID: id}, meta, nil
		}
		return nil, meta, err
	}
	if res.status/100 != 2 {
		return nil, meta, c.answerError(&r, res, fmt.Errorf("%w: HTTP %d to DELETE", ErrUnexpectedResponse, res.status))
	}
	if res.status == http.StatusNoContent {
		return &Grant{ID: id}, meta, nil
	}
	g, undecoded := decodeGrant(res.body, id)
	meta.Undecoded = undecoded
	return g, meta, nil
}
