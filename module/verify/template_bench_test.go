package verify

import (
	"fmt"
	"runtime"
	"testing"
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

// BenchmarkTenantKeySetMemory reports the heap each held tenant costs
// (its tenant state, remote source, parsed key set of one RSA-2048 key,
// and its cache entry), measured over 200 tenants.
func BenchmarkTenantKeySetMemory(b *testing.B) {
	k := keys(b)
	s := newRealmServer(b)
	const tenants = 200
	names := make([]string, tenants)
	for i := range tenants {
		names[i] = fmt.Sprintf("t%d", i)
		s.add(b, names[i], k.rsa, "k1")
	}
	for b.Loop() {
		// Listed tenants: the rate limit for new tenants (tenants *) is
		// not what is measured.
		v := newVerifier(b, templateConfig(IssuerConfig{Issuer: s.template(), JWKSURL: s.URL + "/realms/{tenant}/jwks", Tenants: names, MaxTenants: tenants}, nil))
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for _, tenant := range names {
			if _, e := v.templates[0].lookup(t0ctx, s.iss(tenant), tenant); e != nil {
				b.Fatal(e)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if got := v.TenantStatus()[s.template()]; got != tenants {
			b.Fatalf("held %d tenants", got)
		}
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/tenants, "B/tenant")
		v.Close()
	}
}
