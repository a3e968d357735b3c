package h2transport_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/dintero-facade/dintero-facade/internal/dinteromock"
	"github.com/dintero-facade/dintero-facade/internal/dinterotest"
	"github.com/dintero-facade/dintero-facade/upstream"
)

// The transport's tests drive it through the client it serves, against
// the fake Dintero or a raw HTTP/2 server, so that what they check is what
// a call sees: how many requests reached Dintero, whether the call says
// it was sent.

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, dinterotest.LeakOptions()...)
}

// allParams is an authorize of the test data set's application.
var allParams = upstream.AuthorizeParams{
	OID: "P00000000", Audience: dinteromock.Audience("P00000000"), ResponseType: "authenticate",
	ClientID: dinterotest.App, RedirectURI: dinterotest.Callback, VerificationCode: "VC-SECRET-9731",
}

// caller is a call that brings its own token for account T123.
func caller(fake *dinterotest.Server) upstream.Call { return callerAt(fake, "T123") }

// callerAt is a call with the caller's own token for account.
func callerAt(fake *dinterotest.Server, account string) upstream.Call {
	return upstream.Call{Authorization: fake.Bearer(account), RequestID: "req-42"}
}
