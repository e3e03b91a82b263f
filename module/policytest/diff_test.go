package policytest

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/tenantgate/tenantgate/module/rules"
)

func table(t testing.TB, lines ...string) *rules.Table {
	t.Helper()
	var rs []rules.Rule
	for i, l := range lines {
		r, err := rules.ParseRule(strings.Fields(l), i+1)
		if err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		rs = append(rs, r)
	}
	tab, _, err := rules.Compile(rs)
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

func gate(t testing.TB, lines ...string) Gate {
	return Gate{Label: "site", Mode: "enforce", Issuers: map[string][]string{"https://idp": {"api"}}, Table: table(t, lines...)}
}

func diffText(t *testing.T, o, n Gate) (string, int, int) {
	t.Helper()
	var out bytes.Buffer
	w, nw := WriteDiff(&out, Diff([]Gate{o}, []Gate{n}))
	return out.String(), w, nw
}

func TestDiffRules(t *testing.T) {
	for _, tc := range []struct {
		name     string
		old, new []string
		widens   int
		narrows  int
		want     []string
	}{
		{"same rules, other spelling",
			[]string{"GET,HEAD /a/{id} roles x y", "post /b tenants acme globex"},
			[]string{"GET /a/{ensemble} roles y x", "POST /b tenants globex acme"}, 0, 0, nil},
		{"route newly reachable",
			[]string{"GET /a authenticated"},
			[]string{"GET /a authenticated", "POST /a/{id}/close roles admin"}, 1, 0,
			[]string{"WIDENS  POST /a/{id}/close: newly reachable: roles admin"}},
		{"route removed",
			[]string{"GET /a authenticated", "DELETE /a roles admin"},
			[]string{"GET /a authenticated"}, 0, 1,
			[]string{"narrows DELETE /a: no longer reachable (was roles admin)"}},
		{"public replaces roles",
			[]string{"GET /a roles r"}, []string{"GET /a public"}, 1, 0,
			[]string{"WIDENS  GET /a: public replaces roles r"}},
		{"roles replace public",
			[]string{"GET /a public"}, []string{"GET /a roles r"}, 0, 1,
			[]string{"narrows GET /a: roles r replaces public"}},
		{"authenticated replaces roles",
			[]string{"POST /close roles admin"}, []string{"POST /close authenticated"}, 1, 0,
			[]string{"authenticated replaces roles admin"}},
		{"roles replace authenticated",
			[]string{"POST /close authenticated"}, []string{"POST /close roles admin"}, 0, 1,
			[]string{"roles admin now required"}},
		{"role added and removed",
			[]string{"POST /close roles admin"}, []string{"POST /close roles trade"}, 1, 1,
			[]string{"role added to the any-of list: trade", "role removed from the any-of list: admin"}},
		{"tenant added",
			[]string{"GET /h/** tenants acme"}, []string{"GET /h/** tenants acme globex"}, 1, 0,
			[]string{"WIDENS  GET /h/**: tenant added to the any-of list: globex"}},
		{"tenant list dropped",
			[]string{"GET /h/** tenants acme"}, []string{"GET /h/** authenticated"}, 1, 0,
			[]string{"any tenant replaces tenants acme"}},
		{"tenant_param removed",
			[]string{"* /t/{tenant}/** tenant_param tenant"}, []string{"* /t/{tenant}/** authenticated"}, 1, 0,
			[]string{"WIDENS  * /t/{tenant}/**: tenant_param removed"}},
		{"tenant_param added",
			[]string{"* /t/{tenant}/** authenticated"}, []string{"* /t/{x}/** tenant_param x"}, 0, 1,
			[]string{"tenant_param added"}},
		{"tenant_param moved",
			[]string{"GET /t/{a}/{b} tenant_param a"}, []string{"GET /t/{a}/{b} tenant_param b"}, 1, 0,
			[]string{"tenant_param moved from segment 2 to 3"}},
		{"an earlier, wider rule shadows a narrow one",
			[]string{"GET /a/b roles r"}, []string{"GET /a/** public", "GET /a/b roles r"}, 2, 0,
			[]string{"WIDENS  GET /a/b: public replaces roles r", "WIDENS  GET /a/**: newly reachable: public"}},
		{"every method instead of one",
			[]string{"GET /x roles r"}, []string{"* /x roles r"}, 1, 0,
			[]string{"WIDENS  * /x: newly reachable: roles r"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, w, n := diffText(t, gate(t, tc.old...), gate(t, tc.new...))
			if w != tc.widens || n != tc.narrows {
				t.Errorf("%d widening, %d narrowing; want %d, %d\n%s", w, n, tc.widens, tc.narrows, out)
			}
			for _, want := range tc.want {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
			if strings.Contains(out, "HEAD ") {
				t.Errorf("HEAD repeats GET:\n%s", out)
			}
		})
	}
}

func TestDiffGateSettings(t *testing.T) {
	o := gate(t, "GET /a authenticated")
	n := gate(t, "GET /a authenticated")
	n.Mode = "report"
	n.Issuers = map[string][]string{"https://idp": {"other"}, "https://idp2": {"api"}}
	out, w, nw := diffText(t, o, n)
	for _, want := range []string{
		"WIDENS  mode enforce -> report",
		"WIDENS  issuer https://idp2 added (audience api)",
		"WIDENS  issuer https://idp: audience added: other",
		"narrows issuer https://idp: audience removed: api",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if w != 3 || nw != 1 {
		t.Errorf("%d widening, %d narrowing:\n%s", w, nw, out)
	}
	// And back: every one of those narrows.
	out, w, _ = diffText(t, n, o)
	if w != 1 || !strings.Contains(out, "narrows issuer https://idp2 removed") || !strings.Contains(out, "narrows mode report -> enforce") {
		t.Errorf("%d widening:\n%s", w, out)
	}
}

func TestDiffPairsGatesByLabel(t *testing.T) {
	a, b := gate(t, "GET /a authenticated"), gate(t, "GET /a authenticated")
	b.Label = "other site"
	var out bytes.Buffer
	w, n := WriteDiff(&out, Diff([]Gate{a}, []Gate{b}))
	if w != 1 || n != 1 || !strings.Contains(out.String(), "tenant_gate removed") || !strings.Contains(out.String(), "tenant_gate added") {
		t.Fatalf("%d %d\n%s", w, n, out.String())
	}
	if d := Diff([]Gate{a}, []Gate{gate(t, "GET /a authenticated")}); len(d) != 0 {
		t.Fatalf("equal gates differ: %+v", d)
	}
}

// The closing note's number: two 1,000-rule tables that differ in a few rules.
func BenchmarkDiff1000Rules(b *testing.B) {
	var oldLines, newLines []string
	for i := range 1000 {
		l := fmt.Sprintf("GET,POST /api/v1/svc%d/{id}/items roles r%d admin", i, i)
		oldLines = append(oldLines, l)
		if i%100 == 0 {
			l = fmt.Sprintf("GET,POST /api/v1/svc%d/{id}/items authenticated", i)
		}
		newLines = append(newLines, l)
	}
	o, n := gate(b, oldLines...), gate(b, newLines...)
	b.ResetTimer()
	for b.Loop() {
		var out bytes.Buffer
		if w, _ := WriteDiff(&out, Diff([]Gate{o}, []Gate{n})); w != 20 {
			b.Fatalf("%d widening\n%s", w, out.String())
		}
	}
}
