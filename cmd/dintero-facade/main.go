// Command dintero-facade serves dintero.auth.v1.AuthService over gRPC and as
// JSON through grpc-gateway, calling Dintero's REST API on behalf of
// internal services.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/dintero-facade/dintero-facade/internal/gctune"
	"github.com/dintero-facade/dintero-facade/internal/telemetry"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	// The runtime reads GODEBUG only at start: the process starts again
	// with the collector's stack setting, unless GODEBUG names it.
	var restartErr error
	if env, restart := gctune.RestartEnv(os.Environ()); restart {
		exe, err := os.Executable()
		if err == nil {
			err = syscall.Exec(exe, os.Args, env) // returns only on failure
		}
		restartErr = err
	}
	cfg, err := parseConfig(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "dintero-facade: %v\nRun dintero-facade --help for every flag and its variable.\n", err)
		os.Exit(2)
	}
	log := telemetry.NewLogger(os.Stderr, cfg.LogLevel)
	gc := gctune.Decide(os.Getenv, os.ReadFile, cfg.MaxConcurrent)
	gc.Apply()
	if gc.IgnoredGOGC != "" {
		log.Warn("GOGC is neither a whole number nor off: ignored, the facade's own target applies", "GOGC", gc.IgnoredGOGC, "gogc", gc.GOGC)
	}
	gogc, memoryLimit := gctune.InEffect()
	log.Info("garbage collector", "gogc", gogc, "memory_limit_bytes", memoryLimit, "godebug", os.Getenv("GODEBUG"))
	if restartErr != nil {
		log.Warn("could not start again with GODEBUG=gcshrinkstackoff=1; the collector shrinks stacks", "error", restartErr.Error())
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	audit := telemetry.NewLogger(os.Stderr, slog.LevelInfo)
	// SIGHUP reloads --credentials-file, the TLS files and --policy-file.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	reload := make(chan struct{}, 1)
	go func() {
		for range hup {
			select {
			case reload <- struct{}{}:
			default:
			}
		}
	}()
	if err := Run(ctx, Options{Config: cfg, Log: log, Audit: audit, Version: version, Reload: reload}); err != nil {
		log.Error("dintero-facade stopped", "error", err.Error())
		stop()
		os.Exit(1)
	}
}
