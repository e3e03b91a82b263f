package rules

import (
	"fmt"
	"testing"

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
