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
	// IDTokenIssuer, when set, must be the iss of authorize's id_tokens.
	IDTokenIssuer string
	// RejectInvalidIDToken makes an id_token that fails verification an
	// error rather than an answer marked invalid.
	RejectInvalidIDToken bool
	// Policy is the loaded --policy-file, nil without one.
	Policy *service.Policy
	// EnvCredentials are the environment's one-account shortcut (never
	// flags, which ps shows); Credentials add those of --credentials-file.
	EnvCredentials []upstream.Credentials
	Credentials    []upstream.Credentials
}

// option is one setting of the facade: a flag, its environment variable
// DINTERO_FACADE_<FLAG_IN_UPPER_SNAKE>, its default and help, and the
// Config field it fills. The flags, --help, the startup log line and the
// operator manual's table all come from options.
type option struct {
	name string
	// field points into a Config: *string, *bool, *int, *time.Duration
	// or *slog.Level; def is its default, of the same type.
	field, def any
	help       string
}

// options lists every flag, bound to c's fields.
func (c *Config) options() []option {
	return []option{
		{"grpc-addr", &c.GRPCAddr, ":9090", "address of the gRPC server"},
		{"http-addr", &c.HTTPAddr, ":8080", "address of the JSON gateway, /healthz and /openapi.json"},
		{"health-addr", &c.HealthAddr, "", "address of a plain (never TLS) listener for probes: gRPC health and GET /healthz; empty: off"},
		{"dintero-url", &c.DinteroURL, upstream.DefaultBaseURL, "Dintero's API base URL: https, or http to a loopback host"},
		{"dintero-timeout", &c.DinteroTimeout, 10 * time.Second, "bound of a call whose caller set no deadline, and of a token fetch"},
		{"max-deadline", &c.MaxDeadline, 20 * time.Second, "longest a call may take: a caller's longer deadline is cut to it, and the HTTP server's write timeout is set above it"},
		{"warm-timeout", &c.WarmTimeout, 10 * time.Second, "at start, how long to try to connect to Dintero and fetch the tokens and signing keys of the accounts with credentials before reporting SERVING (it serves either way, and keeps trying); 0: no warm-up"},
		{"shutdown-delay", &c.ShutdownDelay, time.Duration(0), "on SIGTERM, how long to keep accepting while reporting NOT_SERVING (a few seconds on Kubernetes)"},
		{"shutdown-grace", &c.ShutdownGrace, 20 * time.Second, "on SIGTERM, how long calls in flight may take to finish"},
		{"log-level", &c.LogLevel, slog.LevelInfo, "log level: debug, info, warn or error"},
		{"max-recv-msg-bytes", &c.MaxRecvMsgBytes, 16 << 10, "largest gRPC request accepted, in bytes; also bounds metadata and HTTP headers"},
		{"max-concurrent-upstream", &c.MaxConcurrent, 256, "calls to Dintero in flight at most; a call over it gets ResourceExhausted at once. The gRPC server keeps as many workers (64 to 4096), whose stacks count towards memory"},
		{"metrics-addr", &c.MetricsAddr, "", "address of a separate server for /metrics; empty serves it on --http-addr"},
		{"pprof-addr", &c.PprofAddr, "", "address of a separate server for /debug/pprof/ (profiling); empty: off. Loopback only"},
		{"mock", &c.Mock, false, "serve a local mock Dintero in process and call it instead of --dintero-url, with its client credentials (a demo needing no Dintero account)"},
		{"credentials-file", &c.CredentialsFile, "", "YAML or JSON list of {account_id, client_id, client_secret, audience}: the facade's credentials per account, reloaded on SIGHUP and when the file changes"},
		{"policy-file", &c.PolicyFile, "", "YAML or JSON policy: which mTLS identities may use the facade's credentials, on which accounts and operations (needs --client-ca)"},
		{"tls-cert", &c.TLSCert, "", "PEM certificate for TLS on both listeners (with --tls-key); reloaded when the file changes"},
		{"tls-key", &c.TLSKey, "", "PEM private key for TLS on both listeners (with --tls-cert)"},
		{"client-ca", &c.ClientCA, "", "PEM CA bundle: require callers' certificates signed by it (mutual TLS; needs --tls-cert)"},
		{"id-token-issuer", &c.IDTokenIssuer, "", "the iss authorize's id_tokens must have; empty: iss is not checked"},
		{"reject-invalid-id-token", &c.RejectInvalidIDToken, false, "answer Unauthenticated when authorize's id_token fails verification, instead of the answer marked invalid (the code is spent either way)"},
	}
}

// credentialVars are the environment's one-account credentials. They are
// never flags, which ps shows.
var credentialVars = []struct {
	name, help string
	secret     bool
}{
	{"DINTERO_ACCOUNT_ID", "the account of the facade's client credentials (with the two below, or none)", false},
	{"DINTERO_CLIENT_ID", "the client id of the facade's client credentials", false},
	{"DINTERO_CLIENT_SECRET", "the client secret of the facade's client credentials", true},
	{"DINTERO_AUDIENCE", "the audience of its tokens; default https://api.dintero.com/v1/accounts/<account id>", false},
}

// register adds o to fs as a flag whose help names its environment
// variable.
func (o option) register(fs *flag.FlagSet) {
	help := o.help + " (env " + envName(o.name) + ")"
	switch p := o.field.(type) {
	case *string:
		fs.StringVar(p, o.name, o.def.(string), help)
	case *bool:
		fs.BoolVar(p, o.name, o.def.(bool), help)
	case *int:
		fs.IntVar(p, o.name, o.def.(int), help)
	case *time.Duration:
		fs.DurationVar(p, o.name, o.def.(time.Duration), help)
	case *slog.Level:
		fs.TextVar(p, o.name, o.def.(slog.Level), help)
	default:
		panic(fmt.Sprintf("option %s: unsupported field type %T", o.name, o.field))
	}
}

// value is the option's current value, for the startup line.
func (o option) value() slog.Value {
	switch p := o.field.(type) {
	case *string:
		return slog.StringValue(*p)
	case *bool:
		return slog.BoolValue(*p)
	case *int:
		return slog.IntValue(*p)
	case *time.Duration:
		return slog.StringValue(p.String())
	case *slog.Level:
		return slog.StringValue(p.String())
	}
	return slog.StringValue(fmt.Sprint(o.field))
}

// LogValue logs every option, whether tracing is on, and the credentials,
// whose secrets mask themselves.
func (c Config) LogValue() slog.Value {
	opts := c.options()
	attrs := make([]slog.Attr, 0, len(opts)+2)
	for _, o := range opts {
		attrs = append(attrs, slog.Attr{Key: strings.ReplaceAll(o.name, "-", "_"), Value: o.value()})
	}
	attrs = append(attrs, slog.Bool("tracing", c.Tracing))
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
	for _, o := range cfg.options() {
		o.register(fs)
	}
	fs.Usage = func() {
		fmt.Fprintf(usageOut, "Usage of dintero-facade:\n")
		fs.PrintDefaults()
		fmt.Fprintf(usageOut, "\nDintero client credentials of one account come from the environment only:\n")
		for _, v := range credentialVars {
			fmt.Fprintf(usageOut, "  %s\n    \t%s\n", v.name, v.help)
		}
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
