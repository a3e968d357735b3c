package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	authv1 "github.com/dintero-facade/dintero-facade/gen/dintero/auth/v1"
	"github.com/dintero-facade/dintero-facade/internal/dinteromock"
)

// serveStub is the stub Dintero: the one fake Dintero, internal/dinteromock,
// in its fast stateless mode (every DELETE finds its grant, codes are not
// spent, tokens are checked against a cache of verified ones).
func serveStub(addr string) error {
	m, err := dinteromock.New(dinteromock.Options{Stateless: true})
	if err != nil {
		return err
	}
	return (&http.Server{Addr: addr, Handler: m, ReadHeaderTimeout: 5 * time.Second}).ListenAndServe()
}

// stubToken gets an access token from the stub with the mock's client
// credentials, for the callers that bring their own.
func stubToken(addr string) (string, error) {
	return stubTokenAt("http://"+addr, http.DefaultClient)
}

// stubTokenAt is stubToken for the stub at base, through client.
func stubTokenAt(base string, client *http.Client) (string, error) {
	body := `{"grant_type":"client_credentials","audience":"` + dinteromock.Audience(dinteromock.DefaultAccount) + `"}`
	req, err := http.NewRequest(http.MethodPost, base+"/v1/accounts/"+dinteromock.DefaultAccount+"/auth/token", strings.NewReader(body))
	if err != nil {
		return "", err
	}
	req.SetBasicAuth(dinteromock.DefaultClientID, dinteromock.DefaultClientSecret)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var at struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&at); err != nil || at.AccessToken == "" {
		return "", fmt.Errorf("no token from the stub (HTTP %d): %v", resp.StatusCode, err)
	}
	return at.AccessToken, nil
}

// serveGoProxy is Go's httputil.ReverseProxy in front of target, with a
// pool sized for the load (the default keeps two idle connections per host,
// which would make it a strawman).
func serveGoProxy(addr, target string) error {
	u, err := url.Parse(target)
	if err != nil {
		return err
	}
	p := &httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(u) },
		Transport: &http.Transport{MaxIdleConns: 512, MaxIdleConnsPerHost: 256, IdleConnTimeout: 90 * time.Second},
	}
	return (&http.Server{Addr: addr, Handler: p, ReadHeaderTimeout: 5 * time.Second}).ListenAndServe()
}

// serveGRPCFloor is the cheapest gRPC server for the call: grpc-go with
// its defaults, answering DeleteClientGrant with a grant decoded once at
// start, and calling nothing. The facade over gRPC cannot be faster than
// this, so it bounds what the facade can reach on the machine.
func serveGRPCFloor(addr string) error {
	return serveFloor(addr, func(f floorServer) authv1.AuthServiceServer { return f })
}

// serveFloor serves on addr, with grpc-go's defaults, what as makes of a
// floor server.
func serveFloor(addr string, as func(floorServer) authv1.AuthServiceServer) error {
	f, err := newFloorServer()
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	gs := grpc.NewServer()
	authv1.RegisterAuthServiceServer(gs, as(f))
	return gs.Serve(l)
}

// newFloorServer decodes the grant the floor answers with.
func newFloorServer() (floorServer, error) {
	grant := &authv1.ClientGrant{}
	if err := protojson.Unmarshal([]byte(grantJSON), grant); err != nil {
		return floorServer{}, fmt.Errorf("the grant JSON as a ClientGrant: %w", err)
	}
	return floorServer{resp: &authv1.DeleteClientGrantResponse{Grant: grant}}, nil
}

// floorServer answers DeleteClientGrant with resp; Authorize is left
// unimplemented.
type floorServer struct {
	authv1.UnimplementedAuthServiceServer
	resp *authv1.DeleteClientGrantResponse
}

func (f floorServer) DeleteClientGrant(context.Context, *authv1.DeleteClientGrantRequest) (*authv1.DeleteClientGrantResponse, error) {
	return f.resp, nil
}

// serveRelayFloor is the cheapest gRPC relay to Dintero: grpc-go and
// net/http's client (HTTP/2 over TLS, trusting SSL_CERT_FILE), both with
// their defaults, sending each DeleteClientGrant on as one DELETE with the
// caller's authorization and answering a grant decoded once at start. It
// checks nothing, logs nothing, counts nothing and retries nothing, so any
// facade built on these two libraries costs at least what it does.
func serveRelayFloor(addr, target string) error {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	return serveFloor(addr, func(f floorServer) authv1.AuthServiceServer {
		return relayFloor{floorServer: f, client: &http.Client{Transport: tr}, url: target + grantPath}
	})
}

// relayFloor relays DeleteClientGrant to url.
type relayFloor struct {
	floorServer
	client *http.Client
	url    string
}

func (f relayFloor) DeleteClientGrant(ctx context.Context, _ *authv1.DeleteClientGrantRequest) (*authv1.DeleteClientGrantResponse, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, f.url, nil)
	if err != nil {
		return nil, err
	}
	md, _ := metadata.FromIncomingContext(ctx)
	if a := md.Get("authorization"); len(a) == 1 {
		req.Header.Set("Authorization", a[0])
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	if resp.StatusCode != http.StatusOK {
		return nil, status.Errorf(codes.Unknown, "HTTP %d", resp.StatusCode)
	}
	return f.resp, nil
}
