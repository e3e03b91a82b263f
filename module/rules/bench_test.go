package rules

import (
	"fmt"
	"testing"
)

// benchRules builds n realistic rules: per service, a read rule and a write
// rule under a literal prefix, e.g. `POST /api/v1/svc7/{id}/action roles svc7:write`.
func benchRules(b *testing.B, n int) (*Table, string) {
	b.Helper()
	rules := make([]Rule, 0, n)
	for i := 0; len(rules) < n; i++ {
		rules = append(rules,
			Rule{Methods: []string{"GET"}, Pattern: fmt.Sprintf("/api/v1/svc%d/{id}", i), Roles: []string{fmt.Sprintf("svc%d:read", i)}},
			Rule{Methods: []string{"POST"}, Pattern: fmt.Sprintf("/api/v1/svc%d/{id}/action", i), Roles: []string{fmt.Sprintf("svc%d:write", i)}},
		)
	}
	rules = rules[:n]
	tab, warnings, err := Compile(rules)
	if err != nil || len(warnings) > 0 {
		b.Fatal(err, warnings)
	}
	// The write rule of the last full service: near the end of the list.
	last := (n - 1) / 2
	if 2*last+1 >= n {
		last--
	}
	return tab, fmt.Sprintf("/api/v1/svc%d/12345/action", last)
}

func BenchmarkMatch(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			tab, p := benchRules(b, n)
			b.ReportAllocs()
			for b.Loop() {
				m, ok := tab.Match("POST", p)
				if !ok || m.Param("id") != "12345" {
					b.Fatal("no match")
				}
			}
		})
	}
}

// BenchmarkMatchLinear is the naive reference scan, to show what the tree saves.
func BenchmarkMatchLinear(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			tab, p := benchRules(b, n)
			rules := tab.Rules()
			b.ReportAllocs()
			for b.Loop() {
				if i, _ := naiveMatch(rules, "POST", p); i < 0 {
					b.Fatal("no match")
				}
			}
		})
	}
}

func BenchmarkCheckPath(b *testing.B) {
	for _, p := range []string{"/api/v1/svc7/12345/action", "/api/v1/svc7/caf%C3%A9/action"} {
		b.Run(p, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := CheckPath(p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
