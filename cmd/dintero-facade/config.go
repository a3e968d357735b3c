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

	"github.com/dintero-facade/dintero-facade/service"
	"github.com/dintero-facade/dintero-facade/upstream"
)

// envPrefix prefixes the environment variable of every flag.
const envPrefix = "DINTERO_FACADE_"

// Config is the facade's effective configuration. Defaults are set by
// parseConfig; it can be printed whole, because the credentials mask their
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
	// Policy is the loaded --policy-file, nil without one.
	Policy *service.Policy
	// EnvCredentials are the environment's one-account shortcut (never
	// flags, which ps shows); Credentials add those of --credentials-file.
	EnvCredentials []upstream.Credentials
	Credentials    []upstream.Credentials
}

// LogValue logs the configuration with the client secret masked.
func (c Config) LogValue() slog.Value {
	attrs := []slog.Attr{
		slog.String("grpc_addr", c.GRPCAddr),
		slog.String("http_addr", c.HTTPAddr),
		slog.String("health_addr", c.HealthAddr),
		slog.String("dintero_url", c.DinteroURL),
		slog.String("dintero_timeout", c.DinteroTimeout.String()),
		slog.String("max_deadline", c.MaxDeadline.String()),
		slog.String("shutdown_delay", c.ShutdownDelay.String()),
		slog.String("shutdown_grace", c.ShutdownGrace.String()),
		slog.String("log_level", c.LogLevel.String()),
		slog.Int("max_recv_msg_bytes", c.MaxRecvMsgBytes),
		slog.Int("max_concurrent_upstream", c.MaxConcurrent),
		slog.String("metrics_addr", c.MetricsAddr),
		slog.String("pprof_addr", c.PprofAddr),
		slog.String("tls_cert", c.TLSCert),
		slog.String("tls_key", c.TLSKey),
		slog.String("client_ca", c.ClientCA),
		slog.Bool("tracing", c.Tracing),
		slog.Bool("mock", c.Mock),
	}
	attrs = append(attrs, slog.String("credentials_file", c.CredentialsFile), slog.String("policy_file", c.PolicyFile))
	creds := make([]slog.Attr, 0, len(c.Credentials))
	for _, cr := range c.Credentials {
		creds = append(creds, slog.Any(cr.AccountID, cr))
	}
	attrs = append(attrs, slog.Attr{Key: "credentials", Value: slog.GroupValue(creds...)})
	return slog.GroupValue(attrs...)
}

// parseConfig reads flags from args and, for each flag not given, its
// environment variable DINTERO_FACADE_<FLAG_IN_UPPER_SNAKE>; the flag wins.
// getenv reads the environment.
func parseConfig(args []string, getenv func(string) string, usageOut io.Writer) (Config, error) {
	cfg := Config{LogLevel: slog.LevelInfo}
	fs := flag.NewFlagSet("dintero-facade", flag.ContinueOnError)
	fs.SetOutput(usageOut)
	fs.StringVar(&cfg.GRPCAddr, "grpc-addr", ":9090", "address of the gRPC server")
	fs.StringVar(&cfg.HTTPAddr, "http-addr", ":8080", "address of the JSON gateway, /healthz and /openapi.json")
	fs.StringVar(&cfg.HealthAddr, "health-addr", "", "address of a plain (never TLS) listener for probes: gRPC health and GET /healthz; empty: off")
	fs.StringVar(&cfg.DinteroURL, "dintero-url", "https://api.dintero.com/v1", "Dintero's API base URL: https, or http to a loopback host")
	fs.DurationVar(&cfg.DinteroTimeout, "dintero-timeout", 10*time.Second, "bound of a call whose caller set no deadline, and of a token fetch")
	fs.DurationVar(&cfg.MaxDeadline, "max-deadline", 20*time.Second, "longest a call may take: a caller's longer deadline is cut to it, and the HTTP server's write timeout is set above it")
	fs.DurationVar(&cfg.ShutdownDelay, "shutdown-delay", 0, "on SIGTERM, how long to keep accepting while reporting NOT_SERVING (a few seconds on Kubernetes)")
	fs.DurationVar(&cfg.ShutdownGrace, "shutdown-grace", 20*time.Second, "on SIGTERM, how long calls in flight may take to finish")
	fs.TextVar(&cfg.LogLevel, "log-level", slog.LevelInfo, "log level: debug, info, warn or error")
	fs.IntVar(&cfg.MaxRecvMsgBytes, "max-recv-msg-bytes", 16<<10, "largest gRPC request accepted, in bytes")
	fs.IntVar(&cfg.MaxConcurrent, "max-concurrent-upstream", 256, "calls to Dintero in flight at most; a call over it gets ResourceExhausted at once")
	fs.StringVar(&cfg.MetricsAddr, "metrics-addr", "", "address of a separate server for /metrics; empty serves it on --http-addr")
	fs.StringVar(&cfg.PprofAddr, "pprof-addr", "", "address of a separate server for /debug/pprof/ (profiling); empty: off. Keep it on loopback")
	fs.BoolVar(&cfg.Mock, "mock", false, "serve a local mock Dintero in process and call it instead of --dintero-url, with its client credentials (a demo needing no Dintero account)")
	fs.StringVar(&cfg.CredentialsFile, "credentials-file", "", "YAML or JSON list of {account_id, client_id, client_secret, audience}: the facade's credentials per account, reloaded on SIGHUP and when the file changes")
	fs.StringVar(&cfg.PolicyFile, "policy-file", "", "YAML or JSON policy: which mTLS identities may use the facade's credentials, on which accounts and operations (needs --client-ca)")
	fs.StringVar(&cfg.TLSCert, "tls-cert", "", "PEM certificate for TLS on both listeners (with --tls-key)")
	fs.StringVar(&cfg.TLSKey, "tls-key", "", "PEM private key for TLS on both listeners (with --tls-cert)")
	fs.StringVar(&cfg.ClientCA, "client-ca", "", "PEM CA bundle: require callers' certificates signed by it (mutual TLS; needs --tls-cert)")
	fs.VisitAll(func(f *flag.Flag) {
		f.Usage += " (env " + envName(f.Name) + ")"
	})
	fs.Usage = func() {
		fmt.Fprintf(usageOut, "Usage of dintero-facade:\n")
		fs.PrintDefaults()
		fmt.Fprintf(usageOut, "\nDintero client credentials come from the environment only:\n"+
			"  DINTERO_CLIENT_ID, DINTERO_CLIENT_SECRET, DINTERO_ACCOUNT_ID (all three, or none)\n"+
			"  DINTERO_AUDIENCE (optional; default https://api.dintero.com/v1/accounts/<account id>)\n")
	}
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] {
			return
		}
		if v := getenv(envName(f.Name)); v != "" {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", envName(f.Name), err))
			}
		}
	})
	if err := errors.Join(errs...); err != nil {
		return cfg, err
	}
	if err := upstream.CheckBaseURL(cfg.DinteroURL); err != nil {
		return cfg, fmt.Errorf("--dintero-url: %w", err)
	}
	if cfg.DinteroTimeout <= 0 || cfg.MaxDeadline <= 0 || cfg.ShutdownGrace <= 0 || cfg.ShutdownDelay < 0 || cfg.MaxRecvMsgBytes <= 0 || cfg.MaxConcurrent <= 0 {
		return cfg, errors.New("--dintero-timeout, --max-deadline, --shutdown-grace, --max-recv-msg-bytes and --max-concurrent-upstream must be positive, --shutdown-delay not negative")
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
	creds, err := credentialsFromEnv(getenv)
	if err != nil {
		return cfg, err
	}
	if creds != nil {
		cfg.EnvCredentials = []upstream.Credentials{*creds}
	}
	cfg.Credentials = cfg.EnvCredentials
	if cfg.CredentialsFile != "" {
		if cfg.Credentials, err = loadCredentials(cfg.CredentialsFile, cfg.EnvCredentials); err != nil {
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

// envName is the environment variable of a flag: grpc-addr becomes
// DINTERO_FACADE_GRPC_ADDR.
func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// isLoopbackHost reports whether host names only loopback addresses. An
// empty host (all interfaces) does not.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// credentialsFromEnv reads the facade's client credentials: all of
// DINTERO_CLIENT_ID, DINTERO_CLIENT_SECRET and DINTERO_ACCOUNT_ID, or none.
func credentialsFromEnv(getenv func(string) string) (*upstream.Credentials, error) {
	c := upstream.Credentials{
		ClientID:     getenv("DINTERO_CLIENT_ID"),
		ClientSecret: getenv("DINTERO_CLIENT_SECRET"),
		AccountID:    getenv("DINTERO_ACCOUNT_ID"),
		Audience:     getenv("DINTERO_AUDIENCE"),
	}
	var missing []string
	for _, v := range []struct{ name, val string }{{"DINTERO_CLIENT_ID", c.ClientID}, {"DINTERO_CLIENT_SECRET", c.ClientSecret}, {"DINTERO_ACCOUNT_ID", c.AccountID}} {
		if v.val == "" {
			missing = append(missing, v.name)
		}
	}
	switch len(missing) {
	case 3:
		if c.Audience != "" {
			return nil, errors.New("DINTERO_AUDIENCE is set without DINTERO_CLIENT_ID, DINTERO_CLIENT_SECRET and DINTERO_ACCOUNT_ID")
		}
		return nil, nil
	case 0:
		if err := c.Check(); err != nil {
			return nil, fmt.Errorf("DINTERO_CLIENT_ID, DINTERO_CLIENT_SECRET, DINTERO_ACCOUNT_ID: %w", err)
		}
		return &c, nil
	}
	return nil, fmt.Errorf("client credentials are incomplete: %s not set (set all of DINTERO_CLIENT_ID, DINTERO_CLIENT_SECRET and DINTERO_ACCOUNT_ID, or none)", strings.Join(missing, ", "))
}
