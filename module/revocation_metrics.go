package tenantgate

import (
	"errors"
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tenantgate/tenantgate/module/revocation"
)

// revocationMetrics are process-wide, like the stores they describe, and
// registered on the registry of every config that has a tenant_gate.
// Labels are closed sets: kind (jti, sub, tenant, sid) and op (load, write,
// reconcile, decode, apply, claim, nonce).
var revocationMetrics = struct {
	entries     prometheus.Collector
	propagation prometheus.Histogram
	storeErrors *prometheus.CounterVec
}{
	entries: revocationGauge{desc: prometheus.NewDesc("tenantgate_revocations",
		"Live revocation entries held by this process, by kind (jti, sub, tenant, sid).", []string{"kind"}, nil)},
	propagation: prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "tenantgate",
		Name:      "revocation_propagation_seconds",
		Help:      "Time from a revocation's publish at one replica to its application at this one (pub/sub or reconcile).",
		Buckets:   []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}),
	storeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "tenantgate",
		Name:      "shared_store_errors_total",
		Help:      "Failed operations on the shared store (shared_store), by operation.",
	}, []string{"op"}),
}

// revocationGauge reads the live stores at scrape time, so the gauge is
// always what requests are checked against (every store once, however
// many gates share it).
type revocationGauge struct{ desc *prometheus.Desc }

func (g revocationGauge) Describe(ch chan<- *prometheus.Desc) { ch <- g.desc }

func (g revocationGauge) Collect(ch chan<- prometheus.Metric) {
	totals := map[string]int{}
	for _, p := range liveStates() {
		for k, n := range p.Set().Counts() {
			totals[k] += n
		}
	}
	for _, k := range revocation.Kinds {
		ch <- prometheus.MustNewConstMetric(g.desc, prometheus.GaugeValue, float64(totals[k]), k)
	}
}

// revocationObserver implements revocation.Observer on the metrics.
type revocationObserver struct{}

func (revocationObserver) StoreError(op string) {
	revocationMetrics.storeErrors.WithLabelValues(op).Inc()
}

func (revocationObserver) Propagated(d time.Duration) {
	revocationMetrics.propagation.Observe(d.Seconds())
}

func registerRevocationMetrics(ctx caddy.Context) error {
	reg := ctx.GetMetricsRegistry()
	if reg == nil {
		return nil
	}
	var errs []error
	for _, c := range []prometheus.Collector{revocationMetrics.entries, revocationMetrics.propagation, revocationMetrics.storeErrors} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				continue
			}
			errs = append(errs, fmt.Errorf("tenant_gate revocation metrics: %w", err))
		}
	}
	return errors.Join(errs...)
}
