package tenantgate

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tenantgate/tenantgate/module/audit"
)

// bindingMetrics count decisions by the proof of possession the gate
// checked. A counter of its own, so tenantgate_requests_total keeps the
// labels DESIGN.md fixes. Both labels are closed sets (3 bindings x 4
// decisions), so the series count is bounded.
type bindingMetrics struct {
	decisions *prometheus.CounterVec
	replay    prometheus.GaugeFunc
}

var processBindingMetrics = &bindingMetrics{
	decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "tenantgate",
		Name:      "binding_decisions_total",
		Help:      "Requests that presented a token, by the proof of possession checked (dpop, mtls, bearer) and decision.",
	}, []string{"binding", "decision"}),
	replay: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "tenantgate",
		Name:      "dpop_replay_cache_entries",
		Help:      "DPoP proofs this process remembers for replay detection (bounded by dpop_replay_cache).",
	}, func() float64 { return float64(storeStats().ReplayCacheEntries) }),
}

func newBindingMetrics(reg prometheus.Registerer) (*bindingMetrics, error) {
	m := processBindingMetrics
	if reg == nil {
		return m, nil
	}
	var errs []error
	for _, c := range []prometheus.Collector{m.decisions, m.replay} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) && are.ExistingCollector == c {
				continue
			}
			errs = append(errs, fmt.Errorf("tenant_gate binding metrics: %w", err))
		}
	}
	return m, errors.Join(errs...)
}

func (m *bindingMetrics) observe(binding string, d audit.Decision) {
	if m == nil || binding == "" {
		return
	}
	m.decisions.WithLabelValues(binding, string(d)).Inc()
}
