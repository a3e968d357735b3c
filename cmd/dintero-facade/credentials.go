package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
	"sigs.k8s.io/yaml"

	"github.com/dintero-facade/dintero-facade/service"
	"github.com/dintero-facade/dintero-facade/upstream"
)

// credentialEntry is one account of --credentials-file.
type credentialEntry struct {
	AccountID    string `json:"account_id"`
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
	Audience     string `json:"audience,omitempty"`
}

// loadCredentials reads --credentials-file (YAML or JSON: a list of
// {account_id, client_id, client_secret, audience?}) and checks it whole,
// adding the entries to base (the environment's one-account shortcut).
// Errors name the entry and the account, never a secret.
func loadCredentials(file string, base []upstream.Credentials) ([]upstream.Credentials, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("--credentials-file: %w", err)
	}
	var entries []credentialEntry
	if err := yaml.UnmarshalStrict(b, &entries); err != nil {
		return nil, fmt.Errorf("--credentials-file %s: not a list of {account_id, client_id, client_secret, audience}: %w", file, err)
	}
	out := append([]upstream.Credentials(nil), base...)
	seen := map[string]bool{}
	for _, c := range base {
		seen[c.AccountID] = true
	}
	for i, e := range entries {
		switch {
		case !service.ValidAccountID(e.AccountID):
			return nil, fmt.Errorf("--credentials-file %s: entry %d: account_id %q is not a Dintero account id", file, i+1, e.AccountID)
		case e.ClientID == "" || e.ClientSecret == "":
			return nil, fmt.Errorf("--credentials-file %s: entry %d (account %s) needs client_id and client_secret", file, i+1, e.AccountID)
		case seen[e.AccountID]:
			return nil, fmt.Errorf("--credentials-file %s: account %s has credentials twice", file, e.AccountID)
		}
		seen[e.AccountID] = true
		out = append(out, upstream.Credentials{AccountID: e.AccountID, ClientID: e.ClientID, ClientSecret: e.ClientSecret, Audience: e.Audience})
	}
	return out, nil
}

// watchCredentials reloads --credentials-file when reload fires (SIGHUP)
// and when the file changes, until ctx ends. It watches the directory, so
// that a Kubernetes Secret, replaced by a symlink swap, is seen too. A file
// that does not load is logged and ignored: the previous credentials stay.
func watchCredentials(ctx context.Context, file string, base []upstream.Credentials, reload <-chan struct{}, client *upstream.Client, log *slog.Logger) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watching --credentials-file: %w", err)
	}
	dir := filepath.Dir(file)
	if err := w.Add(dir); err != nil {
		w.Close()
		return fmt.Errorf("watching %s: %w", dir, err)
	}
	apply := func(why string) {
		creds, err := loadCredentials(file, base)
		if err == nil {
			err = client.SetCredentials(creds)
		}
		if err != nil {
			log.Error("credentials not reloaded: keeping the previous ones", "why", why, "error", err.Error())
			return
		}
		log.Info("credentials reloaded", "why", why, "accounts", client.Accounts())
	}
	go func() {
		defer w.Close()
		// Writes come in bursts (a symlink swap is several events): wait
		// for quiet before reading.
		const settle = 100 * time.Millisecond
		timer := time.NewTimer(time.Hour)
		timer.Stop()
		defer timer.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-reload:
				apply("SIGHUP")
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				if ev.Has(fsnotify.Chmod) && !ev.Has(fsnotify.Write) {
					continue
				}
				timer.Reset(settle)
			case <-timer.C:
				apply("file changed")
			case err, ok := <-w.Errors:
				if !ok {
					return
				}
				log.Warn("watching --credentials-file", "error", err.Error())
			}
		}
	}()
	return nil
}
