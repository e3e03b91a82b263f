package rules

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/module/audit"
)

// BenchmarkMatchScale shows that matching and authorising a request costs
// the same with 10 rules and with 10,000 (issue 24: cost flat as the work
// grows). The table is a tree keyed by literal segments, so a lookup walks
// the path's depth, not the rule list; the matched rule is the last service's,
// at the end of the list, the worst case of a linear scan.
func BenchmarkMatchScale(b *testing.B) {
	for _, n := range []int{10, 10_000} {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			tab, p := benchRules(b, n)
			var svc int
			if _, err := fmt.Sscanf(p, "/api/v1/svc%d/", &svc); err != nil {
				b.Fatal(err)
			}
			roles := []string{"reader", fmt.Sprintf("svc%d:write", svc)}
			b.ReportAllocs()
			for b.Loop() {
				m, ok := tab.Match("POST", p)
				if !ok || m.Param("id") != "12345" {
					b.Fatal("no match")
				}
				if reason := m.Authorize("acme", roles); reason != audit.ReasonOK {
					b.Fatal(reason)
				}
			}
		})
	}
}

// BenchmarkMatchScalePaired matches on a 10-rule and a 10,000-rule table in
// alternating blocks and reports the median of each pair's ratio
// (large/small): load from elsewhere on a shared machine moves both halves
// of a pair, so the ratio holds where two benchmarks' ns/op do not.
func BenchmarkMatchScalePaired(b *testing.B) {
	small, ps := benchRules(b, 10)
	large, pl := benchRules(b, 10_000)
	block := func(tab *Table, p string) time.Duration {
		start := time.Now()
		for range 5000 {
			if _, ok := tab.Match("POST", p); !ok {
				b.Fatal("no match")
			}
		}
		return time.Since(start)
	}
	var ratios []float64
	for b.Loop() {
		s, l := block(small, ps), block(large, pl)
		ratios = append(ratios, float64(l)/float64(s))
	}
	slices.Sort(ratios)
	b.ReportMetric(ratios[len(ratios)/2], "large/small")
}
