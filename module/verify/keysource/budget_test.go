package keysource

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

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
	hits := s.hits.Load()
	reloaded, err := NewTemplate(spec, e) // the new config, provisioned before the old one goes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reloaded.Close)
	old.Close() // the pool stays: the new config holds it
	if reloaded.Len() != 1 || s.hits.Load() != hits {
		t.Fatalf("after a reload: %d held, %d fetches", reloaded.Len(), s.hits.Load()-hits)
	}
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

// refusals counts the new-tenant budget's refusals as the gate's metric
// would.
type refusals struct {
	events
	mu sync.Mutex
	n  map[string]int
}

func (r *refusals) TenantBudgetRefused(issuer string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.n[issuer]++
}

func (r *refusals) count(issuer string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n[issuer]
}

// One client address flooding made-up tenants spends its own share only:
// another client's new tenant still passes at once, and the refusals say
// whose share was empty and are counted under the issuer.
func TestOneClientCannotStarveAnother(t *testing.T) {
	s := newIdP(t)
	s.set("/realms/real/jwks", jwks(t, "r"), 0)
	obs := &refusals{n: map[string]int{}}
	spec := TemplateSpec{Spec: Spec{Issuer: s.URL + "/realms/{tenant}", JWKSURL: s.URL + "/realms/{tenant}/jwks"}, Tenants: []string{AnyTenant}}
	tmpl, err := NewTemplate(spec, env(t, obs))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tmpl.Close)
	ctx := context.Background()
	refused := 0
	for i := range 50 {
		realm := fmt.Sprintf("madeup%d", i)
		_, e := tmpl.Lookup(ctx, s.URL+"/realms/"+realm, realm, "198.51.100.7")
		if e != nil && strings.Contains(e.Detail, "by this client address") {
			refused++
			if e.Reason != audit.ReasonKeysUnavailable || e.RetryAfter < time.Second {
				t.Fatalf("a client over its share: %+v", e)
			}
		}
	}
	if fetched := s.hits.Load(); fetched > NewTenantClientBurst+1 || refused < 50-NewTenantClientBurst-1 {
		t.Fatalf("one client's flood: %d fetches, %d refused (its share: %d at once)", fetched, refused, NewTenantClientBurst)
	}
	if got := obs.count(spec.Issuer); got != refused {
		t.Fatalf("refusals counted: %d, want %d", got, refused)
	}
	if h, e := tmpl.Lookup(ctx, s.URL+"/realms/real", "real", "203.0.113.9"); e != nil || h.Source().Keys().ByKid["r"] == nil {
		t.Fatalf("another client's new tenant during the flood: %v", e)
	}
}

// Many clients together still meet the issuer's budget: its refusal says
// so, with the time until it has room again.
func TestIssuerBudgetBoundsAllClients(t *testing.T) {
	s := newIdP(t)
	spec := TemplateSpec{Spec: Spec{Issuer: s.URL + "/realms/{tenant}", JWKSURL: s.URL + "/realms/{tenant}/jwks"}, Tenants: []string{AnyTenant}}
	tmpl, err := NewTemplate(spec, env(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tmpl.Close)
	var last error
	for i := range 3 * NewTenantBurst {
		realm := fmt.Sprintf("madeup%d", i)
		if _, e := tmpl.Lookup(context.Background(), s.URL+"/realms/"+realm, realm, fmt.Sprintf("192.0.2.%d", i)); e != nil && e.Reason == audit.ReasonKeysUnavailable {
			last = e
			if !strings.Contains(e.Detail, "new-tenant budget spent (") || e.RetryAfter < time.Second {
				t.Fatalf("the issuer's budget: %+v", e)
			}
		}
	}
	if last == nil || s.hits.Load() > NewTenantBurst+1 {
		t.Fatalf("%d clients: %d fetches (issuer budget %d)", 3*NewTenantBurst, s.hits.Load(), NewTenantBurst)
	}
}

func TestClientKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1":            "192.0.2.1",
		"::ffff:192.0.2.1":     "192.0.2.1",
		"2001:db8:1:2:3:4:5:6": "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::1": "2001:db8:1:2::/64",
		"2001:db8:1:3::1":      "2001:db8:1:3::/64",
		"":                     "",
		"not an address":       "not an address",
	} {
		if got := clientKey(in); got != want {
			t.Errorf("clientKey(%q) = %q, want %q", in, got, want)
		}
	}
}

// A reload with a lower max_tenants evicts the least recently used; the
// last config to leave closes the pool, and the next one starts empty.
func TestPoolFollowsTheNewestConfig(t *testing.T) {
	s := newIdP(t)
	for _, r := range []string{"a", "b", "c"} {
		s.set("/realms/"+r+"/jwks", jwks(t, r), 0)
	}
	e := env(t, nil)
	spec := TemplateSpec{Spec: Spec{Issuer: s.URL + "/realms/{tenant}", JWKSURL: s.URL + "/realms/{tenant}/jwks"}, Tenants: []string{AnyTenant}}
	old, err := NewTemplate(spec, e)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, r := range []string{"a", "b", "c", "a"} {
		if _, ve := old.Lookup(ctx, s.URL+"/realms/"+r, r, ""); ve != nil {
			t.Fatal(ve)
		}
	}
	spec.MaxTenants = 2
	next, err := NewTemplate(spec, e)
	if err != nil {
		t.Fatal(err)
	}
	old.Close()
	if next.Len() != 2 || e.Feeds.HeldTenants() != 2 {
		t.Fatalf("max_tenants 2 after a reload: %d held", next.Len())
	}
	hits := s.hits.Load()
	if _, ve := next.Lookup(ctx, s.URL+"/realms/a", "a", ""); ve != nil || s.hits.Load() != hits {
		t.Fatalf("the most recently used tenant: %v, %d fetches", ve, s.hits.Load()-hits)
	}
	next.Close()
	if e.Feeds.HeldTenants() != 0 {
		t.Fatal("the last config left and the pool still holds tenants")
	}
	fresh, err := NewTemplate(spec, e)
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	if fresh.Len() != 0 {
		t.Fatalf("a config after the pool closed starts with %d tenants", fresh.Len())
	}
}
