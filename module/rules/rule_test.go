package rules

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseRule(t *testing.T) {
	tests := []struct {
		line    string
		want    Rule
		wantErr []string // each must appear in the error text
	}{
		{line: "GET /healthz public", want: Rule{Methods: []string{"GET"}, Pattern: "/healthz", Public: true}},
		{line: "get,post /a authenticated", want: Rule{Methods: []string{"GET", "POST"}, Pattern: "/a", Authenticated: true}},
		{line: "* /a/** roles r1", want: Rule{Methods: []string{"*"}, Pattern: "/a/**", Roles: []string{"r1"}}},
		{line: "POST /e/{id}/predict roles ensemble:read ensemble:write",
			want: Rule{Methods: []string{"POST"}, Pattern: "/e/{id}/predict", Roles: []string{"ensemble:read", "ensemble:write"}}},
		{line: "* /t/{tenant}/** tenant_param tenant",
			want: Rule{Methods: []string{"*"}, Pattern: "/t/{tenant}/**", TenantParam: "tenant"}},
		{line: "GET,POST /h/** roles hedging:trade tenants acme globex",
			want: Rule{Methods: []string{"GET", "POST"}, Pattern: "/h/**", Roles: []string{"hedging:trade"}, Tenants: []string{"acme", "globex"}}},
		{line: "GET /t/{t}/x tenants acme roles a b tenant_param t authenticated",
			want: Rule{Methods: []string{"GET"}, Pattern: "/t/{t}/x", Authenticated: true, Roles: []string{"a", "b"}, TenantParam: "t", Tenants: []string{"acme"}}},
		{line: "GET /api/v1/ensemble/ authenticated", want: Rule{Methods: []string{"GET"}, Pattern: "/api/v1/ensemble/", Authenticated: true}},

		{line: "", wantErr: []string{"needs METHODS PATTERN"}},
		{line: "GET", wantErr: []string{"needs a PATTERN"}},
		{line: "GET /a", wantErr: []string{"missing requirement"}},
		{line: "GET /a rolez x", wantErr: []string{`unknown requirement "rolez"`}},
		{line: "GET /a roles", wantErr: []string{"roles needs at least one role"}},
		{line: "GET /a tenants", wantErr: []string{"tenants needs at least one tenant"}},
		{line: "GET /a/{t} tenant_param", wantErr: []string{"tenant_param needs the name"}},
		{line: "GET /a/{t} tenant_param roles r", wantErr: []string{"tenant_param needs the name"}},
		{line: "GET /a roles a roles b", wantErr: []string{`requirement "roles" given twice`}},
		{line: "GET /a public authenticated", wantErr: []string{"public cannot be combined"}},
		{line: "GET /a public roles r", wantErr: []string{"public cannot be combined"}},
		{line: "GET /a/{id} tenant_param tenant", wantErr: []string{`tenant_param "tenant" names no {tenant} segment`}},
		{line: "GET /a tenants bad/tenant", wantErr: []string{`tenant "bad/tenant" is not a valid tenant id`}},
		{line: "G@T /a public", wantErr: []string{`bad method "G@T"`}},
		{line: "GET,,POST /a public", wantErr: []string{"empty method name"}},
		{line: "GET,* /a public", wantErr: []string{`"*" cannot be combined`}},
		{line: "GET,get /a public", wantErr: []string{`method "GET" listed twice`}},
		{line: "GET a public", wantErr: []string{`must start with "/"`}},
		// Several problems come back together.
		{line: "G@T /a/**/b rolez", wantErr: []string{`bad method "G@T"`, `"**" must be the last segment`, `unknown requirement "rolez"`}},
	}
	for _, tc := range tests {
		t.Run(tc.line, func(t *testing.T) {
			got, err := ParseRule(strings.Fields(tc.line), 7)
			if tc.wantErr != nil {
				if err == nil {
					t.Fatalf("ParseRule(%q) = %+v, want error", tc.line, got)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("ParseRule(%q) error %q lacks %q", tc.line, err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseRule(%q): %v", tc.line, err)
			}
			tc.want.Line = 7
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("ParseRule(%q) = %+v, want %+v", tc.line, got, tc.want)
			}
			// String is canonical and parses back to the same rule.
			again, err := ParseRule(strings.Fields(got.String()), 7)
			if err != nil || !reflect.DeepEqual(again, got) {
				t.Fatalf("round trip of %q via %q = %+v, %v", tc.line, got.String(), again, err)
			}
		})
	}
}

func TestRuleString(t *testing.T) {
	r := Rule{Methods: []string{"GET"}, Pattern: "/api/v1/x/{t}", Tenants: []string{"acme"}, TenantParam: "t", Roles: []string{"a", "b"}}
	if got, want := r.String(), "GET /api/v1/x/{t} roles a b tenant_param t tenants acme"; got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
}

func TestPatternErrors(t *testing.T) {
	tests := []struct{ pattern, want string }{
		{"", `must start with "/"`},
		{"api", `must start with "/"`},
		{"/a//b", `empty segment ("//")`},
		{"/a/{}", "bad parameter"},
		{"/a/{1x}", "bad parameter"},
		{"/a/{x-y}", "bad parameter"},
		{"/a/x{id}", "{name} must be a whole segment"},
		{"/a/{id", "{name} must be a whole segment"},
		{"/a/**/b", `"**" must be the last segment`},
		{"/a/**/", `"**" must be the last segment`},
		{"/a/x**", `"**" must be a whole segment`},
		{"/a/*", `"*" is only allowed as a final "**"`},
		{"/{id}/{id}", "duplicate parameter name {id}"},
		{"/a/../b", "dot segment"},
		{"/a/./b", "dot segment"},
		{"/a%20b", `contains "%"`},
		{"/search?q", `contains "?" or "#"`},
		{"/a#top", `contains "?" or "#"`},
		{"/a;b", `contains ";"`},
		{"/a\\b", `contains ";", "\"`},
		{"/a\x00", "control character"},
		{"/\xff", "UTF-8"},
	}
	for _, tc := range tests {
		_, errs := parsePattern(tc.pattern)
		if errs == nil {
			t.Errorf("parsePattern(%q): no error", tc.pattern)
			continue
		}
		if got := errs[0].Error(); !strings.Contains(got, tc.want) {
			t.Errorf("parsePattern(%q) = %q, want it to mention %q", tc.pattern, got, tc.want)
		}
	}
	for _, ok := range []string{"/", "/a", "/a/", "/**", "/a/{b}/**", "/{a}/{b}/", "/é/ü", "/a b"} {
		if _, errs := parsePattern(ok); errs != nil {
			t.Errorf("parsePattern(%q): %v", ok, errs)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	r := func(methods, pattern string, line int, mod func(*Rule)) Rule {
		rule := Rule{Methods: strings.Split(methods, ","), Pattern: pattern, Authenticated: true, Line: line}
		if mod != nil {
			mod(&rule)
		}
		return rule
	}
	tests := []struct {
		name  string
		rules []Rule
		want  []string
	}{
		{"bad pattern", []Rule{r("GET", "a", 3, nil)}, []string{`rule 1 (line 3): bad pattern "a"`}},
		{"bad param", []Rule{r("GET", "/{a-b}", 3, nil)}, []string{`rule 1 (line 3): bad pattern "/{a-b}": bad parameter`}},
		{"rest not last", []Rule{r("GET", "/a/**/b", 3, nil)}, []string{`rule 1 (line 3): bad pattern "/a/**/b": "**" must be the last`}},
		{"rest mixed", []Rule{r("GET", "/a**", 0, nil)}, []string{`rule 1: bad pattern "/a**": "**" must be a whole segment`}},
		{"dup params", []Rule{r("GET", "/{a}/{a}", 0, nil)}, []string{"rule 1: bad pattern", "duplicate parameter name {a}"}},
		{"no methods", []Rule{r("", "/a", 4, func(r *Rule) { r.Methods = nil })}, []string{"rule 1 (line 4): no methods"}},
		{"bad method", []Rule{r("GE T", "/a", 4, nil)}, []string{`rule 1 (line 4): bad method "GE T"`}},
		{"no requirement", []Rule{r("GET", "/a", 5, func(r *Rule) { r.Authenticated = false })}, []string{"rule 1 (line 5): missing requirement"}},
		{"public plus", []Rule{r("GET", "/a", 5, func(r *Rule) { r.Public = true })}, []string{"rule 1 (line 5): public cannot be combined"}},
		{"tenant_param missing", []Rule{r("GET", "/a/{x}", 5, func(r *Rule) { r.TenantParam = "t" })}, []string{`rule 1 (line 5): tenant_param "t" names no {t} segment`}},
		{"empty role", []Rule{r("GET", "/a", 5, func(r *Rule) { r.Roles = []string{""} })}, []string{"rule 1 (line 5): empty role name"}},
		{"role with space", []Rule{r("GET", "/a", 5, func(r *Rule) { r.Roles = []string{"a b"} })}, []string{`role "a b" contains whitespace`}},
		{"bad tenant", []Rule{r("GET", "/a", 5, func(r *Rule) { r.Tenants = []string{strings.Repeat("x", 65)} })}, []string{"is not a valid tenant id"}},
		{"duplicate", []Rule{r("GET", "/a/{x}", 1, nil), r("POST", "/a/{x}", 2, nil), r("GET", "/a/{y}", 3, nil)},
			[]string{"rule 3 (line 3): duplicate of rule 1 (line 1): same methods and pattern"}},
		{"duplicate GET vs GET,HEAD", []Rule{r("GET", "/a", 1, nil), r("HEAD,GET", "/a", 2, nil)}, []string{"rule 2 (line 2): duplicate of rule 1 (line 1)"}},
		{"duplicate rest", []Rule{r("*", "/a/**", 1, nil), r("*", "/a/**", 2, func(r *Rule) { r.Authenticated = false; r.Public = true })},
			[]string{"rule 2 (line 2): duplicate of rule 1 (line 1)"}},
		{"all at once", []Rule{
			r("GET", "/ok", 10, nil),
			r("GET", "nope", 11, nil),
			r("G@T", "/x", 12, func(r *Rule) { r.Authenticated = false }),
			r("GET", "/ok", 13, nil),
		}, []string{
			`rule 2 (line 11): bad pattern "nope"`,
			`rule 3 (line 12): bad method "G@T"`,
			"rule 3 (line 12): missing requirement",
			"rule 4 (line 13): duplicate of rule 1 (line 10)",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tab, _, err := Compile(tc.rules)
			if err == nil {
				t.Fatalf("Compile: no error (table %v)", tab)
			}
			if tab != nil {
				t.Errorf("Compile returned a table along with an error")
			}
			lines := strings.Split(err.Error(), "\n")
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			for _, l := range lines {
				if !strings.HasPrefix(l, "rule ") {
					t.Errorf("error line %q lacks the rule prefix", l)
				}
			}
			if len(lines) != len(tc.want) && tc.name == "all at once" {
				t.Errorf("got %d problems, want %d:\n%v", len(lines), len(tc.want), err)
			}
		})
	}
}

func TestCompileNormalizes(t *testing.T) {
	in := []Rule{{Methods: []string{"get"}, Pattern: "/a", Roles: []string{"r"}}}
	tab, warnings, err := Compile(in)
	if err != nil || len(warnings) != 0 {
		t.Fatalf("Compile: %v %v", err, warnings)
	}
	if got := tab.Rules()[0].Methods[0]; got != "GET" {
		t.Errorf("method = %q, want GET", got)
	}
	in[0].Roles[0] = "changed"
	if m, ok := tab.Match("HEAD", "/a"); !ok || m.Rule.Roles[0] != "r" {
		t.Errorf("table shares the caller's slices or lost HEAD: %+v %v", m, ok)
	}
}

func TestCompileWarnings(t *testing.T) {
	parse := func(lines ...string) []Rule {
		var out []Rule
		for i, l := range lines {
			r, err := ParseRule(strings.Fields(l), i+1)
			if err != nil {
				t.Fatalf("ParseRule(%q): %v", l, err)
			}
			out = append(out, r)
		}
		return out
	}
	tests := []struct {
		name  string
		rules []Rule
		want  []string // one substring per expected warning, in order
	}{
		{"none", parse("GET /a public", "GET /b public", "POST /a authenticated"), nil},
		{"catch-all first", parse("* /api/** authenticated", "GET /api/x roles a"),
			[]string{`rule 2 (line 2): "GET /api/x roles a" can never match: rule 1 (line 1) "* /api/** authenticated" comes first and matches every request it would`}},
		{"param covers literal", parse("GET /a/{id} authenticated", "GET /a/x public"), []string{"rule 2 (line 2)"}},
		{"param does not cover trailing slash", parse("GET /a/{id} authenticated", "GET /a/ public"), nil},
		{"rest covers trailing slash and bare", parse("GET /a/** authenticated", "GET /a/ public", "GET /a public"),
			[]string{"rule 2 (line 2)", "rule 3 (line 3)"}},
		{"GET covers HEAD", parse("GET /a authenticated", "HEAD /a public"), []string{"rule 2 (line 2)"}},
		{"HEAD does not cover GET", parse("HEAD /a authenticated", "GET /a public"), nil},
		{"methods union", parse("GET /a/** authenticated", "POST /a/{x} roles r", "GET,POST /a/b public"),
			[]string{`rule 1 (line 1) "GET /a/** authenticated" and rule 2 (line 2) "POST /a/{x} roles r" come first and match every request it would`}},
		{"* needs *", parse("GET,POST,PUT,DELETE,PATCH /a/** authenticated", "* /a/b public"), nil},
		{"later broader rule is fine", parse("GET /api/x roles a", "* /api/** authenticated"), nil},
		{"literal does not cover param", parse("GET /a/x authenticated", "GET /a/{id} public"), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, warnings, err := Compile(tc.rules)
			if err != nil {
				t.Fatal(err)
			}
			if len(warnings) != len(tc.want) {
				t.Fatalf("warnings = %q, want %d", warnings, len(tc.want))
			}
			for i, w := range tc.want {
				if !strings.Contains(warnings[i], w) {
					t.Errorf("warning %q lacks %q", warnings[i], w)
				}
			}
		})
	}
	if _, warnings, err := Compile(nil); err != nil || len(warnings) != 1 || !strings.Contains(warnings[0], "every request is denied") {
		t.Errorf("Compile(nil) = %q, %v", warnings, err)
	}
}

// TestParseRuleNoKnockOn: the words after an unknown requirement are its
// values, so one mistake gives one error, and a keyword after them is read.
func TestParseRuleNoKnockOn(t *testing.T) {
	_, err := ParseRule(strings.Fields("GET /a rolez admin ops tenants acme"), 1)
	if err == nil {
		t.Fatal("want an error for rolez")
	}
	if got := err.Error(); strings.Contains(got, `"admin"`) || strings.Contains(got, `"ops"`) || strings.Count(got, "\n") != 0 {
		t.Fatalf("knock-on errors: %q", got)
	}
}
