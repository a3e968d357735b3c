package service

// The unexported parts the black-box tests exercise directly.
var (
	ValidateDeleteClientGrant = validateDeleteClientGrant
	ValidateAuthorize         = validateAuthorize
	StatusOf                  = statusOf
)
