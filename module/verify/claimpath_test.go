package verify

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/tenantgate/tenantgate/module/audit"

	"github.com/tenantgate/tenantgate/module/verify/jose"
)

func TestClaimPathLookup(t *testing.T) {
	payload := `{"org":{"id":"acme","a/b":"slash","m~n":"tilde","":"empty"},"realm_access":{"roles":["r1","r2"]},
		"groups":[{"name":"g0"},{"name":"g1"}],"plain":"p","/lead":"x"}`
	claims, err := jose.ParseObject([]byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		want string // JSON of the value; "" when absent
	}{
		{"plain", `"p"`},
		{"/plain", `"p"`},
		{"/org/id", `"acme"`},
		{"/org/a~1b", `"slash"`},
		{"/org/m~0n", `"tilde"`},
		{"/realm_access/roles", `["r1","r2"]`},
		{"/groups/1/name", `"g1"`},
		{"/groups/01/name", ""}, // leading zero
		{"/groups/2/name", ""},
		{"/groups/-/name", ""},
		{"/org/id/deeper", ""},
		{"/nope/id", ""},
		{"/~1lead", `"x"`},
		{"org.id", ""}, // a plain name, not a path
	} {
		p, err := parseClaimPath(tc.path)
		if err != nil {
			t.Fatalf("%s: %v", tc.path, err)
		}
		raw, ok := p.lookup(claims)
		got := ""
		if ok {
			var v any
			if err := json.Unmarshal(raw, &v); err != nil {
				t.Fatal(err)
			}
			b, _ := json.Marshal(v)
			got = string(b)
		}
		if got != tc.want {
			t.Errorf("%s: got %s, want %s", tc.path, got, tc.want)
		}
	}
	for _, bad := range []string{"", "/", "/org//id", "/a~2", "/a~"} {
		if _, err := parseClaimPath(bad); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
}

func TestVerifyJSONPointerClaims(t *testing.T) {
	k := keys(t)
	cfg := baseConfig(t)
	cfg.TenantClaim, cfg.UserClaim, cfg.RolesClaim = "/org/id", "/profile/user~1id", "/realm_access/roles"
	v := newVerifier(t, cfg)
	tok := mint(t, "RS256", k.rsa, "", nil, claimsFor(issRSA, map[string]any{
		"tenant_id":    nil,
		"roles":        nil,
		"org":          map[string]any{"id": "globex"},
		"profile":      map[string]any{"user/id": "u-7"},
		"realm_access": map[string]any{"roles": []string{"hedging:trade", "admin"}},
	}))
	id, e := identityOf(v.Verify(t0ctx, Bearer(tok)))
	if e != nil {
		t.Fatal(e)
	}
	if id.Tenant != "globex" || id.Subject != "u-7" || strings.Join(id.Roles, " ") != "hedging:trade admin" {
		t.Fatalf("%+v", id)
	}
	// The pointer's target missing: no tenant.
	tok = mint(t, "RS256", k.rsa, "", nil, claimsFor(issRSA, map[string]any{"org": map[string]any{"name": "x"}}))
	if _, e := identityOf(v.Verify(t0ctx, Bearer(tok))); e == nil || e.Reason != audit.ReasonNoTenant {
		t.Fatalf("want no_tenant, got %v", e)
	}
	// Roles of the wrong shape behind a pointer: missing_claim, as for a name.
	tok = mint(t, "RS256", k.rsa, "", nil, claimsFor(issRSA, map[string]any{"org": map[string]any{"id": "g"}, "realm_access": map[string]any{"roles": 5}}))
	if _, e := identityOf(v.Verify(t0ctx, Bearer(tok))); e == nil || e.Reason != audit.ReasonMissingClaim {
		t.Fatalf("want missing_claim, got %v", e)
	}
	bad := baseConfig(t)
	bad.RolesClaim = "/realm_access/~roles"
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "roles_claim: JSON pointer") {
		t.Fatalf("bad pointer: %v", err)
	}
}
