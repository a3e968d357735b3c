package upstream_test

import (
	"context"
	"testing"

	"github.com/dintero-facade/dintero-facade/internal/dinteromock"
	"github.com/dintero-facade/dintero-facade/internal/dinterotest"
	"github.com/dintero-facade/dintero-facade/upstream"
)

// benchClient is a client of the mock in its stateless mode, over an
// in-memory transport, and a caller token for T12345678.
func benchClient(b *testing.B) (*upstream.Client, upstream.Call) {
	key, _ := dinterotest.TestKeys(b)
	m, err := dinteromock.New(dinteromock.Options{Stateless: true, Key: key})
	if err != nil {
		b.Fatal(err)
	}
	tok, err := m.IssueToken("bench", dinteromock.Audience("T12345678"), []string{"admin:accounts"})
	if err != nil {
		b.Fatal(err)
	}
	c, err := upstream.New(upstream.Options{BaseURL: "https://api.dintero.com/v1", Transport: dinterotest.MemTransport{Handler: m}})
	if err != nil {
		b.Fatal(err)
	}
	return c, upstream.Call{Authorization: "Bearer " + tok}
}

// BenchmarkDeleteClientGrant is the client's cost per DELETE, over an
// in-memory transport (the mock's cost included).
func BenchmarkDeleteClientGrant(b *testing.B) {
	c, call := benchClient(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := c.DeleteClientGrant(ctx, call, "T12345678", "3d5c2f3a-6a1e-4e55-9d2f-2f1b8f0c9a77"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAuthorize is the client's cost per authorize.
func BenchmarkAuthorize(b *testing.B) {
	c, call := benchClient(b)
	ctx := context.Background()
	p := upstream.AuthorizeParams{OID: "T12345678", Audience: dinteromock.Audience("T12345678"), ResponseType: "authenticate",
		ClientID: dinteromock.DefaultApp, RedirectURI: dinteromock.DefaultCallback, VerificationCode: "123456", State: "s"}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := c.Authorize(ctx, call, p); err != nil {
			b.Fatal(err)
		}
	}
}
