package upstream_test

import (
	"context"
	"crypto/rsa"
	"encoding/base64"
	"fmt"
	"math/big"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/dintero-facade/dintero-facade/internal/dinteromock"
	"github.com/dintero-facade/dintero-facade/internal/dinterotest"
	"github.com/dintero-facade/dintero-facade/internal/idtoken"
	"github.com/dintero-facade/dintero-facade/upstream"
)

// TestKeysHangSparesDeletes: the keys endpoint hangs. 20 Authorize
// calls for 20 accounts, each with a deadline of 100 ms, return at their
// deadline without sending their codes; their keys fetches go on without
// them (so that the keys reach later calls), but on a bound of their own
// (IDTokenOptions.MaxFetches), not MaxConcurrent's: a DELETE right after,
// which needs no keys, is served. Before issue 22's review the fetches
// held MaxConcurrent's slots for the whole Timeout, and the DELETE was
// refused as busy.
func TestKeysHangSparesDeletes(t *testing.T) {
	fake := dinterotest.New(t)
	fake.AddGrants("T123", "g")
	fake.HandleRaw(dinterotest.OpKeys, dinterotest.Stall)
	c := newClient(t, fake.URL, func(o *upstream.Options) { o.MaxConcurrent = 20; o.Timeout = 3 * time.Second })
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			p := allParams
			p.OID = fmt.Sprintf("T%08d", i+1)
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			if _, meta, err := c.Authorize(ctx, callerAt(fake, "T123"), p); err == nil || meta.Sent {
				t.Errorf("an Authorize whose keys hang: got %v, sent %v; want an error, not sent", err, meta.Sent)
			}
		})
	}
	wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, _, err := c.DeleteClientGrant(ctx, caller(fake), "T123", "g"); err != nil {
		t.Errorf("a DELETE after 20 Authorize calls gave up on the hung keys endpoint: %v; want it served", err)
	}
}

// TestKeysFetchedOncePerAccount: 100 first Authorize calls for one
// account, each with its caller's own token, while the keys endpoint
// takes 300 ms, fetch the keys once: the fetch is the account's, shared
// by every caller. Before issue 22's review it was shared by the calls
// with the same token only: 100 fetches.
func TestKeysFetchedOncePerAccount(t *testing.T) {
	fake := dinterotest.New(t)
	slowKeys(fake, 300*time.Millisecond)
	key := mustKey(t)
	answering(fake, func() string { return signed(t, key, fake.Mock.KeyID(), idClaims()) })
	c := newClient(t, fake.URL)
	var wg sync.WaitGroup
	for i := range 100 {
		tok, err := fake.Mock.IssueToken(fmt.Sprint("caller-", i), dinteromock.Audience(allParams.OID), []string{"admin:accounts"})
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			if _, _, err := c.Authorize(context.Background(), upstream.Call{Authorization: "Bearer " + tok}, allParams); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := fake.Count(dinterotest.OpKeys); n != 1 {
		t.Errorf("100 first calls for one account, each with its own token, made %d keys fetches; want 1", n)
	}
}

// TestKeysKeptFromOthers: a caller whose token can read the keys of many
// accounts (here the keys endpoint answers any token, as dinterotest's
// OpenKeys does; at Dintero a partner's token) names 1,000 other accounts
// between the calls of a legitimate one: the legitimate account's keys
// are fetched once over its 4 calls, as a caller's share of the kept keys
// is bounded. Before issue 22's review each of its calls fetched them
// again.
func TestKeysKeptFromOthers(t *testing.T) {
	fake := dinterotest.New(t, dinterotest.Options{Lenient: true})
	fake.OpenKeys()
	key := mustKey(t)
	answering(fake, func() string { return signed(t, key, fake.Mock.KeyID(), idClaims()) })
	c := newClient(t, fake.URL)
	legit := callerAt(fake, allParams.OID)
	junk := upstream.Call{Authorization: "Bearer junk-token-0001"}
	for round := range 3 {
		if _, _, err := c.Authorize(context.Background(), legit, allParams); err != nil {
			t.Fatal(err)
		}
		for i := range 1000 {
			p := allParams
			p.OID = fmt.Sprintf("T%08d", round*1000+i)
			_, _, _ = c.Authorize(context.Background(), junk, p)
		}
	}
	if _, _, err := c.Authorize(context.Background(), legit, allParams); err != nil {
		t.Fatal(err)
	}
	var legitFetches int
	for _, r := range fake.Requests() {
		if r.Op == dinterotest.OpKeys && r.PathParams["oid"] == allParams.OID {
			legitFetches++
		}
	}
	if legitFetches != 1 {
		t.Errorf("the legitimate account's keys were fetched %d times over 4 calls within KeysFor; want once", legitFetches)
	}
}

// TestKidListedTwice: the keys endpoint lists kid "k1" twice, the old key
// first (a rotation that reused the kid, or two lists merged): a token
// signed by the second key is verified. Before issue 22's review only the
// first key of a kid was tried: "signature".
func TestKidListedTwice(t *testing.T) {
	key, old := dinterotest.TestKeys(t)
	fake := dinterotest.New(t)
	enc := base64.RawURLEncoding.EncodeToString
	jwk := func(k *rsa.PublicKey) string {
		return fmt.Sprintf(`{"alg":"RS256","kty":"RSA","use":"sig","kid":"k1","n":%q,"e":%q}`, enc(k.N.Bytes()), enc(big.NewInt(int64(k.E)).Bytes()))
	}
	fake.Handle(dinterotest.OpKeys, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintf(w, "[%s,%s]", jwk(&old.PublicKey), jwk(&key.PublicKey))
	})
	answering(fake, func() string { return signed(t, key, "k1", idClaims()) })
	c := newClient(t, fake.URL)
	rd, _, err := c.Authorize(context.Background(), callerAt(fake, allParams.OID), allParams)
	if err != nil {
		t.Fatal(err)
	}
	if rd.Verification.Result != idtoken.Verified {
		t.Errorf("a token signed by the second key listed under its kid: %v (%s); want verified", rd.Verification.Result, rd.Verification.Reason)
	}
}
