package service

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
