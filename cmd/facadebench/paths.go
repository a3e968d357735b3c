package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	authv1 "github.com/dintero-facade/dintero-facade/gen/dintero/auth/v1"
	"github.com/dintero-facade/dintero-facade/internal/dinteromock"
)

// grantJSON is a Dintero grant of the size the real API returns (541 bytes).
const grantJSON = `{"id":"3d5c2f3a-6a1e-4e55-9d2f-2f1b8f0c9a77","client_id":"0d5f2f0e-2d0a-4b8e-8b8a-5e3f3c1f9e21","audience":"https://api.dintero.com/v1/accounts/T12345678","scope":["admin:accounts","write:checkout","read:checkout"],"type":"authorization_code","oidc":{"client_id":"oidc-client-7d1f","client_secret":"oidc-secret-not-a-real-one","authority":"https://identityserver.example.com/access"},"created_at":"2024-01-02T03:04:05.123456+02:00","updated_at":"2024-01-02T03:04:05Z","deleted_at":"2026-11-26T06:00:00.5Z","created_by":"user-creator-0001","deleted_by":"client-deleter-0001"}`

const grantPath = "/v1/accounts/T12345678/auth/client-grants/3d5c2f3a-6a1e-4e55-9d2f-2f1b8f0c9a77"

// path is one way to make the DeleteClientGrant call.
type path struct {
	name string
	// call makes one call; worker says which of the concurrent callers.
	call func(ctx context.Context, worker int) error
	// pid is the process between the load generator and the stub (a
	// proxy, the facade, the gRPC floor), 0 if none.
	pid int
	// stubPID is the stub Dintero's process, 0 if the path does not reach it.
	stubPID int
	// metricsURL is the middle process's /metrics, where the runtime's
	// CPU classes give the collector's share; empty if it has none.
	metricsURL string
}

// pids are the processes the benchmark started; 0 for one that did not run.
type pids struct {
	stub, goproxy, nginx, floor, relay, features, facade int
}

func makePaths(o options, addrs map[string]string, ps pids) ([]path, func(), error) {
	token, err := stubToken(addrs["stub"])
	if err != nil {
		return nil, nil, err
	}
	var closers []func()
	closeAll := func() {
		for _, c := range closers {
			c()
		}
	}
	httpPath := func(name, base string, pid int) path {
		tr := &http.Transport{MaxIdleConns: 512, MaxIdleConnsPerHost: 256, DisableCompression: true}
		closers = append(closers, tr.CloseIdleConnections)
		return path{name: name, pid: pid, stubPID: ps.stub, call: deleteOverHTTP(&http.Client{Transport: tr}, "http://"+base+grantPath, token)}
	}
	grpcClients := func(addr string) ([]authv1.AuthServiceClient, error) {
		cs, closeConns, err := dialGRPC(addr, o.grpcConns)
		closers = append(closers, closeConns)
		return cs, err
	}
	md := metadata.Pairs("authorization", "Bearer "+token)
	grpcDelete := func(name string, cs []authv1.AuthServiceClient, pid, stubPID int) path {
		return path{name: name, pid: pid, stubPID: stubPID, call: deleteOverGRPC(cs, token)}
	}

	direct := httpPath("direct", addrs["stub"], 0)
	paths := []path{direct, httpPath("goproxy", addrs["goproxy"], ps.goproxy)}
	if ps.nginx != 0 {
		paths = append(paths, httpPath("nginx", addrs["nginx"], ps.nginx))
	}
	floor, err := grpcClients(addrs["grpcfloor"])
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	relay, err := grpcClients(addrs["relayfloor"])
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	features, err := grpcClients(addrs["featuresfloor"])
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	facade, err := grpcClients(addrs["grpc"])
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	paths = append(paths,
		grpcDelete("grpc_floor", floor, ps.floor, 0),
		grpcDelete("relay_floor", relay, ps.relay, ps.stub),
		grpcDelete("relay_features", features, ps.features, ps.stub),
		grpcDelete("facade_grpc", facade, ps.facade, ps.stub),
		httpPath("facade_gateway", addrs["http"], ps.facade),
		httpPath("relay_features_gateway", addrs["featureshttp"], ps.features),
	)
	for i := range paths {
		if paths[i].pid == ps.facade {
			paths[i].metricsURL = "http://" + addrs["http"] + "/metrics"
		}
	}
	authz := &authv1.AuthorizeRequest{Oid: dinteromock.DefaultAccount, Audience: dinteromock.Audience(dinteromock.DefaultAccount), ResponseType: "authenticate",
		ClientId: dinteromock.DefaultApp, VerificationCode: "123456", State: "st", RedirectUri: dinteromock.DefaultCallback}
	paths = append(paths, path{name: "facade_authorize_grpc", pid: ps.facade, stubPID: ps.stub, metricsURL: "http://" + addrs["http"] + "/metrics", call: func(ctx context.Context, w int) error {
		resp, err := facade[w%len(facade)].Authorize(metadata.NewOutgoingContext(ctx, md), authz)
		if err == nil && resp.GetIdToken() == "" {
			err = errors.New("no id_token")
		}
		return err
	}})
	return paths, closeAll, nil
}

// deleteOverHTTP is a call that deletes the grant at u over HTTP with
// token, and checks the answer.
func deleteOverHTTP(client *http.Client, u, token string) func(ctx context.Context, _ int) error {
	return func(ctx context.Context, _ int) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodDelete, u, nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		if resp.StatusCode != 200 || n < 100 {
			return fmt.Errorf("HTTP %d, %d bytes", resp.StatusCode, n)
		}
		return nil
	}
}

// dialGRPC opens n connections to addr; closeAll closes those opened.
func dialGRPC(addr string, n int) (_ []authv1.AuthServiceClient, closeAll func(), _ error) {
	var ccs []*grpc.ClientConn
	closeAll = func() {
		for _, cc := range ccs {
			cc.Close()
		}
	}
	cs := make([]authv1.AuthServiceClient, n)
	for i := range cs {
		cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return nil, closeAll, err
		}
		ccs = append(ccs, cc)
		cs[i] = authv1.NewAuthServiceClient(cc)
	}
	return cs, closeAll, nil
}

// deleteOverGRPC is a call that deletes the benchmark's grant over gRPC
// with token, spread over cs by worker, and checks the answer.
func deleteOverGRPC(cs []authv1.AuthServiceClient, token string) func(ctx context.Context, w int) error {
	md := metadata.Pairs("authorization", "Bearer "+token)
	del := &authv1.DeleteClientGrantRequest{Oid: "T12345678", Id: "3d5c2f3a-6a1e-4e55-9d2f-2f1b8f0c9a77"}
	return func(ctx context.Context, w int) error {
		resp, err := cs[w%len(cs)].DeleteClientGrant(metadata.NewOutgoingContext(ctx, md), del)
		if err == nil && resp.GetGrant().GetId() == "" {
			err = errors.New("no grant")
		}
		return err
	}
}
