package tenantgate

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/tenantgate/tenantgate/module/assertion"

	"github.com/tenantgate/tenantgate/module/verify"
)

// A token in the verified-token cache still meets the route rule on every
// request: cached for a route it may use, refused on one whose roles it lacks.
func TestCachedTokenStillMeetsTheRule(t *testing.T) {
	u := newUnitGate(t, nil)
	tok := u.token(t, "acme", "reader")
	for range 2 {
		r := httptest.NewRequest("GET", "/api/whoami", nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		if w, _ := u.serve(r, &upstream{}); w.Code != 200 {
			t.Fatalf("whoami: %d", w.Code)
		}
	}
	if n := u.g.keys.CachedTokens(); n != 1 {
		t.Fatalf("CachedTokens = %d, want 1", n)
	}
	r := httptest.NewRequest("POST", "/api/trade", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	up := &upstream{}
	w, _ := u.serve(r, up)
	if w.Code != 403 || up.called || problemOf(t, w).Reason != "missing_role" {
		t.Fatalf("cached token on a route needing trade: %d %s", w.Code, w.Body)
	}
}

func TestTokenCacheOff(t *testing.T) {
	u := newUnitGate(t, func(g *Gate) { n := 0; g.TokenCache = &n })
	r := httptest.NewRequest("GET", "/api/whoami", nil)
	r.Header.Set("Authorization", "Bearer "+u.token(t, "acme"))
	if w, _ := u.serve(r, &upstream{}); w.Code != 200 {
		t.Fatalf("status %d", w.Code)
	}
	if n := u.g.keys.CachedTokens(); n != 0 {
		t.Errorf("CachedTokens = %d with token_cache off", n)
	}
}

// assertion_alg HS256 signs with assertion_secret (placeholders expanded);
// the backend's HMAC verifier accepts it, one with another secret does not.
func TestHS256Assertion(t *testing.T) {
	secret := strings.Repeat("z", 32)
	t.Setenv("TG_UNIT_ASSERTION_SECRET", secret)
	u := newUnitGate(t, func(g *Gate) {
		g.AssertionKey, g.AssertionAlg, g.AssertionSecret = "", "HS256", "{env.TG_UNIT_ASSERTION_SECRET}"
	})
	r := httptest.NewRequest("GET", "/api/whoami", nil)
	r.Header.Set("Authorization", "Bearer "+u.token(t, "acme"))
	up := &upstream{}
	if w, _ := u.serve(r, up); w.Code != 200 {
		t.Fatalf("status %d", w.Code)
	}
	raw := up.header.Get(assertion.Header)
	good, _ := assertion.NewHMACVerifier([]byte(secret), "backend")
	if c, err := good.Verify(raw, "GET", "/api/whoami", time.Now()); err != nil || c.Tenant != "acme" {
		t.Fatalf("HS256 assertion: %+v %v", c, err)
	}
	bad, _ := assertion.NewHMACVerifier([]byte(strings.Repeat("y", 32)), "backend")
	if _, err := bad.Verify(raw, "GET", "/api/whoami", time.Now()); err == nil {
		t.Fatal("another secret verified the assertion")
	}
	if _, err := u.verifier.Verify(raw, "GET", "/api/whoami", time.Now()); err == nil {
		t.Fatal("the Ed25519 verifier took an HS256 assertion")
	}
}

func TestAssertionConfigProblems(t *testing.T) {
	t.Setenv("TG_UNIT_SHORT", "short")
	for name, tc := range map[string]struct {
		mutate func(*Gate)
		want   string
	}{
		"hs256 without secret":   {func(g *Gate) { g.AssertionKey, g.AssertionAlg = "", "HS256" }, "assertion_secret is required"},
		"hs256 short secret":     {func(g *Gate) { g.AssertionKey, g.AssertionAlg, g.AssertionSecret = "", "HS256", "{env.TG_UNIT_SHORT}" }, "at least 32"},
		"hs256 with a key":       {func(g *Gate) { g.AssertionAlg, g.AssertionSecret = "HS256", strings.Repeat("x", 32) }, "assertion_key is for assertion_alg EdDSA"},
		"eddsa with a secret":    {func(g *Gate) { g.AssertionSecret = strings.Repeat("x", 32) }, "assertion_secret is for assertion_alg HS256"},
		"unknown alg":            {func(g *Gate) { g.AssertionAlg = "RS256" }, `assertion_alg "RS256"`},
		"negative cache entries": {func(g *Gate) { n := -1; g.TokenCache = &n }, "token_cache -1"},
	} {
		t.Run(name, func(t *testing.T) {
			g := &Gate{Settings: verify.Settings{
				Issuers:    []Issuer{{Issuer: "https://a", HMACSecret: strings.Repeat("h", 32), Audiences: []string{"x"}}},
				Algorithms: []string{"HS256"},
			},
				AssertionKey: "/nonexistent/assertion.pem"}
			tc.mutate(g)
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			defer cancel()
			defer func() { _ = g.Cleanup() }()
			if err := g.Provision(ctx); err != nil {
				t.Fatalf("provision: %v", err)
			}
			if err := g.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate: %v, want %q", err, tc.want)
			}
		})
	}
}
