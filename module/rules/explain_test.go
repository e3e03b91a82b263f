package rules

import (
	"strings"
	"testing"
)

func TestExplain(t *testing.T) {
	tab := mustTable(t, designRules...)
	tests := []struct {
		method, path string
		want         []string
		not          []string
	}{
		{"POST", "/api/v1/ensemble/e1/predict", []string{
			"rule 4 (line 4): POST /api/v1/ensemble/{ensemble_id}/predict roles ensemble:read ensemble:write",
			`ensemble_id="e1"`,
			"missing_role",
		}, []string{"no_route", "bad_path"}},
		{"GET", "/api/v1/tenants/acme/x?y=1", []string{
			"rule 5 (line 5)", "(the query is not part of rule matching)", `here "acme"`, "tenant_mismatch",
		}, nil},
		{"HEAD", "/healthz", []string{"rule 1 (line 1): GET /healthz public", "GET rules also cover HEAD", "allow (public)"}, nil},
		{"GET", "/api/v1/hedging/x", []string{"tenant_not_allowed", "missing_role", "acme, globex"}, nil},
		{"GET", "/%61pi/v1/ensemble/", []string{"decoded:  /api/v1/ensemble/", "rule 2 (line 2)"}, nil},
		{"GET", "/nope", []string{"deny 403 (no_route)"}, []string{"rule:"}},
		{"get", "/healthz", []string{"deny 403 (no_route)", "methods are case-sensitive; GET would match"}, nil},
		{"GET", "/a/../b", []string{"deny 400 (bad_path)", `path has a dot segment ("..")`}, []string{"no_route"}},
		{"GET", "/a%2Fb", []string{"deny 400 (bad_path)", `encoded "/"`}, nil},
	}
	for _, tc := range tests {
		out := Explain(tab, tc.method, tc.path)
		if !strings.HasPrefix(out, "request:  "+tc.method+" "+tc.path+"\n") {
			t.Errorf("Explain(%s %s) does not start with the request:\n%s", tc.method, tc.path, out)
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("Explain(%s %s) lacks %q:\n%s", tc.method, tc.path, w, out)
			}
		}
		for _, w := range tc.not {
			if strings.Contains(out, w) {
				t.Errorf("Explain(%s %s) should not mention %q:\n%s", tc.method, tc.path, w, out)
			}
		}
	}
	if out := Explain(nil, "GET", "/"); !strings.Contains(out, "no_route") || !strings.Contains(out, "no rules at all") {
		t.Errorf("Explain on a nil table:\n%s", out)
	}
}
