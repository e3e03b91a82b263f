package rules

import (
	"strings"
	"testing"

	"github.com/tenantgate/tenantgate/module/audit"
)

// mustTable compiles Caddyfile-style rule lines (line numbers from 1).
func mustTable(t testing.TB, lines ...string) *Table {
	t.Helper()
	var rules []Rule
	for i, l := range lines {
		r, err := ParseRule(strings.Fields(l), i+1)
		if err != nil {
			t.Fatalf("ParseRule(%q): %v", l, err)
		}
		rules = append(rules, r)
	}
	tab, _, err := Compile(rules)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return tab
}

// designRules is the rule block of DESIGN.md's Caddyfile example.
var designRules = []string{
	"GET  /healthz                                 public",
	"GET  /api/v1/ensemble/                        authenticated",
	"POST /api/v1/ensemble/create                  roles ensemble:write",
	"POST /api/v1/ensemble/{ensemble_id}/predict   roles ensemble:read ensemble:write",
	"*    /api/v1/tenants/{tenant}/**              tenant_param tenant",
	"GET,POST /api/v1/hedging/**                   roles hedging:trade tenants acme globex",
}

func TestMatch(t *testing.T) {
	tab := mustTable(t, append(designRules,
		"GET /files/{id}/meta public",          // 7
		"GET /files/{id}/{part} authenticated", // 8
		"GET /files/x/raw roles raw",           // 9: shadowed by 8, which comes first
		"GET /order/x/** roles early",          // 10
		"GET /order/{id}/y roles late",         // 11
		"GET /order/{id}/z roles zed",          // 12
		"PUT / roles root",                     // 13
		"DELETE /** roles admin",               // 14
	)...)
	tests := []struct {
		method, path string
		want         int // 1-based rule number, 0 = no match
		params       map[string]string
	}{
		{"GET", "/healthz", 1, nil},
		{"HEAD", "/healthz", 1, nil}, // GET covers HEAD
		{"POST", "/healthz", 0, nil},
		{"GET", "/healthz/", 0, nil},
		{"GET", "/healthz/x", 0, nil},
		{"GET", "/HEALTHZ", 0, nil}, // case is significant
		{"get", "/healthz", 0, nil}, // methods compare exactly
		// trailing slash is significant
		{"GET", "/api/v1/ensemble/", 2, nil},
		{"GET", "/api/v1/ensemble", 0, nil},
		{"GET", "/api/v1/ensemble/abc", 0, nil},
		// literal before param in config order
		{"POST", "/api/v1/ensemble/create", 3, nil},
		{"POST", "/api/v1/ensemble/e1/predict", 4, map[string]string{"ensemble_id": "e1"}},
		{"POST", "/api/v1/ensemble//predict", 0, nil}, // {name} never matches empty
		{"POST", "/api/v1/ensemble/e1/predict/", 0, nil},
		// ** with zero, one, many segments, any method for *
		{"DELETE", "/api/v1/tenants/acme", 5, map[string]string{"tenant": "acme"}},
		{"PATCH", "/api/v1/tenants/acme/", 5, map[string]string{"tenant": "acme"}},
		{"GET", "/api/v1/tenants/acme/a/b/c", 5, map[string]string{"tenant": "acme", "missing": ""}},
		{"GET", "/api/v1/tenants/", 0, nil},
		{"GET", "/api/v1/tenants", 0, nil},
		{"GET", "/api/v1/hedging", 6, nil},
		{"POST", "/api/v1/hedging/execute", 6, nil},
		{"HEAD", "/api/v1/hedging/analysis", 6, nil},
		{"PUT", "/api/v1/hedging/execute", 0, nil},
		// first match across param branches
		{"GET", "/files/x/meta", 7, map[string]string{"id": "x"}},
		{"GET", "/files/x/raw", 8, map[string]string{"id": "x", "part": "raw"}},
		// a ** rule listed before a param rule wins, and vice versa
		{"GET", "/order/x/y", 10, nil},
		{"GET", "/order/w/y", 11, map[string]string{"id": "w"}},
		{"GET", "/order/x/z", 10, nil},
		{"GET", "/order/w/z", 12, nil},
		// root and catch-all
		{"PUT", "/", 13, nil},
		{"GET", "/", 0, nil},
		{"DELETE", "/", 14, nil},
		{"DELETE", "/api/v1/ensemble/create", 14, nil},
		// not a path
		{"GET", "", 0, nil},
		{"GET", "healthz", 0, nil},
	}
	for _, tc := range tests {
		m, ok := tab.Match(tc.method, tc.path)
		got := 0
		if ok {
			got = m.Index + 1
			if m.Rule != &tab.rules[m.Index] {
				t.Errorf("%s %s: Rule does not point at rule %d", tc.method, tc.path, got)
			}
		} else if m.Index != -1 || m.Rule != nil {
			t.Errorf("%s %s: no match but Match = %+v", tc.method, tc.path, m)
		}
		if got != tc.want {
			t.Errorf("%s %s: rule %d, want %d", tc.method, tc.path, got, tc.want)
			continue
		}
		for k, v := range tc.params {
			if p := m.Param(k); p != v {
				t.Errorf("%s %s: Param(%q) = %q, want %q", tc.method, tc.path, k, p, v)
			}
		}
	}
}

func TestMatchNilTable(t *testing.T) {
	var tab *Table
	if _, ok := tab.Match("GET", "/"); ok {
		t.Fatal("nil table matched")
	}
	if tab.Rules() != nil {
		t.Fatal("nil table has rules")
	}
}

func TestMatchAllocs(t *testing.T) {
	tab := mustTable(t, designRules...)
	allocs := testing.AllocsPerRun(100, func() {
		m, ok := tab.Match("POST", "/api/v1/ensemble/e1/predict")
		if !ok || m.Param("ensemble_id") != "e1" {
			t.Fatal("no match")
		}
		_ = m.Authorize("acme", []string{"ensemble:read"})
	})
	if allocs != 0 {
		t.Fatalf("Match+Param+Authorize allocate %v times", allocs)
	}
}

func TestAuthorize(t *testing.T) {
	tab := mustTable(t,
		"GET /pub public",
		"GET /auth authenticated",
		"GET /roles roles a b",
		"GET /t/{tenant}/x tenant_param tenant",
		"GET /allow tenants acme globex",
		"GET /all/{tenant} roles a tenant_param tenant tenants acme",
	)
	tests := []struct {
		path, tenant string
		roles        []string
		want         audit.Reason
	}{
		{"/pub", "", nil, audit.ReasonOK},
		{"/auth", "acme", nil, audit.ReasonOK},
		{"/auth", "", nil, audit.ReasonNoTenant},
		{"/roles", "acme", []string{"b"}, audit.ReasonOK},
		{"/roles", "acme", []string{"c", "a"}, audit.ReasonOK},
		{"/roles", "acme", []string{"A"}, audit.ReasonMissingRole},
		{"/roles", "acme", nil, audit.ReasonMissingRole},
		{"/t/acme/x", "acme", nil, audit.ReasonOK},
		{"/t/acme/x", "globex", nil, audit.ReasonTenantMismatch},
		{"/t/ACME/x", "acme", nil, audit.ReasonTenantMismatch},
		{"/allow", "globex", nil, audit.ReasonOK},
		{"/allow", "initech", nil, audit.ReasonTenantNotAllow},
		// order: tenant_mismatch, tenant_not_allowed, missing_role
		{"/all/acme", "acme", []string{"a"}, audit.ReasonOK},
		{"/all/globex", "acme", nil, audit.ReasonTenantMismatch},
		{"/all/globex", "globex", nil, audit.ReasonTenantNotAllow},
		{"/all/acme", "acme", []string{"x"}, audit.ReasonMissingRole},
	}
	for _, tc := range tests {
		m, ok := tab.Match("GET", tc.path)
		if !ok {
			t.Fatalf("no match for %s", tc.path)
		}
		if got := m.Authorize(tc.tenant, tc.roles); got != tc.want {
			t.Errorf("%s tenant=%q roles=%q: %s, want %s", tc.path, tc.tenant, tc.roles, got, tc.want)
		}
	}
	if got := (Match{Index: -1}).Authorize("acme", nil); got != audit.ReasonNoRoute {
		t.Errorf("zero Match authorizes: %s", got)
	}
}
