package verify

import (
	"context"
	"testing"
	"time"
)

// One Store serves successive configs: their caches, replay set and held
// tenants show in Stats while they live, and leave it when they close.
func TestStoreStatsFollowLiveVerifiers(t *testing.T) {
	k := keys(t)
	st := NewStore()
	t.Cleanup(func() { _ = st.Destruct() })
	if got := st.Stats(); got != (Stats{}) {
		t.Fatalf("a new store: %+v", got)
	}

	cfg := baseConfig(t)
	cfg.Store, cfg.TokenCache = st, entries(100)
	v := newVerifier(t, cfg)
	if _, e := identityOf(v.Verify(t0ctx, Bearer(mint(t, "EdDSA", k.ed, "ed1", nil, claimsFor(issEd, nil))))); e != nil {
		t.Fatal(e)
	}
	cl := newDPoPClient(t)
	tok := boundToken(t, issEC, map[string]any{"jkt": cl.jkt}, nil)
	if _, e := identityOf(v.Verify(t0ctx, dpopRequest(tok, cl.proof(t, proofClaims("GET", testHTU, tok, testNow), nil)))); e != nil {
		t.Fatal(e)
	}

	s := newRealmServer(t)
	s.add(t, "acme", k.rsa, "k1")
	tcfg := templateConfig(IssuerConfig{Issuer: s.template(), JWKSURL: s.URL + "/realms/{tenant}/jwks", Tenants: []string{"acme"}}, nil)
	tcfg.Store = st
	tv := newVerifier(t, tcfg)
	if _, e := identityOf(tv.Verify(t0ctx, Bearer(realmToken(t, s, "acme", k.rsa, "k1", nil)))); e != nil {
		t.Fatal(e)
	}

	eventually(t, 2*time.Second, "the cache entries to show", func() bool { return st.Stats().TokenCacheEntries >= 2 })
	got := st.Stats()
	if got.ReplayCacheEntries != 1 || got.HeldTenants != 1 || got.KeySets != 1 {
		t.Fatalf("stats with two live verifiers: %+v", got)
	}

	v.Close()
	tv.Close()
	got = st.Stats()
	if got.TokenCacheEntries != 0 || got.HeldTenants != 0 {
		t.Fatalf("closed verifiers still counted: %+v", got)
	}
	if got.ReplayCacheEntries != 1 || got.KeySets != 1 {
		t.Fatalf("the replay set and key sets belong to the store, not to a config: %+v", got)
	}
}

// Destruct stops the store's refreshers although a verifier still uses
// it; the keys it holds stay usable.
func TestStoreDestructStopsFetching(t *testing.T) {
	k := keys(t)
	srv := newJWKSServer(t, jwksJSON(t, publicJWK(t, &k.ec256.PublicKey, "k1", "ES256")))
	cfg := remoteConfig(srv.URL, IssuerConfig{JWKSURL: srv.URL + "/jwks", RefreshInterval: Duration(20 * time.Millisecond)}, nil)
	v := newVerifier(t, cfg)
	tok := mint(t, "ES256", k.ec256, "k1", nil, claimsFor(srv.URL, nil))
	eventually(t, 3*time.Second, "keys", func() bool { _, e := identityOf(v.Verify(t0ctx, Bearer(tok))); return e == nil })
	eventually(t, 3*time.Second, "refreshes", func() bool { return srv.jwksHits.Load() >= 3 })
	if err := cfg.Store.Destruct(); err != nil {
		t.Fatal(err)
	}
	_ = cfg.Store.Destruct() // idempotent
	// A request sent just before Destruct may still reach the server's handler.
	n := settled(t, srv.jwksHits.Load)
	time.Sleep(150 * time.Millisecond)
	if srv.jwksHits.Load() != n {
		t.Fatal("refreshing continued after Destruct")
	}
	if _, e := identityOf(v.Verify(t0ctx, Bearer(tok))); e != nil {
		t.Fatalf("the keys held are still served: %v", e)
	}
	// A config joining the destroyed store serves its keys and fetches nothing.
	v2 := newVerifier(t, cfg)
	if _, e := identityOf(v2.Verify(t0ctx, Bearer(tok))); e != nil {
		t.Fatal(e)
	}
	time.Sleep(60 * time.Millisecond)
	if srv.jwksHits.Load() != n {
		t.Fatal("a config joining a destroyed store fetched")
	}
}

// The config's context ends the verifier: its sources leave the store.
func TestContextEndClosesVerifier(t *testing.T) {
	k := keys(t)
	s := newRealmServer(t)
	s.add(t, "acme", k.rsa, "k1")
	cfg := templateConfig(IssuerConfig{Issuer: s.template(), JWKSURL: s.URL + "/realms/{tenant}/jwks", Tenants: []string{"*"}}, nil)
	cfg.Store = NewStore()
	t.Cleanup(func() { _ = cfg.Store.Destruct() })
	ctx, cancel := context.WithCancel(t0ctx)
	v, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, e := identityOf(v.Verify(t0ctx, Bearer(realmToken(t, s, "acme", k.rsa, "k1", nil)))); e != nil {
		t.Fatal(e)
	}
	cancel()
	eventually(t, 2*time.Second, "the held tenant to leave the store's stats", func() bool { return cfg.Store.Stats().HeldTenants == 0 })
	if _, e := identityOf(v.Verify(t0ctx, Bearer(realmToken(t, s, "globex", k.rsa, "k1", nil)))); e == nil {
		t.Fatal("a closed verifier admitted a new tenant")
	}
}
