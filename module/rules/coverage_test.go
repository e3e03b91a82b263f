package rules

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestParseRoutes(t *testing.T) {
	in := `# backend routes
GET  /healthz   public

post /api/v1/ensemble/create      # inline comment
GET  /api/v1/ensemble/{$}
GET  /files/{path...}
*    /api/v1/tenants/{tenant}/**
`
	got, err := ParseRoutes(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []Route{
		{Method: "GET", Pattern: "/healthz", PublicByIntent: true, Line: 2},
		{Method: "POST", Pattern: "/api/v1/ensemble/create", Line: 4},
		{Method: "GET", Pattern: "/api/v1/ensemble/", Line: 5},
		{Method: "GET", Pattern: "/files/**", Line: 6},
		{Method: "*", Pattern: "/api/v1/tenants/{tenant}/**", Line: 7},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d routes %+v, want %d", len(got), got, len(want))
	}
	for i := range want {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Errorf("route %d = %+v, want %+v", i, got[i], want[i])
		}
	}

	_, err = ParseRoutes(strings.NewReader("GET\nGET /a private\nG@T /a\nGET /a//b\nGET /ok\nGET /a b c d\n"))
	if err == nil {
		t.Fatal("no error for bad routes")
	}
	for _, w := range []string{
		"line 1: want METHOD PATTERN [public | authenticated | roles R...]",
		`line 2: unknown word "private"`,
		`line 3: bad method "G@T"`,
		`line 4: bad pattern "/a//b"`,
		`line 6: unknown word "b"`,
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
	if strings.Contains(err.Error(), "line 5") {
		t.Errorf("good line reported: %v", err)
	}
}

func TestCoverage(t *testing.T) {
	tab := mustTable(t, append(designRules,
		"GET /api/v1/ensemble/special/weights roles x", // 7: a literal where routes use {id}
		"GET /api/v1/docs/** public",                   // 8
		"* /admin/** roles admin",                      // 9
	)...)
	tests := []struct {
		route     string
		wantRule  int // 1-based, 0 = none
		wantProbl string
	}{
		{"GET /healthz public", 1, ""},                                // public with intent
		{"HEAD /healthz public", 1, ""},                               // GET covers HEAD
		{"GET /healthz", 1, "covered only by public rule 1 (line 1)"}, // public without intent
		{"POST /api/v1/ensemble/create", 3, ""},
		{"POST /api/v1/ensemble/{id}/predict", 4, ""},
		{"POST /api/v1/ensemble/{id}/predict/", 0, "not covered"},
		{"GET /api/v1/ensemble/", 2, ""},
		{"GET /api/v1/ensemble", 0, "not covered"},
		{"PUT /api/v1/tenants/{t}/x/{y}", 5, ""},
		{"GET /api/v1/tenants/{t}", 5, ""},
		{"GET /api/v1/tenants/{t}/**", 5, ""},
		{"* /api/v1/tenants/{t}/a", 5, ""},
		{"* /api/v1/hedging/a", 0, "not covered"}, // the rule is GET,POST only
		{"POST /api/v1/hedging/{op}", 6, ""},
		{"DELETE /api/v1/hedging/{op}", 0, "not covered"},
		// a {param} route met only by a literal rule is not covered
		{"GET /api/v1/ensemble/{id}/weights", 0, "rule 7 (line 7) matches only some of them"},
		{"GET /api/v1/ensemble/special/weights", 7, ""},
		{"GET /api/v1/docs/{page}", 8, "covered only by public rule 8 (line 8)"},
		{"GET /api/v1/docs/{page} public", 8, ""},
		{"GET /admin/**", 9, ""},
		{"GET /elsewhere/**", 0, "not covered: no rule takes every request to this route (deny no_route)"},
	}
	var routes []Route
	for i, tc := range tests {
		f := strings.Fields(tc.route)
		routes = append(routes, Route{Method: f[0], Pattern: f[1], PublicByIntent: len(f) > 2, Line: i + 1})
	}
	lines, ok := Coverage(tab, routes)
	if ok {
		t.Error("Coverage ok despite problems")
	}
	for i, tc := range tests {
		l := lines[i]
		if !reflect.DeepEqual(l.Route, routes[i]) {
			t.Errorf("line %d is for %+v, want %+v", i, l.Route, routes[i])
		}
		if got := l.RuleIndex + 1; got != tc.wantRule {
			t.Errorf("%s: rule %d, want %d (%s)", tc.route, got, tc.wantRule, l.Problem)
		}
		if (l.Rule == nil) != (tc.wantRule == 0) {
			t.Errorf("%s: Rule = %v", tc.route, l.Rule)
		}
		if tc.wantProbl == "" && l.Problem != "" || !strings.Contains(l.Problem, tc.wantProbl) {
			t.Errorf("%s: problem %q, want %q", tc.route, l.Problem, tc.wantProbl)
		}
	}

	var out bytes.Buffer
	FormatCoverage(&out, lines)
	for _, w := range []string{"ROUTE", "RESULT", "GET /healthz public", "ok (public by intent)", "PROBLEM: not covered", fmt.Sprintf("\n%d routes, %d covered without problems, 8 with problems\n", len(tests), len(tests)-8)} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("FormatCoverage output lacks %q:\n%s", w, out.String())
		}
	}

	// All good: ok is true.
	good := []Route{{Method: "GET", Pattern: "/healthz", PublicByIntent: true}, {Method: "POST", Pattern: "/api/v1/ensemble/create"}}
	if lines, ok := Coverage(tab, good); !ok {
		t.Errorf("Coverage not ok: %+v", lines)
	}
	// Bad routes handed in directly are problems, not panics.
	if lines, ok := Coverage(tab, []Route{{Method: "GET", Pattern: "nope"}}); ok || !strings.Contains(lines[0].Problem, "bad pattern") {
		t.Errorf("bad route: %+v %v", lines, ok)
	}
}

// Routes that declare the backend's roles are checked against the rule that
// decides them: a rule asking for no role, or for a role the backend does
// not take, would admit a caller the backend refuses.
func TestCoverageAgainstBackendRoles(t *testing.T) {
	routes, err := ParseRoutes(strings.NewReader(`GET /healthz public
GET /api/v1/whoami authenticated
POST /api/v1/hedging/close roles hedging:admin
POST /api/v1/hedging/execute roles hedging:trade hedging:admin
GET /api/v1/hedging/analysis roles hedging:read hedging:trade hedging:admin
POST /api/v1/ensemble/create roles ensemble:write
GET /api/v1/ensemble/ roles ensemble:read ensemble:write
`))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(routes[3].Roles, []string{"hedging:trade", "hedging:admin"}) || routes[1].Roles != nil || routes[1].PublicByIntent {
		t.Fatalf("parsed %+v", routes)
	}
	tab, _, errs := Compile([]Rule{
		{Methods: []string{"GET"}, Pattern: "/healthz", Public: true},
		{Methods: []string{"GET"}, Pattern: "/api/v1/whoami", Authenticated: true},
		{Methods: []string{"POST"}, Pattern: "/api/v1/hedging/**", Authenticated: true, Line: 7},           // looser: no role
		{Methods: []string{"GET"}, Pattern: "/api/v1/hedging/analysis", Roles: []string{"hedging:read"}},   // unreachable: rule 3 is POST only
		{Methods: []string{"GET"}, Pattern: "/api/v1/hedging/**", Roles: []string{"hedging:read", "ops"}},  // looser: ops
		{Methods: []string{"POST"}, Pattern: "/api/v1/ensemble/create", Roles: []string{"ensemble:write"}}, // equal
		{Methods: []string{"GET"}, Pattern: "/api/v1/ensemble/", Roles: []string{"ensemble:read"}},         // stricter
	})
	if errs != nil {
		t.Fatal(errs)
	}
	lines, ok := Coverage(tab, routes)
	if ok {
		t.Error("coverage ok with looser rules")
	}
	want := []string{"", "", "admits callers without a role, but the backend needs one of [hedging:admin]",
		"admits callers without a role", "", "", ""}
	for i, l := range lines {
		if want[i] == "" && l.Problem != "" || !strings.Contains(l.Problem, want[i]) {
			t.Errorf("%s: problem %q, want %q", l.Route, l.Problem, want[i])
		}
	}
	// The analysis route is decided by rule 4 (GET /api/v1/hedging/analysis, hedging:read): fine.
	if lines[4].RuleIndex != 3 {
		t.Errorf("analysis decided by rule %d", lines[4].RuleIndex+1)
	}
	// Without rule 4, rule 5 decides it and admits "ops".
	tab2, _, _ := Compile([]Rule{{Methods: []string{"GET"}, Pattern: "/api/v1/hedging/**", Roles: []string{"hedging:read", "ops"}}})
	l2, _ := Coverage(tab2, routes[4:5])
	if !strings.Contains(l2[0].Problem, "admits role(s) ops that the backend refuses") {
		t.Errorf("ops: %q", l2[0].Problem)
	}
	var out bytes.Buffer
	FormatCoverage(&out, lines)
	if !strings.Contains(out.String(), "POST /api/v1/hedging/close roles hedging:admin") {
		t.Errorf("table:\n%s", out.String())
	}
}
