package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/http/pprof"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	authv1 "github.com/dintero-facade/dintero-facade/gen/dintero/auth/v1"
)

// serveFeaturesFloor is the relay floor with every feature the facade
// has on the DeleteClientGrant path, each written the plain way with the
// standard library and the libraries the ecosystem reaches for: a deadline
// on every call, the caller's request id or a new one, returned in the
// header; a recovered panic; go-grpc-middleware's Prometheus metrics; the
// oid and grant id checked; the path escaped; the caller's bearer token
// checked and passed on; a trace that tells whether the request was sent;
// a gobreaker circuit breaker; retries of the idempotent DELETE on 429,
// 5xx and a request never sent; Dintero's answer read within a bound and
// decoded with encoding/json into the answer, its client secret withheld;
// and one JSON line per call, written to stderr before the answer.
//
// When httpAddr is not empty it also serves grpc-gateway's generated
// handler there, over a gRPC connection to itself, as grpc-gateway's own
// examples do, so that the JSON path goes through every interceptor too.
//
// It is what "every feature, written the afternoon's way" costs on the
// relay floor's libraries, measured in the same run as the facade: a goal
// set against the relay floor that this misses too is below what the
// features cost, and the facade is then held to this instead.
func serveFeaturesFloor(addr, target, httpAddr string) error {
	f, err := newFeaturesFloor(target, os.Stderr)
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	if a := os.Getenv("FACADEBENCH_FEATURES_PPROF"); a != "" {
		// Profiles of the relay with every feature, to set beside the
		// facade's (--pprof-addr): on a listener of their own.
		pl, err := net.Listen("tcp", a)
		if err != nil {
			return fmt.Errorf("FACADEBENCH_FEATURES_PPROF: %w", err)
		}
		pm := http.NewServeMux()
		pm.HandleFunc("/debug/pprof/", pprof.Index)
		pm.HandleFunc("/debug/pprof/profile", pprof.Profile)
		go func() { _ = (&http.Server{Handler: pm, ReadHeaderTimeout: 5 * time.Second}).Serve(pl) }()
	}
	reg := prometheus.NewRegistry()
	metrics := grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram())
	reg.MustRegister(metrics)
	gs := grpc.NewServer(grpc.ChainUnaryInterceptor(f.intercept, metrics.UnaryServerInterceptor()))
	authv1.RegisterAuthServiceServer(gs, f)
	metrics.InitializeMetrics(gs)
	if httpAddr == "" {
		return gs.Serve(l)
	}
	errs := make(chan error, 2)
	go func() { errs <- gs.Serve(l) }()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	mux := runtime.NewServeMux()
	if err := authv1.RegisterAuthServiceHandler(context.Background(), mux, cc); err != nil {
		return err
	}
	go func() {
		errs <- (&http.Server{Addr: httpAddr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}).ListenAndServe()
	}()
	return <-errs
}

// featuresFloor is the plain relay with every feature.
type featuresFloor struct {
	authv1.UnimplementedAuthServiceServer
	client  *http.Client
	base    string
	breaker *gobreaker.CircuitBreaker[*http.Response]
	log     *slog.Logger
	// oid and grantID are what a valid oid and grant id look like.
	oid, grantID *regexp.Regexp
}

func newFeaturesFloor(target string, logTo io.Writer) (*featuresFloor, error) {
	if _, err := url.Parse(target); err != nil {
		return nil, fmt.Errorf("features floor: target %q: %w", target, err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	return &featuresFloor{
		client:  &http.Client{Transport: tr},
		base:    strings.TrimSuffix(target, "/") + "/v1/accounts/",
		breaker: gobreaker.NewCircuitBreaker[*http.Response](gobreaker.Settings{Name: "dintero"}),
		log:     slog.New(slog.NewJSONHandler(logTo, nil)),
		oid:     regexp.MustCompile(`^[PT]([0-9]{3}|[0-9]{8})$`),
		grantID: regexp.MustCompile(`^[^\x00-\x1f\x7f]{1,256}$`),
	}, nil
}

// floorCall is what the interceptor writes in a call's line.
type floorCall struct {
	requestID, oid, grantID, dinteroRequestID string
	status, attempts                          int
	sent                                      bool
}

type floorCallKey struct{}

// intercept bounds the call's deadline, takes or makes its request id,
// recovers a panic, and writes the call's line before answering.
func (f *featuresFloor) intercept(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	md, _ := metadata.FromIncomingContext(ctx)
	id := ""
	if v := md.Get("x-request-id"); len(v) == 1 && len(v[0]) <= 128 {
		id = v[0]
	} else {
		var b [16]byte
		_, _ = rand.Read(b[:])
		id = hex.EncodeToString(b[:])
	}
	_ = grpc.SetHeader(ctx, metadata.Pairs("x-request-id", id))
	call := &floorCall{requestID: id}
	ctx = context.WithValue(ctx, floorCallKey{}, call)
	func() {
		defer func() {
			if p := recover(); p != nil {
				f.log.Error("recovered from a panic", "request_id", id)
				resp, err = nil, status.Error(codes.Internal, "internal error")
			}
		}()
		resp, err = handler(ctx, req)
	}()
	caller := ""
	if p, ok := peer.FromContext(ctx); ok {
		caller = p.Addr.String()
	}
	f.log.LogAttrs(ctx, slog.LevelInfo, "audit",
		slog.String("method", info.FullMethod), slog.String("code", status.Code(err).String()),
		slog.Duration("latency", time.Since(start)), slog.String("request_id", id), slog.String("caller", caller),
		slog.String("oid", call.oid), slog.String("grant_id", call.grantID), slog.Int("http_status", call.status),
		slog.Int("attempts", call.attempts), slog.Bool("sent", call.sent), slog.String("dintero_request_id", call.dinteroRequestID))
	return resp, err
}

// floorGrantJSON is Dintero's grant as encoding/json reads it.
type floorGrantJSON struct {
	ID       string   `json:"id"`
	ClientID string   `json:"client_id"`
	Audience string   `json:"audience"`
	Scope    []string `json:"scope"`
	Type     string   `json:"type"`
	OIDC     *struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
		Authority    string `json:"authority"`
	} `json:"oidc"`
	CreatedAt *time.Time `json:"created_at"`
	UpdatedAt *time.Time `json:"updated_at"`
	DeletedAt *time.Time `json:"deleted_at"`
	CreatedBy string     `json:"created_by"`
	DeletedBy string     `json:"deleted_by"`
}

// errFloorNotSent marks a request that did not leave: safe to send again.
var errFloorNotSent = errors.New("not sent")

func (f *featuresFloor) DeleteClientGrant(ctx context.Context, r *authv1.DeleteClientGrantRequest) (*authv1.DeleteClientGrantResponse, error) {
	call, _ := ctx.Value(floorCallKey{}).(*floorCall)
	if call == nil {
		call = &floorCall{}
	}
	call.oid, call.grantID = r.GetOid(), r.GetId()
	if !f.oid.MatchString(r.GetOid()) || !f.grantID.MatchString(r.GetId()) {
		return nil, status.Error(codes.InvalidArgument, "oid or id is not valid")
	}
	md, _ := metadata.FromIncomingContext(ctx)
	auth := md.Get("authorization")
	if len(auth) != 1 || !strings.HasPrefix(auth[0], "Bearer ") || strings.TrimSpace(auth[0][len("Bearer "):]) == "" {
		return nil, status.Error(codes.Unauthenticated, "a bearer token is required")
	}
	u := f.base + url.PathEscape(r.GetOid()) + "/auth/client-grants/" + url.PathEscape(r.GetId())
	var body []byte
	for attempt := 1; ; attempt++ {
		call.attempts = attempt
		resp, err := f.breaker.Execute(func() (*http.Response, error) {
			sent := false
			trace := &httptrace.ClientTrace{WroteHeaders: func() { sent = true }}
			req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodDelete, u, nil)
			if err != nil {
				return nil, err
			}
			req.Header.Set("Accept", "application/json")
			req.Header.Set("User-Agent", "facadebench-features-floor")
			req.Header.Set("Authorization", auth[0])
			if call.requestID != "" {
				req.Header.Set("X-Request-Id", call.requestID)
			}
			resp, err := f.client.Do(req)
			call.sent = call.sent || sent
			if err != nil && !sent {
				return nil, fmt.Errorf("%w: %w", errFloorNotSent, err)
			}
			return resp, err
		})
		if err != nil {
			if errors.Is(err, errFloorNotSent) && attempt < 3 && ctx.Err() == nil {
				continue
			}
			return nil, status.Error(codes.Unavailable, "Dintero could not be reached")
		}
		call.status, call.dinteroRequestID = resp.StatusCode, resp.Header.Get("Request-Id")
		body, err = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if err != nil {
			return nil, status.Error(codes.Unavailable, "Dintero's answer broke off")
		}
		if (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500) && attempt < 3 && ctx.Err() == nil {
			continue
		}
		if resp.StatusCode != http.StatusOK {
			return nil, status.Errorf(codes.Unknown, "Dintero answered HTTP %d", resp.StatusCode)
		}
		break
	}
	var g floorGrantJSON
	if err := json.Unmarshal(body, &g); err != nil {
		return nil, status.Error(codes.Internal, "Dintero's answer is not a grant")
	}
	grant := &authv1.ClientGrant{Id: g.ID, ClientId: g.ClientID, Audience: g.Audience, Scope: g.Scope, Type: g.Type,
		CreatedAt: floorTime(g.CreatedAt), UpdatedAt: floorTime(g.UpdatedAt), DeletedAt: floorTime(g.DeletedAt),
		CreatedBy: g.CreatedBy, DeletedBy: g.DeletedBy}
	if g.OIDC != nil {
		// The client secret is withheld, as the facade does by default.
		grant.Oidc = &authv1.Oidc{ClientId: g.OIDC.ClientID, Authority: g.OIDC.Authority}
	}
	return &authv1.DeleteClientGrantResponse{Grant: grant, Outcome: authv1.DeleteClientGrantResponse_OUTCOME_DELETED}, nil
}

func floorTime(t *time.Time) *timestamppb.Timestamp {
	if t == nil {
		return nil
	}
	return timestamppb.New(*t)
}
