package upstream_test

import (
	"context"
	"testing"

	"github.com/dintero-facade/dintero-facade/internal/dinterotest"
	"github.com/dintero-facade/dintero-facade/upstream"
)

func benchClient(b *testing.B) *upstream.Client {
	c, err := upstream.New(upstream.Options{BaseURL: "http://dintero.invalid/v1", Transport: dinterotest.MemTransport{Handler: dinterotest.FastDintero()}})
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// BenchmarkDeleteClientGrant is the client's cost per DELETE, over an
// in-memory transport.
func BenchmarkDeleteClientGrant(b *testing.B) {
	c := benchClient(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := c.DeleteClientGrant(ctx, callerToken, "T12345678", "3d5c2f3a-6a1e-4e55-9d2f-2f1b8f0c9a77"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAuthorize is the client's cost per authorize.
func BenchmarkAuthorize(b *testing.B) {
	c := benchClient(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := c.Authorize(ctx, callerToken, allParams); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeGrant is the JSON decoding of Dintero's grant alone.
func BenchmarkDecodeGrant(b *testing.B) {
	body := dinterotest.GrantJSON("3d5c2f3a-6a1e-4e55-9d2f-2f1b8f0c9a77")
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := upstream.DecodeGrant(body); err != nil {
			b.Fatal(err)
		}
	}
}
