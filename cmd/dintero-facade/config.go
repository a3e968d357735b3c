package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/dintero-facade/dintero-facade/internal/flagenv"
	"github.com/dintero-facade/dintero-facade/internal/reload"
	"github.com/dintero-facade/dintero-facade/service"
	"github.com/dintero-facade/dintero-facade/upstream"
)

// envPrefix prefixes the environment variable of every flag.
const envPrefix = "DINTERO_FACADE_"

// Config is the facade's effective configuration. Defaults come from
// options; it can be printed whole, because the credentials mask their
// secret.
type Config struct {
	GRPCAddr        string
	HTTPAddr        string
	HealthAddr      string
	DinteroURL      string
	DinteroTimeout  time.Duration
	MaxDeadline     time.Duration
	ShutdownDelay   time.Duration
	ShutdownGrace   time.Duration
	LogLevel        slog.Level
	MaxRecvMsgBytes int
	MaxConcurrent   int
	MetricsAddr     string
	PprofAddr       string
	TLSCert         string
	TLSKey          string
	ClientCA        string
	// Mock runs a local mock Dintero in process and points the facade at
	// it, with the mock's client credentials: a demo needing no account.
	Mock bool
	// Tracing is on when the standard OTEL_EXPORTER_OTLP_ENDPOINT (or
	// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set; the exporter reads its
	// settings from the standard OTEL_* variables.
	Tracing         bool
	CredentialsFile string
	PolicyFile      string
	// WarmTimeout bounds the warm-up before health reports SERVING.
	WarmTimeout time.Duration
	// MaxConnectionAge, when positive, asks a caller's gRPC connection to
	// go (GOAWAY) once it is that old, so that callers spread over new
	// replicas; MaxConnectionAgeGrace is then left to its calls.
	MaxConnectionAge      time.Duration
	MaxConnectionAgeGrace time.Duration
	// KeepaliveMinTime is the shortest interval between a caller's
	// keepalive pings the gRPC server tolerates.
	KeepaliveMinTime time.Duration
	// IDTokenIssuer, when set, must be the iss of authorize's id_tokens.
	IDTokenIssuer string
	// RejectInvalidIDToken makes an id_token that fails verification an
	// error rather than an answer marked invalid.
	RejectInvalidIDToken bool
	// ReturnOIDCClientSecret returns the deleted grant's oidc.client_secret
	// to the caller instead of withholding it.
	ReturnOIDCClientSecret bool
	// Policy is the loaded --policy-file, nil without one.
	Policy *service.Policy
	// EnvCredentials are the environment's one-account shortcut (never
	// flags, which ps shows); Credentials add those of --credentials-file.
	EnvCredentials []upstream.Credentials
	Credentials    []upstream.Credentials
}

// options lists every flag, bound to c's fields.
func (c *Config) options() []flagenv.Option {
	return []flagenv.Option{
		opt("grpc-addr", &c.GRPCAddr, ":9090", "address of the gRPC server"),
		opt("http-addr", &c.HTTPAddr, ":8080", "address of the JSON gateway, /healthz and /openapi.json"),
		opt("health-addr", &c.HealthAddr, "", "address of a plain (never TLS) listener for probes: gRPC health and GET /healthz; empty: off"),
		opt("dintero-url", &c.DinteroURL, upstream.DefaultBaseURL, "Dintero's API base URL: https, or http to a loopback host"),
		opt("dintero-timeout", &c.DinteroTimeout, 10*time.Second, "bound of a call whose caller set no deadline, and of a token fetch"),
		opt("max-deadline", &c.MaxDeadline, 20*time.Second, "longest a call may take: a caller's longer deadline is cut to it, and the HTTP server's write timeout is set above it"),
		opt("warm-timeout", &c.WarmTimeout, 10*time.Second, "at start, how long to try to connect to Dintero and fetch the tokens and signing keys of the accounts with credentials before reporting SERVING (it serves either way, and keeps trying); 0: no warm-up"),
		opt("shutdown-delay", &c.ShutdownDelay, time.Duration(0), "on SIGTERM, how long to keep accepting while reporting NOT_SERVING (a few seconds on Kubernetes)"),
		opt("shutdown-grace", &c.ShutdownGrace, 20*time.Second, "on SIGTERM, how long calls in flight may take to finish"),
		opt("log-level", &c.LogLevel, slog.LevelInfo, "log level: debug, info, warn or error"),
		opt("max-recv-msg-bytes", &c.MaxRecvMsgBytes, 16<<10, "largest gRPC request accepted, in bytes; also bounds metadata and HTTP headers"),
		opt("max-concurrent-upstream", &c.MaxConcurrent, 256, "calls to Dintero in flight at most; a call over it gets ResourceExhausted at once. The gRPC server keeps as many workers (64 to 4096), whose stacks count towards memory"),
		opt("metrics-addr", &c.MetricsAddr, "", "address of a separate server for /metrics; empty serves it on --http-addr"),
		opt("pprof-addr", &c.PprofAddr, "", "address of a separate server for /debug/pprof/ (profiling); empty: off. Loopback only"),
		opt("mock", &c.Mock, false, "serve a local mock Dintero in process and call it instead of --dintero-url, with its client credentials (a demo needing no Dintero account)"),
		opt("credentials-file", &c.CredentialsFile, "", "YAML or JSON list of {account_id, client_id, client_secret, audience}: the facade's credentials per account, reloaded on SIGHUP and when the file changes"),
		opt("policy-file", &c.PolicyFile, "", "YAML or JSON policy: which mTLS identities may use the facade's credentials, on which accounts and operations (needs --client-ca)"),
		opt("tls-cert", &c.TLSCert, "", "PEM certificate for TLS on both listeners (with --tls-key); reloaded when the file changes"),
		opt("tls-key", &c.TLSKey, "", "PEM private key for TLS on both listeners (with --tls-cert)"),
		opt("client-ca", &c.ClientCA, "", "PEM CA bundle: require callers' certificates signed by it (mutual TLS; needs --tls-cert)"),
		opt("id-token-issuer", &c.IDTokenIssuer, "", "the iss authorize's id_tokens must have; empty: iss is not checked"),
		opt("reject-invalid-id-token", &c.RejectInvalidIDToken, false, "answer Unauthenticated when authorize's id_token fails verification, instead of the answer marked invalid (the code is spent either way)"),
		opt("return-oidc-client-secret", &c.ReturnOIDCClientSecret, false, "return the deleted grant's oidc.client_secret (its identity provider's secret) to the caller; by default it is withheld and the audit line says so"),
		opt("grpc-max-connection-age", &c.MaxConnectionAge, 5*time.Minute, "how long a caller's gRPC connection may last before the server asks it to reconnect (GOAWAY; ±10 % jitter), so that callers spread over new replicas; 0: forever"),
		opt("grpc-max-connection-age-grace", &c.MaxConnectionAgeGrace, 30*time.Second, "after --grpc-max-connection-age, how long the connection's calls in flight may take before it is closed; keep it above --max-deadline"),
		opt("grpc-keepalive-min-time", &c.KeepaliveMinTime, 10*time.Second, "the shortest interval between a caller's keepalive pings the gRPC server tolerates, with or without calls in flight; a caller pinging more often is sent GOAWAY (ENHANCE_YOUR_CALM)"),
	}
}

// opt is one flag of options.
func opt(name string, field, def any, help string) flagenv.Option {
	return flagenv.Option{Name: name, Field: field, Default: def, Help: help}
}

// LogValue logs every option, whether tracing is on, and the credentials,
// whose secrets mask themselves.
func (c Config) LogValue() slog.Value {
	attrs := append(flagenv.Attrs(c.options()), slog.Bool("tracing", c.Tracing))
	creds := make([]slog.Attr, 0, len(c.Credentials))
	for _, cr := range c.Credentials {
		creds = append(creds, slog.Any(cr.AccountID, cr))
	}
	attrs = append(attrs, slog.Attr{Key: "credentials", Value: slog.GroupValue(creds...)})
	return slog.GroupValue(attrs...)
}

// parseConfig reads flags from args and, for each flag not given, its
// environment variable; the flag wins. getenv reads the environment.
func parseConfig(args []string, getenv func(string) string, usageOut io.Writer) (Config, error) {
	var cfg Config
	fs := flag.NewFlagSet("dintero-facade", flag.ContinueOnError)
	fs.SetOutput(usageOut)
	flagenv.Register(fs, envPrefix, cfg.options())
	fs.Usage = func() {
		fmt.Fprintf(usageOut, "Usage of dintero-facade:\n")
		fs.PrintDefaults()
		fmt.Fprintf(usageOut, "\nDintero client credentials of one account come from the environment only:\n")
		for _, v := range reload.CredentialVars {
			fmt.Fprintf(usageOut, "  %s\n    \t%s\n", v.Name, v.Help)
		}
	}
	given, err := flagenv.Parse(fs, envPrefix, args, getenv)
	if err != nil {
		return cfg, err
	}
	if err := upstream.CheckBaseURL(cfg.DinteroURL); err != nil {
		return cfg, fmt.Errorf("--dintero-url: %w", err)
	}
	if cfg.DinteroTimeout <= 0 || cfg.MaxDeadline <= 0 || cfg.ShutdownGrace <= 0 || cfg.ShutdownDelay < 0 || cfg.WarmTimeout < 0 || cfg.MaxRecvMsgBytes <= 0 || cfg.MaxConcurrent <= 0 {
		return cfg, errors.New("--dintero-timeout, --max-deadline, --shutdown-grace, --max-recv-msg-bytes and --max-concurrent-upstream must be positive, --shutdown-delay and --warm-timeout not negative")
	}
	if cfg.DinteroTimeout > cfg.MaxDeadline {
		return cfg, fmt.Errorf("--dintero-timeout %v is longer than --max-deadline %v", cfg.DinteroTimeout, cfg.MaxDeadline)
	}
	if cfg.PprofAddr != "" {
		if host, _, err := net.SplitHostPort(cfg.PprofAddr); err != nil || !isLoopbackHost(host) {
			return cfg, fmt.Errorf("--pprof-addr %q: profiles expose the process's memory; listen on a loopback address only (127.0.0.1:6060, [::1]:6060, localhost:6060)", cfg.PprofAddr)
		}
	}
	if (cfg.TLSCert == "") != (cfg.TLSKey == "") {
		return cfg, errors.New("--tls-cert and --tls-key go together")
	}
	if cfg.ClientCA != "" && cfg.TLSCert == "" {
		return cfg, errors.New("--client-ca needs --tls-cert and --tls-key: mutual TLS is TLS first")
	}
	cfg.Tracing = getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
	creds, err := reload.CredentialsFromEnv(getenv)
	if err != nil {
		return cfg, err
	}
	if creds != nil {
		cfg.EnvCredentials = []upstream.Credentials{*creds}
	}
	cfg.Credentials = cfg.EnvCredentials
	if cfg.CredentialsFile != "" {
		if cfg.Credentials, err = reload.LoadCredentials(cfg.CredentialsFile, cfg.EnvCredentials); err != nil {
			return cfg, err
		}
	}
	if cfg.PolicyFile != "" {
		if cfg.ClientCA == "" {
			return cfg, errors.New("--policy-file needs --client-ca: without mutual TLS there is no caller identity to trust")
		}
		if cfg.Policy, err = service.LoadPolicy(cfg.PolicyFile); err != nil {
			return cfg, fmt.Errorf("--policy-file: %w", err)
		}
	}
	if cfg.Mock && given["dintero-url"] {
		return cfg, errors.New("--mock and --dintero-url exclude each other")
	}
	return cfg, nil
}

// envName is the environment variable of a flag.
func envName(flag string) string { return flagenv.EnvName(envPrefix, flag) }

// isLoopbackHost reports whether host names only loopback addresses. An
// empty host (all interfaces) does not.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
