package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
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
	// KeysAccounts bounds the accounts whose signing keys are kept.
	KeysAccounts int
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
		opt("http-addr", &c.HTTPAddr, ":8080", "address of the JSON gateway, /healthz, /livez and /openapi.json (and /metrics unless --metrics-addr), over HTTP/1.1 and HTTP/2; JSON only: a gRPC call there is refused, naming --grpc-addr"),
		opt("health-addr", &c.HealthAddr, "", "address of a plain (never TLS) listener for probes: gRPC health, GET /healthz and GET /livez; empty: off"),
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
		opt("mock", &c.Mock, false, "serve a local mock Dintero in process and call it instead of --dintero-url, with its client credentials (a demo needing no Dintero account); the servers then listen on 127.0.0.1 unless --grpc-addr or --http-addr say otherwise"),
		opt("credentials-file", &c.CredentialsFile, "", "YAML or JSON list of {account_id, client_id, client_secret, audience}: the facade's credentials per account, reloaded on SIGHUP and when the file changes"),
		opt("policy-file", &c.PolicyFile, "", "YAML or JSON policy: which mTLS identities may use the facade's credentials, on which accounts and operations (needs --client-ca)"),
		opt("tls-cert", &c.TLSCert, "", "PEM certificate for TLS on both listeners (with --tls-key); reloaded when the file changes"),
		opt("tls-key", &c.TLSKey, "", "PEM private key for TLS on both listeners (with --tls-cert)"),
		opt("client-ca", &c.ClientCA, "", "PEM CA bundle: require callers' certificates signed by it (mutual TLS; needs --tls-cert)"),
		opt("id-token-issuer", &c.IDTokenIssuer, "", "the iss authorize's id_tokens must have; empty: iss is not checked"),
		opt("id-token-keys-accounts", &c.KeysAccounts, 1000, "accounts whose signing keys are kept, the least recently used dropped first (and fetched again before their next Authorize); a caller with its own token brings in at most a quarter of them. Size it above the accounts called within an hour"),
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
// environment variable; the flag wins. getenv reads the environment. On
// --help it prints the usage to usageOut and returns flag.ErrHelp; a bad
// flag or value is an error of one line, printed by the caller.
func parseConfig(args []string, getenv func(string) string, usageOut io.Writer) (Config, error) {
	var cfg Config
	fs := flag.NewFlagSet("dintero-facade", flag.ContinueOnError)
	flagenv.Register(fs, envPrefix, cfg.options())
	given, err := flagenv.Parse(fs, envPrefix, args, getenv)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(usageOut, "Usage of dintero-facade:\n")
		fs.SetOutput(usageOut)
		fs.PrintDefaults()
		fmt.Fprintf(usageOut, "\nDintero client credentials of one account come from the environment only:\n")
		for _, v := range reload.CredentialVars {
			fmt.Fprintf(usageOut, "  %s\n    \t%s\n", v.Name, v.Help)
		}
		return cfg, err
	}
	if err != nil {
		return cfg, err
	}
	if cfg.Mock {
		// A demo listens on loopback unless told otherwise.
		for name, addr := range map[string]*string{"grpc-addr": &cfg.GRPCAddr, "http-addr": &cfg.HTTPAddr} {
			if !given[name] {
				*addr = loopback(*addr)
			}
		}
	}
	if err := upstream.CheckBaseURL(cfg.DinteroURL); err != nil {
		return cfg, fmt.Errorf("--dintero-url: %w", err)
	}
	for _, c := range []struct {
		name string
		bad  bool
		want string
	}{
		{"dintero-timeout", cfg.DinteroTimeout <= 0, "positive, a duration such as 10s"},
		{"max-deadline", cfg.MaxDeadline <= 0, "positive, a duration such as 20s or 1m30s"},
		{"shutdown-grace", cfg.ShutdownGrace <= 0, "positive, a duration such as 20s"},
		{"shutdown-delay", cfg.ShutdownDelay < 0, "0 or more, a duration such as 5s"},
		{"warm-timeout", cfg.WarmTimeout < 0, "0 (no warm-up) or more, a duration such as 10s"},
		{"max-recv-msg-bytes", cfg.MaxRecvMsgBytes <= 0, "positive, a whole number such as 16384"},
		{"max-concurrent-upstream", cfg.MaxConcurrent <= 0, "positive, a whole number such as 256"},
		{"id-token-keys-accounts", cfg.KeysAccounts <= 0, "positive, a whole number such as 1000"},
	} {
		if c.bad {
			return cfg, fmt.Errorf("--%s (%s) %s: want %s", c.name, envName(c.name), fs.Lookup(c.name).Value, c.want)
		}
	}
	if cfg.DinteroTimeout > cfg.MaxDeadline {
		return cfg, fmt.Errorf("--dintero-timeout %v is longer than --max-deadline %v: a call without a deadline of its own would be cut", cfg.DinteroTimeout, cfg.MaxDeadline)
	}
	if cfg.PprofAddr != "" {
		if host, _, err := net.SplitHostPort(cfg.PprofAddr); err != nil || !upstream.IsLoopbackHost(host) {
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
		return cfg, fmt.Errorf("--mock and --dintero-url (or %s) exclude each other: --mock calls a mock of its own", envName("dintero-url"))
	}
	return cfg, nil
}

// envName is the environment variable of a flag.
func envName(flag string) string { return flagenv.EnvName(envPrefix, flag) }

// loopback is addr on the loopback interface: its port on 127.0.0.1 when
// it names no host.
func loopback(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host != "" {
		return addr
	}
	return net.JoinHostPort("127.0.0.1", port)
}
