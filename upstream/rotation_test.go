package upstream_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/dintero-facade/dintero-facade/internal/dinterotest"
	"github.com/dintero-facade/dintero-facade/internal/idtoken"
	"github.com/dintero-facade/dintero-facade/upstream"
)

// TestKeyRotation: a token signed by a key the facade has not seen makes
// it fetch the keys again, once, and a rotation at Dintero is followed; a
// flood of unknown kids does not become a flood of fetches.
func TestKeyRotation(t *testing.T) {
	fake := dinterotest.New(t)
	_, next := dinterotest.TestKeys(t)
	for i := range 2 {
		fake.AddCode(allParams.OID, "VC-"+string(rune('a'+i)))
	}
	c := newClient(t, fake.URL)
	call := callerAt(fake, allParams.OID)
	p := allParams
	p.VerificationCode = "VC-a"
	rd, _, err := c.Authorize(context.Background(), call, p)
	if err != nil || rd.Verification.Result != idtoken.Verified {
		t.Fatalf("before the rotation: %v, %+v", err, rd)
	}
	if err := fake.Mock.RotateKey(next, false); err != nil {
		t.Fatal(err)
	}
	p.VerificationCode = "VC-b"
	rd, _, err = c.Authorize(context.Background(), call, p)
	if err != nil || rd.Verification.Result != idtoken.Verified {
		t.Fatalf("after the rotation: %v, %+v; want verified with the new key", err, rd)
	}
	if n := fake.Count(dinterotest.OpKeys); n != 2 {
		t.Errorf("got %d key fetches; want 2: one at first, one for the new kid", n)
	}
	// Tokens under kids no key has: one refetch at most per interval.
	_, stranger := dinterotest.TestKeys(t)
	answering(fake, func() string { return signed(t, stranger, "kid-nobody-has", idClaims()) })
	for range 5 {
		rd, _, err = c.Authorize(context.Background(), call, allParams)
		if err != nil || rd.Verification.Reason != idtoken.ReasonUnknownKey {
			t.Fatalf("got %v, %+v; want unknown_key", err, rd)
		}
	}
	if n := fake.Count(dinterotest.OpKeys); n != 2 {
		t.Errorf("got %d key fetches after 5 unknown kids; want none more within the interval", n)
	}
}

// TestUnknownKidRefetchesOnce: the first unknown kid fetches the keys
// again at once, and that fetch is not repeated for the next token.
func TestUnknownKidRefetchesOnce(t *testing.T) {
	fake := dinterotest.New(t)
	_, stranger := dinterotest.TestKeys(t)
	answering(fake, func() string { return signed(t, stranger, "kid-nobody-has", idClaims()) })
	c := newClient(t, fake.URL)
	for range 3 {
		rd, _, err := c.Authorize(context.Background(), callerAt(fake, allParams.OID), allParams)
		if err != nil || rd.Verification.Reason != idtoken.ReasonUnknownKey {
			t.Fatalf("got %v, %+v; want unknown_key", err, rd)
		}
	}
	if n := fake.Count(dinterotest.OpKeys); n != 2 {
		t.Errorf("got %d key fetches; want 2: the first, and one refetch for the unknown kid", n)
	}
}

// TestSigningKeysFetchedOnce: 100 first calls at once while the keys
// endpoint is slow make one fetch, and all succeed.
func TestSigningKeysFetchedOnce(t *testing.T) {
	fake := dinterotest.New(t)
	slowKeys(fake, 300*time.Millisecond)
	key := mustKey(t)
	answering(fake, func() string { return signed(t, key, fake.Mock.KeyID(), idClaims()) })
	c := newClient(t, fake.URL)
	call := callerAt(fake, allParams.OID)
	var wg sync.WaitGroup
	results := make([]idtoken.Result, 100)
	errs := make([]error, 100)
	for i := range results {
		wg.Go(func() {
			var rd *upstream.Redirect
			rd, _, errs[i] = c.Authorize(context.Background(), call, allParams)
			if rd != nil {
				results[i] = rd.Verification.Result
			}
		})
	}
	wg.Wait()
	if n := fake.Count(dinterotest.OpKeys); n != 1 {
		t.Errorf("got %d key fetches for 100 first calls; want 1", n)
	}
	if i := slices.IndexFunc(errs, func(err error) bool { return err != nil }); i >= 0 {
		t.Errorf("call %d: %v", i, errs[i])
	}
	if slices.ContainsFunc(results, func(r idtoken.Result) bool { return r != idtoken.Verified }) {
		t.Errorf("got results %v; want all verified", results)
	}
}

// TestSigningKeysWaitIsTheCallers: a caller that gives up while the keys
// are fetched gets its deadline, sends nothing, and does not fail the
// fetch for the others.
func TestSigningKeysWaitIsTheCallers(t *testing.T) {
	fake := dinterotest.New(t)
	slowKeys(fake, 300*time.Millisecond)
	key := mustKey(t)
	answering(fake, func() string { return signed(t, key, fake.Mock.KeyID(), idClaims()) })
	c := newClient(t, fake.URL)
	call := callerAt(fake, allParams.OID)
	// The impatient caller starts the fetch; the patient one joins it.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	impatient := make(chan error, 1)
	var meta upstream.Meta
	go func() {
		var err error
		_, meta, err = c.Authorize(ctx, call, allParams)
		impatient <- err
	}()
	time.Sleep(10 * time.Millisecond)
	done := make(chan error, 1)
	go func() {
		_, _, err := c.Authorize(context.Background(), call, allParams)
		done <- err
	}()
	if err := <-impatient; !errors.Is(err, context.DeadlineExceeded) || meta.Sent {
		t.Errorf("the impatient caller got %v, sent %v; want its deadline, nothing sent", err, meta.Sent)
	}
	if err := <-done; err != nil {
		t.Errorf("the patient caller got %v; want success", err)
	}
	if n := fake.Count(dinterotest.OpKeys); n != 1 {
		t.Errorf("got %d key fetches; want 1", n)
	}
}

// TestRotationUnderLoad: calls that meet the new kid while its refetch is
// in flight wait for it, and all verify; the keys are fetched once more.
func TestRotationUnderLoad(t *testing.T) {
	fake := dinterotest.New(t)
	_, next := dinterotest.TestKeys(t)
	c := newClient(t, fake.URL)
	call := callerAt(fake, allParams.OID)
	if err := c.Warm(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The first keys before the rotation.
	answering(fake, func() string { return signed(t, mustKey(t), fake.Mock.KeyID(), idClaims()) })
	if _, _, err := c.Authorize(context.Background(), call, allParams); err != nil {
		t.Fatal(err)
	}
	if err := fake.Mock.RotateKey(next, false); err != nil {
		t.Fatal(err)
	}
	kid := fake.Mock.KeyID()
	answering(fake, func() string { return signed(t, next, kid, idClaims()) })
	slowKeys(fake, 300*time.Millisecond)
	var wg sync.WaitGroup
	results := make([]idtoken.Verification, 20)
	for i := range results {
		wg.Go(func() {
			if rd, _, err := c.Authorize(context.Background(), call, allParams); err == nil {
				results[i] = rd.Verification
			}
		})
	}
	wg.Wait()
	for i, id := range results {
		if id.Result != idtoken.Verified {
			t.Errorf("call %d: got %+v; want verified after the one refetch", i, id)
		}
	}
	if n := fake.Count(dinterotest.OpKeys); n != 2 {
		t.Errorf("got %d key fetches; want 2", n)
	}
}

// TestFailedRefetchBlocksNoOne: a refetch that fails (the first caller's
// token may not read the keys) does not stop the next caller from
// fetching them.
func TestFailedRefetchBlocksNoOne(t *testing.T) {
	fake := dinterotest.New(t)
	_, next := dinterotest.TestKeys(t)
	c := newClient(t, fake.URL)
	call := callerAt(fake, allParams.OID)
	answering(fake, func() string { return signed(t, mustKey(t), fake.Mock.KeyID(), idClaims()) })
	if _, _, err := c.Authorize(context.Background(), call, allParams); err != nil {
		t.Fatal(err)
	}
	if err := fake.Mock.RotateKey(next, false); err != nil {
		t.Fatal(err)
	}
	kid := fake.Mock.KeyID()
	answering(fake, func() string { return signed(t, next, kid, idClaims()) })
	fake.HandleRaw(dinterotest.OpKeys, dinterotest.Times(1, dinterotest.Status(http.StatusUnauthorized), fake.Mock))
	rd, _, err := c.Authorize(context.Background(), call, allParams)
	if err != nil || rd.Verification.Reason != idtoken.ReasonUnknownKey {
		t.Fatalf("the refused refetch: got %v, %+v; want unknown_key", err, rd)
	}
	rd, _, err = c.Authorize(context.Background(), call, allParams)
	if err != nil || rd.Verification.Result != idtoken.Verified {
		t.Errorf("the next call: got %v, %+v; want verified with the keys fetched again", err, rd)
	}
}

// TestBadTokenFailsOnlyItsOwnCall: while the keys are first fetched, a
// caller whose token Dintero refuses fails alone.
func TestBadTokenFailsOnlyItsOwnCall(t *testing.T) {
	fake := dinterotest.New(t)
	slowKeys(fake, 200*time.Millisecond)
	key := mustKey(t)
	answering(fake, func() string { return signed(t, key, fake.Mock.KeyID(), idClaims()) })
	c := newClient(t, fake.URL)
	good, bad := callerAt(fake, allParams.OID), callerAt(fake, "T111") // T111's token is not the account's
	var wg sync.WaitGroup
	var goodErr, badErr error
	wg.Go(func() { _, _, badErr = c.Authorize(context.Background(), bad, allParams) })
	time.Sleep(20 * time.Millisecond)
	wg.Go(func() { _, _, goodErr = c.Authorize(context.Background(), good, allParams) })
	wg.Wait()
	if !errors.Is(badErr, upstream.ErrSigningKeys) {
		t.Errorf("the bad token: got %v; want ErrSigningKeys", badErr)
	}
	if goodErr != nil {
		t.Errorf("the good token: got %v; want success", goodErr)
	}
}

// TestKeysOutage: while the keys endpoint fails, a refetch for an unknown
// kid is made once per interval, the failure starting it as a success
// does (5 calls make one refetch of 3 attempts, not 5); and the keys'
// failures, first fetches of many accounts included, do not open the
// breaker the other calls depend on: a DELETE still goes through.
func TestKeysOutage(t *testing.T) {
	fake := dinterotest.New(t)
	fake.AddGrants("T123", "g")
	_, stranger := dinterotest.TestKeys(t)
	answering(fake, func() string { return signed(t, stranger, "kid-nobody-has", idClaims()) })
	var mu sync.Mutex
	now := time.Now()
	c := newClient(t, fake.URL, func(o *upstream.Options) {
		o.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
		o.IDToken.Leeway = 24 * time.Hour
	})
	call := callerAt(fake, allParams.OID)
	if _, _, err := c.Authorize(context.Background(), call, allParams); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	now = now.Add(time.Minute) // past the interval of the first refetch
	mu.Unlock()
	fake.HandleRaw(dinterotest.OpKeys, dinterotest.Status(http.StatusServiceUnavailable))
	before := fake.Count(dinterotest.OpKeys)
	for range 5 {
		rd, _, err := c.Authorize(context.Background(), call, allParams)
		if err != nil || rd.Verification.Reason != idtoken.ReasonUnknownKey {
			t.Fatalf("got %v, %+v; want unknown_key", err, rd)
		}
	}
	if n := fake.Count(dinterotest.OpKeys) - before; n != 3 {
		t.Errorf("5 calls with an unknown kid while the keys fail made %d keys requests; want 3, one refetch", n)
	}
	// First fetches of every account, all failing: 3 attempts each.
	for range 2 {
		for _, account := range dinterotest.Accounts() {
			if account == allParams.OID {
				continue
			}
			p := allParams
			p.OID = account
			if _, meta, err := c.Authorize(context.Background(), callerAt(fake, account), p); err == nil || meta.Sent {
				t.Fatalf("%s: got %v, sent %v; want the keys' failure, nothing sent", account, err, meta.Sent)
			}
		}
	}
	if _, _, err := c.DeleteClientGrant(context.Background(), caller(fake), "T123", "g"); err != nil {
		t.Errorf("a DELETE during the keys' outage: %v; want it through", err)
	}
}
