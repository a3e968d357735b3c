package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	authv1 "github.com/dintero-facade/dintero-facade/gen/dintero/auth/v1"
	"github.com/dintero-facade/dintero-facade/internal/dinterotest"
)

// Example shows an internal service deleting a client grant through the
// facade with the generated client: one gRPC call, the caller's Dintero
// token in the authorization metadata, and a deadline.
func Example() {
	addr, stop := exampleFacade()
	defer stop()

	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	client := authv1.NewAuthServiceClient(conn)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+yourDinteroToken)
	resp, err := client.DeleteClientGrant(ctx, &authv1.DeleteClientGrantRequest{
		Oid: "T12345678",
		Id:  "7e0e7d2c-1f4a-4b8e-9d55-1f2f9a3c0c11",
	})
	if err != nil {
		log.Fatal(err) // a gRPC status: NotFound, PermissionDenied, Unavailable...
	}
	g := resp.GetGrant()
	fmt.Println(g.GetId(), g.GetType(), g.GetDeletedAt().AsTime().Format(time.RFC3339))
	// Output: 7e0e7d2c-1f4a-4b8e-9d55-1f2f9a3c0c11 authorization_code 2026-11-26T06:00:00Z
}

// yourDinteroToken stands for the caller's Dintero access token.
const yourDinteroToken = "eyJhbGciOiJSUzI1NiJ9.your-token.signature"

// exampleFacade starts the facade on loopback in front of a stub Dintero
// that deletes any grant; it is the example's setup, not its subject.
func exampleFacade() (addr string, stop func()) {
	mux := http.NewServeMux()
	mux.HandleFunc("DELETE /v1/accounts/{oid}/auth/client-grants/{id}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(dinterotest.GrantJSON(r.PathValue("id")))
	})
	stub := httptest.NewServer(mux)
	cfg, err := parseConfig([]string{"--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--dintero-url", stub.URL + "/v1"}, func(string) string { return "" }, io.Discard)
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan listeners, 1), make(chan error, 1)
	go func() {
		quiet := slog.New(slog.NewJSONHandler(io.Discard, nil))
		done <- Run(ctx, Options{Config: cfg, Log: quiet, Audit: quiet, Version: "example", Ready: func(l listeners) { ready <- l }})
	}()
	l := <-ready
	return l.GRPC.String(), func() {
		cancel()
		<-done
		stub.Close()
	}
}
