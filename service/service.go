// Package service implements dintero.auth.v1.AuthService over Dintero's REST
// API: it validates each request, calls Dintero through upstream, and
// answers in gRPC terms.
package service

import (
	"context"
	"strings"
	"time"

	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/timestamppb"

	authv1 "github.com/dintero-facade/dintero-facade/gen/dintero/auth/v1"
	"github.com/dintero-facade/dintero-facade/upstream"
)

// Server implements authv1.AuthServiceServer.
type Server struct {
	authv1.UnimplementedAuthServiceServer
	dintero *upstream.Client
}

// New returns a Server that calls Dintero with client.
func New(client *upstream.Client) *Server {
	return &Server{dintero: client}
}

// DeleteClientGrant deletes a client grant at Dintero.
func (s *Server) DeleteClientGrant(ctx context.Context, req *authv1.DeleteClientGrantRequest) (*authv1.DeleteClientGrantResponse, error) {
	info := infoFrom(ctx)
	info.oid, info.grantID = req.GetOid(), req.GetId()
	if err := ValidateDeleteClientGrant(req); err != nil {
		return nil, err
	}
	call := callFrom(ctx)
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
