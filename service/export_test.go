package service

import (
	authv1 "github.com/dintero-facade/dintero-facade/gen/dintero/auth/v1"
	"github.com/dintero-facade/dintero-facade/upstream"
)

// The unexported parts the black-box tests exercise directly.
var (
	ValidateDeleteClientGrant = validateDeleteClientGrant
	ValidateAuthorize         = validateAuthorize
	StatusOf                  = statusOf
	DeadlineBound             = deadlineBound
)

// CodeForHTTP and CodeForOAuthError expose the two mappings to the golden
// tests.
var (
	CodeForHTTP       = codeForHTTP
	CodeForOAuthError = codeForOAuthError
)

// GrantToProto translates a grant as DeleteClientGrant answers it.
func GrantToProto(g *upstream.Grant) *authv1.ClientGrant { return new(deleteAnswer).grant(g) }

// AddrText is how a peer's address is logged.
var AddrText = addrText
