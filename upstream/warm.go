package upstream

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// warmer is a transport that can open a connection ahead of the first
// call, as Transport does.
type warmer interface {
	Warm(ctx context.Context, rawURL string) error
}

// AccountError is what Warm could not have for one account: its token or
// its signing keys.
type AccountError struct {
	Account string
	Err     error
}

func (e *AccountError) Error() string { return "account " + e.Account + ": " + e.Err.Error() }

func (e *AccountError) Unwrap() error { return e.Err }

// Warm readies the client for its first calls: a connection to Dintero
// (when the transport can open one ahead), and for every account it holds
// credentials for, a token and the account's signing keys. It returns
// what could not be had, joined, an *AccountError for each account that
// failed; what was had stays. Calls made meanwhile are served as usual.
func (c *Client) Warm(ctx context.Context) error {
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	if w, ok := c.opts.Transport.(warmer); ok {
		if err := w.Warm(ctx, c.base); err != nil {
			fail(fmt.Errorf("connecting to Dintero: %w", err))
		}
	}
	// As many accounts at once as keys fetches may be in flight.
	slots := make(chan struct{}, c.opts.IDToken.MaxFetches)
	for _, account := range c.Accounts() {
		src := c.TokenSource(account)
		if src == nil {
			continue
		}
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			// The keys are fetched with the facade's token, which this
			// fetches first.
			if _, err := c.ensureKeys(ctx, &accountKeys{c: c, call: Call{TokenSource: src}, account: account}); err != nil {
				fail(&AccountError{Account: account, Err: err})
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
