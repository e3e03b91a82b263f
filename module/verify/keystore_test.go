package verify

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tenantgate/tenantgate/module/audit"

	"github.com/tenantgate/tenantgate/module/verify/keysource"
)

// A second config for the same issuer and URL (what `caddy reload` makes)
// serves with the first one's keys at once, without fetching, also while
// the IdP is down; the refresher passes to it when the first one closes.
func TestKeysOutliveAConfig(t *testing.T) {
	k := keys(t)
	srv := newJWKSServer(t, jwksJSON(t, publicJWK(t, &k.ec256.PublicKey, "k1", "ES256")))
	cfg := remoteConfig(srv.URL, IssuerConfig{JWKSURL: srv.URL + "/jwks", RefreshInterval: Duration(100 * time.Millisecond)}, nil)
	old, err := New(t0ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	tok := mint(t, "ES256", k.ec256, "k1", nil, claimsFor(srv.URL, nil))
	eventually(t, 3*time.Second, "first keys", func() bool { _, e := identityOf(old.Verify(t0ctx, Bearer(tok))); return e == nil })

	srv.set(nil, true) // the IdP goes down, then the config is reloaded
	obs := &recordingObserver{}
	cfg.Observer = obs
	live := newVerifier(t, cfg)
	if _, e := identityOf(live.Verify(t0ctx, Bearer(tok))); e != nil {
		t.Fatalf("reload during an outage: want the last good keys at once, got %v", e)
	}
	if got := obs.inUseSnapshot(); len(got) != 1 || got[0].keys != 1 || !got[0].ok || got[0].issuer != srv.URL {
		t.Fatalf("the live config should report 1 kept key with its last success, got %+v", got)
	}
	old.Close()

	// The refresher goes on for the live config: a key the IdP publishes
	// when it is back arrives, and the live config's observer hears of it.
	srv.set(jwksJSON(t, publicJWK(t, &k.ec256.PublicKey, "k1", "ES256"), publicJWK(t, &k.rsa.PublicKey, "k2", "RS256")), false)
	eventually(t, 8*time.Second, "the handed-over refresher to fetch k2", func() bool { return live.KeyStatus()[srv.URL] == 2 })
	calls := obs.snapshot()
	if len(calls) == 0 || !calls[len(calls)-1].ok || calls[len(calls)-1].keys != 2 {
		t.Fatalf("observer of the live config: %+v", calls)
	}
}

// A reload while the JWKS answers slowly does not make a request wait.
func TestReloadWithSlowJWKSDoesNotFetch(t *testing.T) {
	k := keys(t)
	srv := newJWKSServer(t, jwksJSON(t, publicJWK(t, &k.ec256.PublicKey, "k1", "ES256")))
	cfg := remoteConfig(srv.URL, IssuerConfig{JWKSURL: srv.URL + "/jwks", RefreshInterval: Duration(time.Hour)}, nil)
	old := newVerifier(t, cfg)
	eventually(t, 3*time.Second, "first keys", func() bool { return old.KeyStatus()[srv.URL] == 1 })
	srv.mu.Lock()
	srv.delay = 2 * time.Second
	srv.mu.Unlock()
	hits := srv.jwksHits.Load()
	live := newVerifier(t, cfg)
	if _, e := identityOf(live.Verify(t0ctx, Bearer(mint(t, "ES256", k.ec256, "k1", nil, claimsFor(srv.URL, nil))))); e != nil {
		t.Fatal(e)
	}
	if got := srv.jwksHits.Load() - hits; got != 0 {
		t.Fatalf("a reload with keys in the store fetched %d times", got)
	}
}

// 5,000 tokens with random kids cost at most 3 fetches, and none passes.
func TestFloodOfRandomKidsIsBounded(t *testing.T) {
	k := keys(t)
	srv := newJWKSServer(t, jwksJSON(t, publicJWK(t, &k.ec256.PublicKey, "k1", "ES256")))
	v := newVerifier(t, remoteConfig(srv.URL, IssuerConfig{JWKSURL: srv.URL + "/jwks", RefreshInterval: Duration(time.Hour)}, nil))
	eventually(t, 3*time.Second, "first keys", func() bool { return v.KeyStatus()[srv.URL] == 1 })
	agePastGap(v, srv.URL)
	hits := srv.jwksHits.Load()
	toks := make(chan string, 5000)
	for i := range 5000 {
		toks <- mint(t, "ES256", k.ec256, fmt.Sprintf("random-%d", i), nil, claimsFor(srv.URL, nil))
	}
	close(toks)
	var wg sync.WaitGroup
	var refused atomic.Int32
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for tok := range toks {
				if _, e := identityOf(v.Verify(t0ctx, Bearer(tok))); e != nil && (e.Reason == audit.ReasonUnknownKey || e.Reason == audit.ReasonKeysUnavailable) {
					refused.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if refused.Load() != 5000 {
		t.Fatalf("%d of 5000 refused", refused.Load())
	}
	if got := srv.jwksHits.Load() - hits; got < 1 || got > 3 {
		t.Fatalf("5000 random kids caused %d fetches, want 1-3", got)
	}
}

// A key published right after a fetch: 503 with a Retry-After no longer
// than the gap, then accepted on the first try after it; the refetch
// resets the refresh timer.
func TestRotationRightAfterAFetch(t *testing.T) {
	k := keys(t)
	srv := newJWKSServer(t, jwksJSON(t, publicJWK(t, &k.ec256.PublicKey, "k1", "ES256")))
	const gap = 300 * time.Millisecond
	v := heldKeys(t, srv, gap)
	srv.set(jwksJSON(t, publicJWK(t, &k.ec256.PublicKey, "k1", "ES256"), publicJWK(t, &k.rsa.PublicKey, "k2", "RS256")), false)
	k2 := mint(t, "RS256", k.rsa, "k2", nil, claimsFor(srv.URL, nil))
	_, e := identityOf(v.Verify(t0ctx, Bearer(k2)))
	if e != nil {
		if e.Reason != audit.ReasonKeysUnavailable || e.RetryAfter <= 0 || e.RetryAfter > gap {
			t.Fatalf("want 503 keys_unavailable with Retry-After <= the gap, got %v (%s)", e, e.RetryAfter)
		}
		time.Sleep(e.RetryAfter)
		if _, e := identityOf(v.Verify(t0ctx, Bearer(k2))); e != nil {
			t.Fatalf("after Retry-After: %v", e)
		}
	}
	last, next := v.issuers[srv.URL].src.(*keysource.Remote).Schedule()
	if !next.Equal(last.Add(time.Hour)) {
		t.Fatalf("the refetch did not reset the refresh timer: next %s, last %s", next, last)
	}
}

// A key the IdP removed stops verifying at the next fetch.
func TestRemovedKeyStopsAtNextFetch(t *testing.T) {
	k := keys(t)
	srv := newJWKSServer(t, jwksJSON(t, publicJWK(t, &k.ec256.PublicKey, "k1", "ES256")))
	v := newVerifier(t, remoteConfig(srv.URL, IssuerConfig{JWKSURL: srv.URL + "/jwks", RefreshInterval: Duration(time.Hour)}, nil))
	k1 := mint(t, "ES256", k.ec256, "k1", nil, claimsFor(srv.URL, nil))
	eventually(t, 3*time.Second, "first keys", func() bool { _, e := identityOf(v.Verify(t0ctx, Bearer(k1))); return e == nil })
	srv.set(jwksJSON(t, publicJWK(t, &k.rsa.PublicKey, "k2", "RS256")), false)
	agePastGap(v, srv.URL)
	if _, e := identityOf(v.Verify(t0ctx, Bearer(mint(t, "RS256", k.rsa, "k2", nil, claimsFor(srv.URL, nil))))); e != nil {
		t.Fatalf("k2 after its refetch: %v", e)
	}
	// Right after the fetch that dropped it, no refetch and no "retry later":
	// the IdP no longer publishes the key.
	hits := srv.jwksHits.Load()
	if _, e := identityOf(v.Verify(t0ctx, Bearer(k1))); e == nil || e.Reason != audit.ReasonUnknownKey {
		t.Fatalf("removed key: want unknown_key, got %v", e)
	}
	if srv.jwksHits.Load() != hits {
		t.Fatal("a removed key caused a refetch")
	}
}

// Keys without a kid no longer stop the refetch for a kid not yet seen.
func TestKidlessKeysDoNotDisableRefetch(t *testing.T) {
	k := keys(t)
	srv := newJWKSServer(t, jwksJSON(t, publicJWK(t, &k.ec256.PublicKey, "", "ES256")))
	v := newVerifier(t, remoteConfig(srv.URL, IssuerConfig{JWKSURL: srv.URL + "/jwks", RefreshInterval: Duration(time.Hour)}, nil))
	eventually(t, 3*time.Second, "first keys", func() bool { return v.KeyStatus()[srv.URL] == 1 })
	// A token with a kid verifies with the kid-less key, without a fetch.
	hits := srv.jwksHits.Load()
	if _, e := identityOf(v.Verify(t0ctx, Bearer(mint(t, "ES256", k.ec256, "any", nil, claimsFor(srv.URL, nil))))); e != nil {
		t.Fatal(e)
	}
	if srv.jwksHits.Load() != hits {
		t.Fatal("a token the kid-less key verifies caused a fetch")
	}
	srv.set(jwksJSON(t, publicJWK(t, &k.ec256.PublicKey, "", "ES256"), publicJWK(t, &k.rsa.PublicKey, "k2", "RS256")), false)
	agePastGap(v, srv.URL)
	if _, e := identityOf(v.Verify(t0ctx, Bearer(mint(t, "RS256", k.rsa, "k2", nil, claimsFor(srv.URL, nil))))); e != nil {
		t.Fatalf("new kid next to a kid-less key: %v", e)
	}
}

// An IdP down from the start: 503 with a Retry-After of 1-5 s, a start-up
// log that does not claim kept keys, retries at most 5 s apart, and
// "keys recovered" at INFO when it is back.
func TestOutageRetryAfterAndRecovery(t *testing.T) {
	k := keys(t)
	srv := newJWKSServer(t, nil)
	srv.set(nil, true)
	core, logs := observer.New(zapcore.DebugLevel)
	cfg := remoteConfig(srv.URL, IssuerConfig{JWKSURL: srv.URL + "/jwks", RefreshInterval: Duration(time.Hour)}, nil)
	cfg.Logger = zap.New(core)
	v := newVerifier(t, cfg)
	tok := mint(t, "ES256", k.ec256, "k1", nil, claimsFor(srv.URL, nil))
	eventually(t, 3*time.Second, "a failed fetch", func() bool { return logs.FilterMessageSnippet("fetch failed").Len() > 0 })
	_, e := identityOf(v.Verify(t0ctx, Bearer(tok)))
	if e == nil || e.Reason != audit.ReasonKeysUnavailable || e.RetryAfter < time.Second || e.RetryAfter > 5*time.Second {
		t.Fatalf("want keys_unavailable with Retry-After 1-5s, got %v (%v)", e, e)
	}
	if n := logs.FilterMessageSnippet("keeping the last good keys").Len(); n != 0 {
		t.Fatal("the start-up log claims kept keys while there are none")
	}
	srv.set(jwksJSON(t, publicJWK(t, &k.ec256.PublicKey, "k1", "ES256")), false)
	eventually(t, 8*time.Second, "keys after the IdP came back", func() bool { _, e := identityOf(v.Verify(t0ctx, Bearer(tok))); return e == nil })
	rec := logs.FilterMessage("jwks keys recovered").All()
	if len(rec) != 1 || rec[0].Level != zapcore.InfoLevel {
		t.Fatalf("want one INFO \"jwks keys recovered\", got %+v", rec)
	}
}
