package ratelimit

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are process-wide, like tenant_gate's: registered on the registry
// of every config Caddy loads, so counts survive `caddy reload`.
// tenantgate_rate_limited_total{tenant} is counted by tenant_gate when it
// finishes a request this handler refused (module/metrics.go): the gate
// owns the capped tenant label.
type metrics struct {
	storeErrors prometheus.Counter
	tenants     prometheus.Gauge
}

var processMetrics = &metrics{
	storeErrors: prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "tenantgate",
		Name:      "rate_limit_store_errors_total",
		Help:      "Limit checks that failed because the rate limit store did not answer in time.",
	}),
	tenants: prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "tenantgate",
		Name:      "rate_limit_tenants",
		Help:      "Tenants held by the in-memory rate limit stores of this process (bounded by max_tenants).",
	}),
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := processMetrics
	if reg == nil {
		return m, nil
	}
	var errs []error
	for _, c := range []prometheus.Collector{m.storeErrors, m.tenants} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) && are.ExistingCollector == c {
				continue
			}
			errs = append(errs, fmt.Errorf("tenant_rate_limit metrics: %w", err))
		}
	}
	return m, errors.Join(errs...)
}

func (m *metrics) tenantsHeld(delta int) {
	m.tenants.Add(float64(delta))
}
