package warmup_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dintero-facade/dintero-facade/internal/dinterotest"
	"github.com/dintero-facade/dintero-facade/internal/warmup"
	"github.com/dintero-facade/dintero-facade/upstream"
)

// target is a Target whose Warm calls warm, with accounts.
type target struct {
	accounts []string
	warm     func(context.Context) error
}

func (t target) Warm(ctx context.Context) error { return t.warm(ctx) }
func (t target) Accounts() []string             { return t.accounts }

// connect opens one connection to a server with ctx's trace, as the
// client's transport does.
func connect(t *testing.T) func(ctx context.Context) error {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(srv.Close)
	return func(ctx context.Context) error {
		c := &http.Client{Transport: &http.Transport{}}
		defer c.CloseIdleConnections()
		req, _ := http.NewRequestWithContext(ctx, http.MethodHead, srv.URL, nil)
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		return resp.Body.Close()
	}
}

// TestWarmUpSays: the warm-up's line says what it did: nothing without
// credentials and without a connection to open; the connection it opened;
// the accounts whose token and keys it fetched.
func TestWarmUpSays(t *testing.T) {
	for _, tc := range []struct {
		name     string
		accounts []string
		connects bool
		wantMsg  string
		wantKeys map[string]any
	}{
		{"no credentials, nothing to connect", nil, false, "nothing to warm: no credentials", nil},
		{"no credentials, a connection", nil, true, "warmed up: connected to Dintero; no credentials, so no token or signing keys to fetch", map[string]any{"connections_opened": 1.0}},
		{"two accounts", []string{"T12345678", "P00000001"}, true, "warmed up: a token and the signing keys fetched per account", map[string]any{"connections_opened": 1.0, "accounts": []any{"T12345678", "P00000001"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs := &dinterotest.LogBuffer{}
			warm := func(context.Context) error { return nil }
			if tc.connects {
				warm = connect(t)
			}
			warmup.Run(context.Background(), target{tc.accounts, warm}, time.Second, slog.New(slog.NewJSONHandler(logs, nil)))()
			ls := logs.Lines(t)
			if len(ls) != 1 || ls[0]["msg"] != tc.wantMsg {
				t.Fatalf("got %s; want one line %q", logs, tc.wantMsg)
			}
			for k, v := range tc.wantKeys {
				if got := ls[0][k]; fmt.Sprint(got) != fmt.Sprint(v) {
					t.Errorf("%s: got %v; want %v", k, got, v)
				}
			}
		})
	}
}

// TestRun: a warm-up that fails is retried in the background until it
// succeeds, and says which accounts failed, never the verification code;
// the line of the retry that succeeds names only the accounts it fetched.
// A timeout of 0 warms nothing; stop ends the retries.
func TestRun(t *testing.T) {
	logs := &dinterotest.LogBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	var calls atomic.Int32
	ok := func(ctx context.Context) error {
		if _, has := ctx.Deadline(); !has {
			t.Error("the warm-up has no deadline")
		}
		calls.Add(1)
		return nil
	}
	warmup.Run(context.Background(), target{nil, ok}, 0, log)()
	if calls.Load() != 0 {
		t.Error("a timeout of 0 warmed up")
	}
	var tries atomic.Int32
	keysDown := fmt.Errorf("%w: GET /keys: %w", upstream.ErrSigningKeys, upstream.ErrTransport)
	failTwice := func(context.Context) error {
		if tries.Add(1) <= 2 {
			return errors.Join(&upstream.AccountError{Account: "T12345678", Err: keysDown})
		}
		return nil
	}
	stop := warmup.Run(context.Background(), target{[]string{"P00000001", "T12345678"}, failTwice}, time.Second, log)
	if tries.Load() != 1 {
		t.Errorf("got %d tries before returning; want 1", tries.Load())
	}
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(logs.String(), "warmed up"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no retry succeeded:\n%s", logs)
		}
	}
	stop()
	ls := logs.Lines(t)
	if len(ls) != 3 {
		t.Fatalf("got %d lines; want a warning, another, and the warm-up:\n%s", len(ls), logs)
	}
	first := ls[0]
	if first["msg"] != "Dintero could not be had at start: serving, and trying again in the background" ||
		fmt.Sprint(first["accounts_failed"]) != "[T12345678]" || fmt.Sprint(first["accounts_ready"]) != "[P00000001]" {
		t.Errorf("got %v; want the failed and the ready accounts", first)
	}
	if ls[1]["msg"] != "Dintero still cannot be had" {
		t.Errorf("got %v; want the retry's warning", ls[1])
	}
	if last := ls[2]; fmt.Sprint(last["accounts"]) != "[T12345678]" {
		t.Errorf("got %v; want the retry to name the account it fetched alone", last)
	}
	if strings.Contains(logs.String(), "verification code") {
		t.Errorf("the warm-up speaks of a verification code:\n%s", logs)
	}

	never := func(context.Context) error { tries.Add(1); return errors.New("down") }
	tries.Store(0)
	stop = warmup.Run(context.Background(), target{nil, never}, time.Second, log)
	stop()
	time.Sleep(1500 * time.Millisecond)
	if n := tries.Load(); n != 1 {
		t.Errorf("got %d tries after stop; want the first only", n)
	}
}
