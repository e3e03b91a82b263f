package tenantgate

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tenantgate/tenantgate/module/audit"
	"github.com/tenantgate/tenantgate/module/verify"
)

// BenchmarkBindingObserve is the per-request count of
// tenantgate_binding_decisions_total: one allowed bearer request.
func BenchmarkBindingObserve(b *testing.B) {
	m := processBindingMetrics
	b.ReportAllocs()
	for b.Loop() {
		m.observe(verify.BindingBearer, audit.DecisionAllow)
	}
}

// Every binding and decision counts on its own series, an unknown pair
// included (the CounterVec's own lookup), and no request means no series.
func TestBindingObserveSeries(t *testing.T) {
	m := processBindingMetrics
	for _, bnd := range []string{verify.BindingDPoP, verify.BindingMTLS, verify.BindingBearer, "other"} {
		for _, d := range []audit.Decision{audit.DecisionAllow, audit.DecisionDeny, audit.DecisionWouldDeny, audit.DecisionPublic, "odd"} {
			before := testutil.ToFloat64(m.decisions.WithLabelValues(bnd, string(d)))
			m.observe(bnd, d)
			m.observe(bnd, d)
			if got := testutil.ToFloat64(m.decisions.WithLabelValues(bnd, string(d))); got != before+2 {
				t.Errorf("%s/%s: %v, want %v", bnd, d, got, before+2)
			}
		}
	}
	n := testutil.CollectAndCount(m.decisions)
	m.observe("", audit.DecisionAllow) // no token presented: not counted
	if got := testutil.CollectAndCount(m.decisions); got != n {
		t.Errorf("series %d after an empty binding, want %d", got, n)
	}
}
