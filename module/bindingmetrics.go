package tenantgate

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tenantgate/tenantgate/module/audit"
	"github.com/tenantgate/tenantgate/module/verify"
)

// bindingMetrics count decisions by the proof of possession the gate
// checked. A counter of its own, so tenantgate_requests_total keeps the
// labels DESIGN.md fixes. Both labels are closed sets (3 bindings x 4
// decisions), so the series count is bounded.
type bindingMetrics struct {
	decisions *prometheus.CounterVec
	replay    prometheus.GaugeFunc
	// children caches the counter of each (binding, decision) once a
	// request named it, so a request costs an array read instead of the
	// CounterVec's hashing of two labels and its lock. Series are still
	// created on first use only: none shows up before a request counted.
	children [len(bindingNames)][len(decisionNames)]atomic.Pointer[prometheus.Counter]
}

// The closed label sets of binding_decisions_total, by index.
var (
	bindingNames  = [...]string{verify.BindingDPoP, verify.BindingMTLS, verify.BindingBearer}
	decisionNames = [...]audit.Decision{audit.DecisionAllow, audit.DecisionDeny, audit.DecisionWouldDeny, audit.DecisionPublic}
)

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
	bi, di := indexOf(bindingNames[:], binding), indexOf(decisionNames[:], d)
	if bi < 0 || di < 0 {
		m.decisions.WithLabelValues(binding, string(d)).Inc()
		return
	}
	slot := &m.children[bi][di]
	if c := slot.Load(); c != nil {
		(*c).Inc()
		return
	}
	c := m.decisions.WithLabelValues(binding, string(d))
	slot.Store(&c) // a racing request stores the same child
	c.Inc()
}

func indexOf[T comparable](set []T, v T) int {
	for i, s := range set {
		if s == v {
			return i
		}
	}
	return -1
}
