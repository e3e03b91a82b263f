package verify

import (
	"fmt"
	"sync"
	"testing"

	"github.com/tenantgate/tenantgate/module/verify/keysource"
)

// BenchmarkVerifyTemplateVsPlain verifies the same RS256 token shape
// through a plain remote issuer and through one tenant of a multi-tenant
// issuer (its key set already held), on the same loopback IdP. The
// difference is the template lookup: prefix/suffix match, tenant check,
// LRU hit, and the tenant claim comparison.
func BenchmarkVerifyTemplateVsPlain(b *testing.B) {
	k := keys(b)
	s := newRealmServer(b)
	s.add(b, "acme", k.rsa, "k1")
	cfg := templateConfig(IssuerConfig{Issuer: s.template(), JWKSURL: s.URL + "/realms/{tenant}/jwks", Tenants: []string{"*"}}, nil)
	cfg.Issuers = append(cfg.Issuers, IssuerConfig{Issuer: s.URL + "/plain", JWKSURL: s.URL + "/realms/acme/jwks", Audiences: []string{aud}})
	v := newVerifier(b, cfg)
	for _, bc := range []struct{ name, token string }{
		{"plain", mint(b, "RS256", k.rsa, "k1", nil, claimsFor(s.URL+"/plain", nil))},
		{"template", realmToken(b, s, "acme", k.rsa, "k1", map[string]any{"tenant_id": "acme"})}, // same claims as plain
	} {
		b.Run(bc.name, func(b *testing.B) {
			eventually(b, 5e9, "keys", func() bool { _, e := identityOf(v.Verify(t0ctx, Bearer(bc.token))); return e == nil })
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, e := identityOf(v.Verify(t0ctx, Bearer(bc.token))); e != nil {
					b.Fatal(e)
				}
			}
		})
	}
}

// BenchmarkHeldTenantVerify is the verify cost of a held tenant's token
// with 10 and with 10,000 tenants held by the same issuer block (one
// RS256 key per realm, no verified-token cache, so every request looks the
// tenant up and checks the signature), and of the issuer lookup alone,
// which is all the number of tenants could change. The two must stay
// within 10 % of each other (DESIGN "Scale").
func BenchmarkHeldTenantVerify(b *testing.B) {
	k := keys(b)
	s := newRealmServer(b)
	const most = 10000
	for i := range most {
		s.add(b, fmt.Sprintf("t%d", i), k.rsa, "k1")
	}
	for _, held := range []int{10, most} {
		cfg := templateConfig(IssuerConfig{Issuer: s.template(), JWKSURL: s.URL + "/realms/{tenant}/jwks", Tenants: []string{"*"}, MaxTenants: held}, nil)
		cfg.Store = newStoreWith(keysource.NoBudget) // the budget is not what is measured
		v := newVerifier(b, cfg)
		holdTenants(b, v, s, held)
		tok := realmToken(b, s, "t5", k.rsa, "k1", nil)
		b.Run(fmt.Sprintf("held=%d/verify", held), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, e := identityOf(v.Verify(t0ctx, Bearer(tok))); e != nil {
					b.Fatal(e)
				}
			}
		})
		b.Run(fmt.Sprintf("held=%d/lookup", held), func(b *testing.B) {
			b.ReportAllocs()
			iss := s.iss("t5")
			for b.Loop() {
				if _, e := v.lookupIssuer(t0ctx, iss, "192.0.2.1"); e != nil {
					b.Fatal(e)
				}
			}
		})
		v.Close()
		_ = cfg.Store.Destruct()
	}
}

// holdTenants has v hold the key sets of tenants t0 … t(n-1), 16 at a time.
func holdTenants(b *testing.B, v *Verifier, s *realmServer, n int) {
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 16 {
				tenant := fmt.Sprintf("t%d", i)
				if _, e := v.templates[0].lookup(t0ctx, s.iss(tenant), tenant, ""); e != nil {
					b.Error(e)
					return
				}
			}
		}()
	}
	wg.Wait()
	if got := v.TenantStatus()[s.template()]; got != n {
		b.Fatalf("held %d tenants, want %d", got, n)
	}
}
