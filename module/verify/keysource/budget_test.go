package keysource

import (
	"context"
	"fmt"
	"testing"

	"github.com/tenantgate/tenantgate/module/audit"
)

// After a reload (a new Template on the same process Feeds) a tenant whose
// keys the process holds passes while made-up tenants have spent the
// new-tenant budget; a new tenant does not.
func TestHeldTenantsSkipTheBudgetAcrossReloads(t *testing.T) {
	s := newIdP(t)
	s.set("/realms/acme/jwks", jwks(t, "a"), 0)
	s.set("/realms/fresh/jwks", jwks(t, "f"), 0)
	e := env(t, nil)
	spec := TemplateSpec{Spec: Spec{Issuer: s.URL + "/realms/{tenant}", JWKSURL: s.URL + "/realms/{tenant}/jwks"}, Tenants: []string{"*"}}
	old, err := NewTemplate(spec, e)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, e := old.Lookup(ctx, s.URL+"/realms/acme", "acme", ""); e != nil {
		t.Fatal(e)
	}
	reloaded, err := NewTemplate(spec, e) // the new config, provisioned before the old one goes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reloaded.Close)
	old.Close() // acme's keys stay in the Feeds, idle
	for i := range NewTenantBurst + 5 {
		realm := fmt.Sprintf("madeup%d", i)
		_, _ = reloaded.Lookup(ctx, s.URL+"/realms/"+realm, realm, "")
	}
	if _, e := reloaded.Lookup(ctx, s.URL+"/realms/fresh", "fresh", ""); e == nil || e.Reason != audit.ReasonKeysUnavailable || e.Detail == "" {
		t.Fatalf("a new tenant past the budget: %v", e)
	}
	if h, e := reloaded.Lookup(ctx, s.URL+"/realms/acme", "acme", ""); e != nil || h.Source().Keys().ByKid["a"] == nil {
		t.Fatalf("a held tenant after a reload waited on the budget: %v", e)
	}
}

// Listed tenants spend the budget too: cycling through real tenant names
// costs at most the budget's fetches.
func TestListedTenantsSpendTheBudget(t *testing.T) {
	s := newIdP(t)
	var names []string
	for i := range NewTenantBurst + 5 {
		name := fmt.Sprintf("t%d", i)
		names = append(names, name)
		s.set("/realms/"+name+"/jwks", jwks(t, "k"), 0)
	}
	tmpl, err := NewTemplate(TemplateSpec{Spec: Spec{Issuer: s.URL + "/realms/{tenant}", JWKSURL: s.URL + "/realms/{tenant}/jwks"},
		Tenants: names, MaxTenants: 2}, env(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tmpl.Close)
	refused := 0
	for _, name := range names {
		if _, e := tmpl.Lookup(context.Background(), s.URL+"/realms/"+name, name, ""); e != nil {
			if e.Reason != audit.ReasonKeysUnavailable {
				t.Fatalf("%s: %v", name, e)
			}
			refused++
		}
	}
	if refused == 0 || s.hits.Load() > int64(NewTenantBurst)+1 {
		t.Fatalf("listed tenants: %d refused, %d fetches (budget %d)", refused, s.hits.Load(), NewTenantBurst)
	}
}
