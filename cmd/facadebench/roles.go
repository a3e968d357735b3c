package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"

	"google.golang.org/grpc"
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
	f, err := newFloorServer()
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	gs := grpc.NewServer()
	authv1.RegisterAuthServiceServer(gs, f)
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
