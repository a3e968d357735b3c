package dinterotest

import (
	"crypto/tls"
	"testing"

	"github.com/dintero-facade/dintero-facade/internal/testpki"
)

// PKI is a throwaway certificate authority with a server certificate for
// loopback, made for one test (internal/testpki) and written to its
// temporary directory.
type PKI struct{ *testpki.PKI }

// NewPKI makes a CA and a loopback server certificate in the test's
// temporary directory.
func NewPKI(t testing.TB) *PKI {
	t.Helper()
	p, err := testpki.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &PKI{p}
}

// Client issues a client certificate with subject cn and, when uri is not
// empty, that URI SAN (a SPIFFE id, say).
func (p *PKI) Client(t testing.TB, cn, uri string) tls.Certificate {
	t.Helper()
	c, err := p.PKI.Client(cn, uri)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
