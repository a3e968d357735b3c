package service

import (
	"context"
	"crypto/x509"
	"log/slog"
	"net"
	"net/netip"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
)

// caller says who made a call, for the audit line and for policy.
type caller struct {
	// Identity is the verified client certificate's URI SAN (a SPIFFE id,
	// say) or else its subject; empty without mutual TLS.
	Identity string
	// Addr is the peer's network address.
	Addr string
	// UserAgent is the caller's user agent.
	UserAgent string
}

// LogValue logs the caller, each string cut to a fixed length.
func (c caller) LogValue() slog.Value {
	attrs := make([]slog.Attr, 0, 3)
	if c.Identity != "" {
		attrs = append(attrs, slog.String("identity", cut(c.Identity)))
	}
	return slog.GroupValue(append(attrs, slog.String("addr", cut(c.Addr)), slog.String("user_agent", cut(c.UserAgent)))...)
}

// callerFrom returns who made the call, as gRPC tells it: the peer, its
// verified client certificate, and the user-agent metadata. The JSON
// gateway's in-process calls carry the same.
func callerFrom(ctx context.Context) caller {
	var c caller
	if p, ok := peer.FromContext(ctx); ok {
		c.Addr = addrText(p.Addr)
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.VerifiedChains) > 0 && len(ti.State.VerifiedChains[0]) > 0 {
			c.Identity = certIdentity(ti.State.VerifiedChains[0][0])
		}
	}
	if ua := metadata.ValueFromIncomingContext(ctx, "user-agent"); len(ua) > 0 {
		c.UserAgent = ua[0]
	}
	return c
}

// certIdentity names the holder of a verified client certificate: its
// first URI SAN (such as spiffe://example.org/ns/payments/sa/refunds) when
// it has one, else its subject.
func certIdentity(cert *x509.Certificate) string {
	if len(cert.URIs) > 0 {
		return cert.URIs[0].String()
	}
	return cert.Subject.String()
}

// addrText is addr's String, in one allocation for a TCP address (whose
// String joins the parts in three): the same text, an IPv4 address mapped
// into IPv6 written as IPv4.
func addrText(addr net.Addr) string {
	switch a := addr.(type) {
	case nil:
		return ""
	case *net.TCPAddr:
		if a == nil {
			return a.String()
		}
		ap := a.AddrPort()
		if ap.Addr().Is4In6() {
			ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		}
		var buf [64]byte
		return string(ap.AppendTo(buf[:0]))
	}
	return addr.String()
}
