// Package service implements dintero.auth.v1.AuthService over Dintero's REST
// API: it validates each request, calls Dintero through upstream, and
// answers in gRPC terms.
package service

import (
	"context"
	"errors"
	"path"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	authv1 "github.com/dintero-facade/dintero-facade/gen/dintero/auth/v1"
	"github.com/dintero-facade/dintero-facade/internal/idtoken"
	"github.com/dintero-facade/dintero-facade/upstream"
)

// The names of the operations, as the generated descriptor names them.
var (
	opDelete    = path.Base(authv1.AuthService_DeleteClientGrant_FullMethodName)
	opAuthorize = path.Base(authv1.AuthService_Authorize_FullMethodName)
)

// Server implements authv1.AuthServiceServer.
type Server struct {
	authv1.UnimplementedAuthServiceServer
	dintero *upstream.Client
	opts    Options
	// policy is the policy in force, which SetPolicy replaces; nil lets
	// every caller use the facade's credentials.
	policy atomic.Pointer[Policy]
}

// Options configure a Server.
type Options struct {
	// Policy says who may act with the facade's own credentials; nil lets
	// every caller use them.
	Policy *Policy
	// Counters count the decisions about the facade's credentials, the
	// answers it could not read whole and the id_tokens verified; nil
	// counts nothing.
	Counters *Counters
	// RejectInvalidIDToken makes an id_token that fails verification an
	// error (Unauthenticated, reason ID_TOKEN_INVALID) instead of an answer
	// marked invalid. The verification code is spent either way.
	RejectInvalidIDToken bool
	// ReturnOIDCClientSecret returns the deleted grant's oidc.client_secret
	// to the caller. By default it is withheld, and the call's log line
	// names the field: it is the secret of the grant's identity provider,
	// and may still be valid there.
	ReturnOIDCClientSecret bool
}

// New returns a Server that calls Dintero with client.
func New(client *upstream.Client, opts Options) *Server {
	s := &Server{dintero: client, opts: opts}
	s.policy.Store(opts.Policy)
	return s
}

// SetPolicy puts p in force for the calls decided from now on; a call
// already decided keeps the decision. A policy cannot be taken away at run
// time (nil is refused): that would let every caller act with the
// facade's credentials.
func (s *Server) SetPolicy(p *Policy) error {
	if p == nil {
		return errors.New("no policy: a policy cannot be turned off without a restart")
	}
	s.policy.Store(p)
	return nil
}

// Decisions about the use of the facade's own credentials, as logged and
// counted.
const (
	decisionOwnToken      = "own_token"      // the caller brought its own token
	decisionNoCredentials = "no_credentials" // none for the account: Unauthenticated
	decisionUnrestricted  = "unrestricted"   // no policy: every caller may
	decisionAllowed       = "allowed"        // the policy allows it
	decisionDenied        = "denied"         // the policy does not: PermissionDenied
)

// authenticate decides how the call authenticates at Dintero: with the
// caller's own token always; else with the facade's credentials for
// account, when the policy allows the caller (its mTLS identity) op on it.
// The credentials and the policy are read once, so that the call uses the
// very credentials the decision was made on, by one policy, whatever a
// reload does meanwhile. A denial sends nothing.
func (s *Server) authenticate(ctx context.Context, info *outcome, call *upstream.Call, op, account string) error {
	// One read of the credentials and one of the policy: the decision and
	// the call use them.
	src := s.dintero.TokenSource(account)
	policy := s.policy.Load()
	var who string
	switch {
	case call.Authorization != "":
		info.decision = decisionOwnToken
	case src == nil:
		info.decision = decisionNoCredentials
	case policy == nil:
		info.decision = decisionUnrestricted
	default:
		who = callerFrom(ctx).Identity
		info.decision = decisionDenied
		if policy.Allows(who, account, op) {
			info.decision = decisionAllowed
		}
	}
	s.opts.Counters.decision(op, account, info.decision, src != nil)
	switch info.decision {
	case decisionOwnToken:
		return nil
	case decisionDenied:
	default:
		call.TokenSource = src
		return nil
	}
	if who == "" {
		who = "a caller without a client certificate"
	}
	return failure(op, upstream.Meta{}, codes.PermissionDenied, ErrorReasonPolicyDenied,
		who+" may not use "+op+" on account "+account+" with the facade's credentials; bring your own Dintero token or ask for a policy rule").Err()
}

// DeleteClientGrant deletes a client grant at Dintero.
func (s *Server) DeleteClientGrant(ctx context.Context, req *authv1.DeleteClientGrantRequest) (*authv1.DeleteClientGrantResponse, error) {
	return answer(ctx, req, s.deleteClientGrant)
}

// Authorize redeems a verification code at Dintero.
func (s *Server) Authorize(ctx context.Context, req *authv1.AuthorizeRequest) (*authv1.AuthorizeResponse, error) {
	return answer(ctx, req, s.authorize)
}

func (s *Server) deleteClientGrant(ctx context.Context, req *authv1.DeleteClientGrantRequest) (*authv1.DeleteClientGrantResponse, outcome, error) {
	out := outcome{oid: req.GetOid(), grantID: req.GetId()}
	if err := validateDeleteClientGrant(req); err != nil {
		return nil, out, err
	}
	call, err := callFrom(ctx, opDelete)
	if err != nil {
		return nil, out, err
	}
	if err := s.authenticate(ctx, &out, &call, opDelete, req.GetOid()); err != nil {
		return nil, out, err
	}
	g, meta, err := s.dintero.DeleteClientGrant(ctx, call, req.GetOid(), req.GetId())
	out.meta = meta
	if err != nil {
		return nil, out, statusOf(opDelete, err, meta).Err()
	}
	s.opts.Counters.undecoded(opDelete, meta.Undecoded)
	a := new(deleteAnswer)
	grant := a.grant(g)
	if o := grant.GetOidc(); o.GetClientSecret() != "" && !s.opts.ReturnOIDCClientSecret {
		o.ClientSecret = ""
		out.withheld = withheldOIDCSecret
	}
	a.resp.Grant = grant
	return &a.resp, out, nil
}

// deleteAnswer is DeleteClientGrant's answer with every message it points
// to, so that the answer is one allocation rather than six. The messages
// are never copied, only pointed to.
type deleteAnswer struct {
	resp  authv1.DeleteClientGrantResponse
	g     authv1.ClientGrant
	times [3]timestamppb.Timestamp
	oidc  authv1.Oidc
}

// grant translates Dintero's grant into a's messages. Timestamps become
// the same instant (a Timestamp has no zone); a missing one stays unset.
func (a *deleteAnswer) grant(g *upstream.Grant) *authv1.ClientGrant {
	out := &a.g
	out.Id, out.ClientId, out.Audience, out.Scope, out.Type = g.ID, g.ClientID, g.Audience, g.Scope, g.Type
	out.CreatedBy, out.DeletedBy = g.CreatedBy, g.DeletedBy
	out.CreatedAt, out.UpdatedAt, out.DeletedAt = timestampIn(&a.times[0], g.CreatedAt), timestampIn(&a.times[1], g.UpdatedAt), timestampIn(&a.times[2], g.DeletedAt)
	if g.OIDC != nil {
		a.oidc.ClientId, a.oidc.ClientSecret, a.oidc.Authority = g.OIDC.ClientID, g.OIDC.ClientSecret, g.OIDC.Authority
		out.Oidc = &a.oidc
	}
	return out
}

// timestampIn puts t into ts, as timestamppb.New does, and returns ts;
// nil for no t.
func timestampIn(ts *timestamppb.Timestamp, t *time.Time) *timestamppb.Timestamp {
	if t == nil {
		return nil
	}
	ts.Seconds, ts.Nanos = t.Unix(), int32(t.Nanosecond())
	return ts
}

func (s *Server) authorize(ctx context.Context, req *authv1.AuthorizeRequest) (*authv1.AuthorizeResponse, outcome, error) {
	out := outcome{oid: req.GetOid()}
	if err := validateAuthorize(req); err != nil {
		return nil, out, err
	}
	call, err := callFrom(ctx, opAuthorize)
	if err != nil {
		return nil, out, err
	}
	if err := s.authenticate(ctx, &out, &call, opAuthorize, req.GetOid()); err != nil {
		return nil, out, err
	}
	rd, meta, err := s.dintero.Authorize(ctx, call, upstream.AuthorizeParams{
		OID:              req.GetOid(),
		Audience:         req.GetAudience(),
		Scope:            req.GetScope(),
		ResponseType:     req.GetResponseType(),
		ClientID:         req.GetClientId(),
		State:            req.GetState(),
		RedirectURI:      req.GetRedirectUri(),
		VerificationCode: req.GetVerificationCode(),
		Connection:       req.GetConnection(),
	})
	out.meta = meta
	if err != nil {
		return nil, out, statusOf(opAuthorize, err, meta).Err()
	}
	v := verificationToProto(rd.Verification)
	out.idToken, out.idTokenReason = resultName(v.GetResult()), v.GetReason()
	s.opts.Counters.idToken(out.idToken, out.idTokenReason)
	if s.opts.RejectInvalidIDToken && v.GetResult() == authv1.IdTokenVerification_RESULT_INVALID {
		return nil, out, idTokenInvalid(meta, v.GetReason()).Err()
	}
	return &authv1.AuthorizeResponse{
		Location: rd.Location, IdToken: rd.IDToken, AccessToken: rd.AccessToken,
		Query: rd.Query, Fragment: rd.Fragment, IdTokenVerification: v,
	}, out, nil
}

// verificationToProto translates the id_token's verification.
func verificationToProto(id idtoken.Verification) *authv1.IdTokenVerification {
	switch id.Result {
	case idtoken.Verified:
		c := id.Claims
		out := &authv1.IdTokenClaims{Sub: c.Subject, Email: c.Email, Name: c.Name, Iss: c.Issuer, Aud: c.Audience,
			Exp: timestamppb.New(c.Expires)}
		if !c.IssuedAt.IsZero() {
			out.Iat = timestamppb.New(c.IssuedAt)
		}
		if len(c.Extra) > 0 {
			// Decoded JSON always converts; were it not to, the typed
			// claims still stand.
			out.Extra, _ = structpb.NewStruct(c.Extra)
		}
		return &authv1.IdTokenVerification{Result: authv1.IdTokenVerification_RESULT_VERIFIED, Claims: out}
	case idtoken.Invalid:
		return &authv1.IdTokenVerification{Result: authv1.IdTokenVerification_RESULT_INVALID, Reason: id.Reason}
	}
	return &authv1.IdTokenVerification{Result: authv1.IdTokenVerification_RESULT_NOT_CHECKED}
}

// resultName is a verification result as logged and counted: verified,
// invalid or not_checked.
func resultName(r authv1.IdTokenVerification_Result) string {
	return strings.ToLower(strings.TrimPrefix(r.String(), "RESULT_"))
}

// callFrom takes what upstream needs from the call's metadata: the caller's
// authorization, which upstream checks and passes to Dintero, and the
// request id. An authorization that is there but blank is refused: the
// caller meant to bring a token (an unset $TOKEN, say), and the call must
// neither go out with an empty one nor fall back to the facade's
// credentials.
func callFrom(ctx context.Context, op string) (upstream.Call, error) {
	var c upstream.Call
	// ValueFromIncomingContext reads one key; FromIncomingContext would
	// copy all the metadata on every call.
	if v := metadata.ValueFromIncomingContext(ctx, "authorization"); len(v) > 0 {
		c.Authorization = strings.TrimSpace(v[0])
		if c.Authorization == "" {
			return c, statusOf(op, upstream.ErrBadAuthorization, upstream.Meta{}).Err()
		}
	}
	c.RequestID = requestIDFrom(ctx)
	return c, nil
}

// withheldOIDCSecret names the field withheld from a deleted grant.
var withheldOIDCSecret = []string{"oidc.client_secret"}
