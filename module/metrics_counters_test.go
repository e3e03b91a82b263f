package tenantgate

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/tenantgate/tenantgate/module/audit"
)

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// The cached counters count into the same series as the CounterVec, keep
// the tenant cap, and a tenant over the cap gets its own series once the
// cap is raised (a reload), not the _other it had before.
func TestRequestCountersCacheSeries(t *testing.T) {
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "t"}, []string{"decision", "reason", "tenant"})
	tl := newTenantLabels()
	tl.raiseMax(1)
	c := newRequestCounters(vec, tl)
	for range 3 {
		c.get(counterKey{audit.DecisionAllow, audit.ReasonOK, "acme"}).Inc()
	}
	c.get(counterKey{audit.DecisionAllow, audit.ReasonOK, "globex"}).Inc()
	c.get(counterKey{audit.DecisionDeny, audit.ReasonNoRoute, ""}).Inc()
	if got := counterValue(t, vec.WithLabelValues("allow", "ok", "acme")); got != 3 {
		t.Errorf("acme: %v, want 3", got)
	}
	if got := counterValue(t, vec.WithLabelValues("allow", "ok", tenantOther)); got != 1 {
		t.Errorf("globex over the cap: %v in _other, want 1", got)
	}
	if got := counterValue(t, vec.WithLabelValues("deny", "no_route", tenantOther)); got != 1 {
		t.Errorf("no tenant over the cap: %v in _other, want 1", got)
	}
	tl.raiseMax(5)
	c.get(counterKey{audit.DecisionAllow, audit.ReasonOK, "globex"}).Inc()
	if got := counterValue(t, vec.WithLabelValues("allow", "ok", "globex")); got != 1 {
		t.Errorf("globex after the cap was raised: %v, want 1", got)
	}
	if n := len(*c.m.Load()); n != 2 {
		t.Errorf("%d cached series, want 2 (acme, then globex)", n)
	}
}

// Past maxCachedCounters the cache stops growing and requests still count.
func TestRequestCountersBounded(t *testing.T) {
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "t"}, []string{"decision", "reason", "tenant"})
	tl := newTenantLabels()
	tl.raiseMax(maxCachedCounters + 10)
	c := newRequestCounters(vec, tl)
	for i := range maxCachedCounters + 5 {
		c.get(counterKey{audit.DecisionAllow, audit.ReasonOK, string(rune('a'+i%26)) + string(rune(i))}).Inc()
	}
	if n := len(*c.m.Load()); n != maxCachedCounters {
		t.Errorf("%d cached series, want %d", n, maxCachedCounters)
	}
	last := string(rune('a'+(maxCachedCounters+4)%26)) + string(rune(maxCachedCounters+4))
	if got := counterValue(t, vec.WithLabelValues("allow", "ok", last)); got != 1 {
		t.Errorf("a series past the bound: %v, want 1", got)
	}
}
