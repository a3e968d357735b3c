// Package service implements dintero.auth.v1.AuthService over Dintero's REST
// API: it validates each request, calls Dintero through upstream, and
// answers in gRPC terms.
package service

import (
	"context"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	authv1 "github.com/dintero-facade/dintero-facade/gen/dintero/auth/v1"
	"github.com/dintero-facade/dintero-facade/upstream"
)

// Server implements authv1.AuthServiceServer.
type Server struct {
	authv1.UnimplementedAuthServiceServer
	dintero *upstream.Client
	opts    Options
}

// Options configure a Server.
type Options struct {
	// Policy says who may act with the facade's own credentials; nil lets
	// every caller use them.
	Policy *Policy
	// Metrics counts the decisions about the facade's credentials; nil
	// counts nothing.
	Metrics *Metrics
}

// New returns a Server that calls Dintero with client.
func New(client *upstream.Client, opts Options) *Server {
	return &Server{dintero: client, opts: opts}
}

// Decisions about the use of the facade's own credentials, as logged and
// counted.
const (
	DecisionOwnToken      = "own_token"      // the caller brought its own token
	DecisionNoCredentials = "no_credentials" // none for the account: Unauthenticated
	DecisionUnrestricted  = "unrestricted"   // no policy: every caller may
	DecisionAllowed       = "allowed"        // the policy allows it
	DecisionDenied        = "denied"         // the policy does not: PermissionDenied
)

// checkUse decides whether the call may go on: with the caller's own token
// always; with the facade's credentials when the policy allows the caller
// (its mTLS identity) operation on account. A denial sends nothing.
func (s *Server) checkUse(ctx context.Context, info *callInfo, call upstream.Call, operation, account string) error {
	known := s.dintero.HasCredentials(account)
	var who string
	switch {
	case call.Authorization != "":
		info.decision = DecisionOwnToken
	case !known:
		info.decision = DecisionNoCredentials
	case s.opts.Policy == nil:
		info.decision = DecisionUnrestricted
	default:
		who = CallerFrom(ctx).Identity
		info.decision = DecisionDenied
		if s.opts.Policy.Allows(who, account, operation) {
			info.decision = DecisionAllowed
		}
	}
	s.opts.Metrics.decision(operation, account, info.decision, known)
	if info.decision != DecisionDenied {
		return nil
	}
	if who == "" {
		who = "a caller without a client certificate"
	}
	return status.Errorf(codes.PermissionDenied, "%s may not use %s on account %s with the facade's credentials; bring your own Dintero token or ask for a policy rule", who, operation, account)
}

// DeleteClientGrant deletes a client grant at Dintero.
func (s *Server) DeleteClientGrant(ctx context.Context, req *authv1.DeleteClientGrantRequest) (*authv1.DeleteClientGrantResponse, error) {
	info := infoFrom(ctx)
	info.oid, info.grantID = req.GetOid(), req.GetId()
	if err := ValidateDeleteClientGrant(req); err != nil {
		return nil, err
	}
	call := callFrom(ctx)
	if err := s.checkUse(ctx, info, call, "DeleteClientGrant", req.GetOid()); err != nil {
		return nil, err
	}
	g, meta, err := s.dintero.DeleteClientGrant(ctx, call, req.GetOid(), req.GetId())
	info.meta = meta
	if err != nil {
		return nil, Status(err).Err()
	}
	return &authv1.DeleteClientGrantResponse{Grant: GrantToProto(g)}, nil
}

// Authorize redeems a verification code at Dintero.
func (s *Server) Authorize(ctx context.Context, req *authv1.AuthorizeRequest) (*authv1.AuthorizeResponse, error) {
	info := infoFrom(ctx)
	info.oid = req.GetOid()
	if err := ValidateAuthorize(req); err != nil {
		return nil, err
	}
	call := callFrom(ctx)
	if err := s.checkUse(ctx, info, call, "Authorize", req.GetOid()); err != nil {
		return nil, err
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
	info.meta = meta
	if err != nil {
		return nil, Status(err).Err()
	}
	return &authv1.AuthorizeResponse{Location: rd.Location, IdToken: rd.IDToken, Query: rd.Query}, nil
}

// callFrom takes what upstream needs from the call's metadata: the caller's
// authorization, passed to Dintero as it came, and the request id.
func callFrom(ctx context.Context) upstream.Call {
	var c upstream.Call
	// ValueFromIncomingContext reads one key; FromIncomingContext would
	// copy all the metadata on every call.
	if v := metadata.ValueFromIncomingContext(ctx, "authorization"); len(v) > 0 {
		c.Authorization = strings.TrimSpace(v[0])
	}
	c.RequestID = RequestIDFrom(ctx)
	return c
}

// GrantToProto translates Dintero's grant. Timestamps become the same
// instant in UTC; a missing one stays unset.
func GrantToProto(g *upstream.Grant) *authv1.ClientGrant {
	out := &authv1.ClientGrant{
		Id:        g.ID,
		ClientId:  g.ClientID,
		Audience:  g.Audience,
		Scope:     g.Scope,
		Type:      g.Type,
		CreatedAt: timestamp(g.CreatedAt),
		UpdatedAt: timestamp(g.UpdatedAt),
		DeletedAt: timestamp(g.DeletedAt),
		CreatedBy: g.CreatedBy,
		DeletedBy: g.DeletedBy,
	}
	if g.OIDC != nil {
		out.Oidc = &authv1.Oidc{ClientId: g.OIDC.ClientID, ClientSecret: g.OIDC.ClientSecret, Authority: g.OIDC.Authority}
	}
	return out
}

func timestamp(t *time.Time) *timestamppb.Timestamp {
	if t == nil {
		return nil
	}
	return timestamppb.New(*t)
}
