package service

import (
	"context"
	"crypto/x509"
	"log/slog"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
)

// Caller says who made a call, for the audit line and for policy.
type Caller struct {
	// Identity is the verified client certificate's URI SAN (a SPIFFE id,
	// say) or else its subject; empty without mutual TLS.
	Identity string
	// Addr is the peer's network address.
	Addr string
	// UserAgent is the caller's user agent.
	UserAgent string
}

// LogValue logs the caller, each string cut to a fixed length.
func (c Caller) LogValue() slog.Value {
	attrs := make([]slog.Attr, 0, 3)
	if c.Identity != "" {
		attrs = append(attrs, slog.String("identity", cut(c.Identity)))
	}
	return slog.GroupValue(append(attrs, slog.String("addr", cut(c.Addr)), slog.String("user_agent", cut(c.UserAgent)))...)
}

type callerKey struct{}

// WithCaller records the caller of a call that does not arrive over gRPC:
// the gateway's in-process path has no gRPC peer, so its HTTP handler says
// who called.
func WithCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// callerFrom returns who made the call: what WithCaller recorded, else the
// gRPC peer and its user agent.
func callerFrom(ctx context.Context) Caller {
	if c, ok := ctx.Value(callerKey{}).(Caller); ok {
		return c
	}
	var c Caller
	if p, ok := peer.FromContext(ctx); ok {
		if p.Addr != nil {
			c.Addr = p.Addr.String()
		}
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.VerifiedChains) > 0 && len(ti.State.VerifiedChains[0]) > 0 {
			c.Identity = Identity(ti.State.VerifiedChains[0][0])
		}
	}
	if ua := metadata.ValueFromIncomingContext(ctx, "user-agent"); len(ua) > 0 {
		c.UserAgent = ua[0]
	}
	return c
}

// Identity names the holder of a verified client certificate: its first
// URI SAN (such as spiffe://example.org/ns/payments/sa/refunds) when it has
// one, else its subject.
func Identity(cert *x509.Certificate) string {
	if len(cert.URIs) > 0 {
		return cert.URIs[0].String()
	}
	return cert.Subject.String()
}
