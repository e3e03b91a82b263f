package verify

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/module/audit"

	"github.com/tenantgate/tenantgate/module/verify/jose"
)

// countingObserver counts cache lookups.
type countingObserver struct{ hits, misses atomic.Int64 }

func (o *countingObserver) TokenCacheLookup(hit bool) {
	if hit {
		o.hits.Add(1)
	} else {
		o.misses.Add(1)
	}
}

// testClock is a settable clock for Config.Now.
type testClock struct{ ns atomic.Int64 }

func newTestClock(t time.Time) *testClock {
	c := &testClock{}
	c.set(t)
	return c
}
func (c *testClock) set(t time.Time) { c.ns.Store(t.UnixNano()) }
func (c *testClock) now() time.Time  { return time.Unix(0, c.ns.Load()) }

// swappableSource is a static key set a test can replace, as a refresh does.
type swappableSource struct{ set atomic.Pointer[jose.KeySet] }

func (s *swappableSource) Keys() *jose.KeySet { return s.set.Load() }
func (s *swappableSource) UnknownKid(context.Context, string) (*jose.KeySet, time.Duration) {
	return s.set.Load(), 0
}
func (s *swappableSource) Unavailable() time.Duration { return 0 }
func (s *swappableSource) Announce()                  {}
func (s *swappableSource) Close()                     {}

func cachedVerifier(t testing.TB, size int, clock *testClock, leeway ...time.Duration) (*Verifier, *countingObserver) {
	t.Helper()
	cfg := baseConfig(t)
	obs := &countingObserver{}
	cfg.TokenCache, cfg.CacheObserver, cfg.Now = entries(size), obs, clock.now
	if len(leeway) > 0 {
		l := Duration(leeway[0])
		cfg.Leeway = &l
	}
	return newVerifier(t, cfg), obs
}

func TestCacheHitAfterMiss(t *testing.T) {
	k := keys(t)
	v, obs := cachedVerifier(t, 100, newTestClock(testNow))
	for _, tc := range []struct{ Alg, Kid, iss string }{
		{"RS256", "", issRSA}, {"ES256", "ec1", issEC}, {"EdDSA", "ed1", issEd}, {"HS256", "", issHS},
	} {
		var key any
		switch tc.Alg {
		case "RS256":
			key = k.rsa
		case "ES256":
			key = k.ec256
		case "EdDSA":
			key = k.ed
		case "HS256":
			key = k.hmac
		}
		tok := mint(t, tc.Alg, key, tc.Kid, nil, claimsFor(tc.iss, nil))
		h0, m0 := obs.hits.Load(), obs.misses.Load()
		first, e := identityOf(v.Verify(t0ctx, Bearer(tok)))
		if e != nil {
			t.Fatalf("%s: %v", tc.Alg, e)
		}
		second, e := identityOf(v.Verify(t0ctx, Bearer(tok)))
		if e != nil {
			t.Fatalf("%s cached: %v", tc.Alg, e)
		}
		if obs.misses.Load()-m0 != 1 || obs.hits.Load()-h0 != 1 {
			t.Errorf("%s: %d misses, %d hits; want 1 and 1", tc.Alg, obs.misses.Load()-m0, obs.hits.Load()-h0)
		}
		if first != second || second.Tenant != "acme" || second.Issuer != tc.iss {
			t.Errorf("%s: cached identity %+v, first %+v", tc.Alg, second, first)
		}
	}
	if n := v.CachedTokens(); n != 4 {
		t.Errorf("CachedTokens = %d, want 4", n)
	}
}

// A cached token's times are judged exactly as an uncached token's: at
// every clock offset around exp, nbf and iat both verifiers agree.
func TestCacheTimesMatchFullVerification(t *testing.T) {
	k := keys(t)
	leeway := 10 * time.Second
	exp, nbf := testNow.Add(time.Minute), testNow.Add(-time.Minute)
	tok := mint(t, "EdDSA", k.ed, "ed1", nil, claimsFor(issEd, map[string]any{
		"exp": exp.Unix(), "nbf": nbf.Unix(), "iat": nbf.Unix(),
	}))
	clock := newTestClock(testNow)
	cached, obs := cachedVerifier(t, 100, clock, leeway)
	plainCfg := baseConfig(t)
	l := Duration(leeway)
	plainCfg.Leeway, plainCfg.Now, plainCfg.TokenCache = &l, clock.now, entries(0)
	plain := newVerifier(t, plainCfg)
	if _, e := identityOf(cached.Verify(t0ctx, Bearer(tok))); e != nil {
		t.Fatal(e)
	}
	for _, at := range []time.Time{
		exp, exp.Add(leeway - time.Second), exp.Add(leeway), exp.Add(leeway + 999*time.Millisecond),
		exp.Add(leeway + time.Second), exp.Add(time.Hour),
		nbf, nbf.Add(-leeway), nbf.Add(-leeway - time.Millisecond), nbf.Add(-leeway - time.Second), nbf.Add(-time.Hour),
	} {
		clock.set(at)
		_, ec := identityOf(cached.Verify(t0ctx, Bearer(tok)))
		_, ep := identityOf(plain.Verify(t0ctx, Bearer(tok)))
		if reasonOf(ec) != reasonOf(ep) {
			t.Errorf("at %s: cached %q, uncached %q", at.Sub(testNow), reasonOf(ec), reasonOf(ep))
		}
	}
	if obs.hits.Load() == 0 {
		t.Fatal("no lookup hit the cache")
	}
	// Both sides of each boundary were tried.
	clock.set(exp.Add(leeway))
	if _, e := identityOf(cached.Verify(t0ctx, Bearer(tok))); e != nil {
		t.Errorf("at exp+leeway: %v", e)
	}
	clock.set(exp.Add(leeway + time.Second))
	if _, e := identityOf(cached.Verify(t0ctx, Bearer(tok))); reasonOf(e) != audit.ReasonTokenExpired {
		t.Errorf("after exp+leeway: %v", e)
	}
}

func reasonOf(e *Error) audit.Reason {
	if e == nil {
		return audit.ReasonOK
	}
	return e.Reason
}

func TestCacheKeyLeavesSet(t *testing.T) {
	k := keys(t)
	clock := newTestClock(testNow)
	v, obs := cachedVerifier(t, 100, clock)
	src := &swappableSource{}
	is := v.issuers[issEd]
	src.set.Store(is.src.Keys())
	is.src = src
	tok := mint(t, "EdDSA", k.ed, "ed1", nil, claimsFor(issEd, nil))
	if _, e := identityOf(v.Verify(t0ctx, Bearer(tok))); e != nil {
		t.Fatal(e)
	}

	// A refresh that builds the same key anew keeps the entry.
	same, err := jose.NewKeySet([]*jose.Key{{Kid: "ed1", Alg: "EdDSA", Kind: jose.KindEd25519, Pub: append(ed25519.PublicKey(nil), k.ed.Public().(ed25519.PublicKey)...)}})
	if err != nil {
		t.Fatal(err)
	}
	src.set.Store(same)
	h0 := obs.hits.Load()
	if _, e := identityOf(v.Verify(t0ctx, Bearer(tok))); e != nil || obs.hits.Load() != h0+1 {
		t.Fatalf("same key rebuilt: %v, hit %v", e, obs.hits.Load() != h0)
	}

	// Another key under the same kid: the entry goes, the token fails.
	other := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize)).Public().(ed25519.PublicKey)
	rotated, _ := jose.NewKeySet([]*jose.Key{{Kid: "ed1", Alg: "EdDSA", Kind: jose.KindEd25519, Pub: other}})
	src.set.Store(rotated)
	m0 := obs.misses.Load()
	if _, e := identityOf(v.Verify(t0ctx, Bearer(tok))); reasonOf(e) != audit.ReasonBadSignature || obs.misses.Load() != m0+1 {
		t.Fatalf("rotated key: %v, miss %v", e, obs.misses.Load() != m0)
	}

	// The key gone from the set altogether.
	src.set.Store(same)
	if _, e := identityOf(v.Verify(t0ctx, Bearer(tok))); e != nil {
		t.Fatal(e)
	}
	empty, _ := jose.NewKeySet([]*jose.Key{{Kid: "ed2", Alg: "EdDSA", Kind: jose.KindEd25519, Pub: other}})
	src.set.Store(empty)
	if _, e := identityOf(v.Verify(t0ctx, Bearer(tok))); reasonOf(e) != audit.ReasonUnknownKey {
		t.Fatalf("key removed: %v", e)
	}
}

func TestCacheNeverKeepsFailures(t *testing.T) {
	k := keys(t)
	v, obs := cachedVerifier(t, 100, newTestClock(testNow))
	tok := mint(t, "EdDSA", k.ed, "ed1", nil, claimsFor(issEd, nil))
	if _, e := identityOf(v.Verify(t0ctx, Bearer(tok))); e != nil {
		t.Fatal(e)
	}
	// One byte off: a different token, verified afresh and refused.
	b := []byte(tok)
	i := strings.LastIndexByte(tok, '.') + 3
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	for range 2 {
		if _, e := identityOf(v.Verify(t0ctx, Bearer(string(b)))); e == nil {
			t.Fatal("a token one byte off verified")
		}
	}
	noTenant := mint(t, "EdDSA", k.ed, "ed1", nil, claimsFor(issEd, map[string]any{"tenant_id": nil}))
	for range 2 {
		id, e := identityOf(v.Verify(t0ctx, Bearer(noTenant)))
		if reasonOf(e) != audit.ReasonNoTenant || id == nil {
			t.Fatalf("no tenant: %v %v", id, e)
		}
	}
	if obs.hits.Load() != 0 || obs.misses.Load() != 5 {
		t.Errorf("%d hits, %d misses; want 0 and 5", obs.hits.Load(), obs.misses.Load())
	}
	if n := v.CachedTokens(); n != 1 {
		t.Errorf("CachedTokens = %d, want 1", n)
	}
}

func TestCacheSkipsLongTokensAndCanBeOff(t *testing.T) {
	k := keys(t)
	v, obs := cachedVerifier(t, 100, newTestClock(testNow))
	long := mint(t, "EdDSA", k.ed, "ed1", nil, claimsFor(issEd, map[string]any{"pad": strings.Repeat("x", MaxCachedTokenBytes)}))
	for range 2 {
		if _, e := identityOf(v.Verify(t0ctx, Bearer(long))); e != nil {
			t.Fatal(e)
		}
	}
	if obs.hits.Load()+obs.misses.Load() != 0 || v.CachedTokens() != 0 {
		t.Errorf("a token of %d bytes went through the cache", len(long))
	}

	off, offObs := cachedVerifier(t, 0, newTestClock(testNow))
	tok := mint(t, "EdDSA", k.ed, "ed1", nil, claimsFor(issEd, nil))
	for range 2 {
		if _, e := identityOf(off.Verify(t0ctx, Bearer(tok))); e != nil {
			t.Fatal(e)
		}
	}
	if offObs.hits.Load()+offObs.misses.Load() != 0 || off.cache != nil {
		t.Error("the cache is on with size 0")
	}
}

func TestCacheBoundedUnderFlood(t *testing.T) {
	k := keys(t)
	const size = 20
	v, _ := cachedVerifier(t, size, newTestClock(testNow))
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				tok := mint(t, "HS256", k.hmac, "", nil, claimsFor(issHS, map[string]any{"jti": fmt.Sprintf("%d-%d", w, i)}))
				if _, e := identityOf(v.Verify(t0ctx, Bearer(tok))); e != nil {
					t.Error(e)
					return
				}
			}
		}()
	}
	wg.Wait()
	v.cache.c.CleanUp()
	if n := v.CachedTokens(); n > size || n == 0 {
		t.Errorf("CachedTokens = %d after 400 unique tokens, want 1..%d", n, size)
	}
}

func TestCacheClosedWithVerifier(t *testing.T) {
	k := keys(t)
	v, _ := cachedVerifier(t, 100, newTestClock(testNow))
	if _, e := identityOf(v.Verify(t0ctx, Bearer(mint(t, "HS256", k.hmac, "", nil, claimsFor(issHS, nil))))); e != nil {
		t.Fatal(e)
	}
	v.Close()
	if n := v.CachedTokens(); n != 0 {
		t.Errorf("CachedTokens = %d after Close", n)
	}
}
