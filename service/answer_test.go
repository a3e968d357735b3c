package service_test

import (
	"net"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	authv1 "github.com/dintero-facade/dintero-facade/gen/dintero/auth/v1"
	"github.com/dintero-facade/dintero-facade/service"
	"github.com/dintero-facade/dintero-facade/upstream"
)

// TestGrantToProto: the answer made in one allocation is the grant field
// for field, each timestamp the same instant as timestamppb.New makes it
// (zones and nanoseconds included), a missing one and a missing oidc
// unset.
func TestGrantToProto(t *testing.T) {
	oslo := time.FixedZone("CET", 3600)
	created, updated, deleted := time.Date(2024, 1, 2, 3, 4, 5, 123456000, oslo), time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC), time.Date(1970, 1, 1, 0, 0, 0, 1, time.UTC)
	g := &upstream.Grant{ID: "g", ClientID: "c", Audience: "a", Scope: []string{"s1", "s2"}, Type: "t",
		OIDC: &upstream.OIDC{ClientID: "oc", ClientSecret: "os", Authority: "oa"}, CreatedAt: &created, UpdatedAt: &updated, DeletedAt: &deleted,
		CreatedBy: "cb", DeletedBy: "db"}
	want := &authv1.ClientGrant{Id: "g", ClientId: "c", Audience: "a", Scope: []string{"s1", "s2"}, Type: "t",
		Oidc: &authv1.Oidc{ClientId: "oc", ClientSecret: "os", Authority: "oa"}, CreatedAt: timestamppb.New(created), UpdatedAt: timestamppb.New(updated),
		DeletedAt: timestamppb.New(deleted), CreatedBy: "cb", DeletedBy: "db"}
	if got := service.GrantToProto(g); !proto.Equal(got, want) {
		t.Errorf("GrantToProto = %v; want %v", got, want)
	}
	if got := service.GrantToProto(&upstream.Grant{ID: "g"}); !proto.Equal(got, &authv1.ClientGrant{Id: "g"}) || got.CreatedAt != nil || got.Oidc != nil {
		t.Errorf("GrantToProto of a bare grant = %v; want only the id", got)
	}
}

// TestAddrText: a peer's address is logged as its String writes it.
func TestAddrText(t *testing.T) {
	for _, a := range []net.Addr{
		&net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 49352},
		&net.TCPAddr{IP: net.IPv4(10, 1, 2, 3), Port: 1}, // 16 bytes, IPv4 in IPv6
		&net.TCPAddr{IP: net.ParseIP("::1"), Port: 443},
		&net.TCPAddr{IP: net.ParseIP("fe80::1"), Port: 8443, Zone: "eth0"},
		&net.TCPAddr{IP: net.ParseIP("2001:db8::ffff:1.2.3.4"), Port: 0},
		&net.UnixAddr{Name: "/run/x.sock", Net: "unix"},
		(*net.TCPAddr)(nil),
		nil,
	} {
		want := ""
		if a != nil {
			want = a.String()
		}
		if got := service.AddrText(a); got != want {
			t.Errorf("AddrText(%#v) = %q; want %q", a, got, want)
		}
	}
}
