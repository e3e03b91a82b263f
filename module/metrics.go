package tenantgate

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tenantgate/tenantgate/module/audit"
)

// Label values for requests that carry no usable tenant, and for tenants
// beyond the cap.
const (
	tenantNone  = "_none"
	tenantOther = "_other"
)

// gateMetrics are the gate's collectors. They are created once per process
// and registered on the registry of every config Caddy loads, so counts
// survive `caddy reload`, and every tenant_gate instance of a config shares
// them: a collector already registered is reused, never registered twice.
type gateMetrics struct {
	requests    *prometheus.CounterVec
	authTime    prometheus.Histogram
	jwksRefresh *prometheus.CounterVec
	jwksKeys    *prometheus.GaugeVec
	jwksLast    *prometheus.GaugeVec
	cacheHits   prometheus.Counter
	cacheMisses prometheus.Counter
	// cacheEntries sums the verified-token caches of the live configs.
	cacheEntries prometheus.GaugeFunc
	// issuerTenants counts the tenants' key sets a multi-tenant issuer
	// holds; its label is the issuer as configured ({tenant} unreplaced),
	// so the series are bounded by the config, not by the tenants.
	issuerTenants *prometheus.GaugeVec
	// rateLimited counts the requests tenant_rate_limit refused with 429,
	// per tenant. The gate counts them when it finishes such a request (the
	// limiter tells it through audit.Outcome), so the tenant label is capped
	// by metrics_max_tenants like every other tenant label.
	rateLimited *prometheus.CounterVec
	tenants     *tenantLabels
	issuers     *issuerRefs
	// counters caches the requests_total series by decision, reason and tenant.
	counters *requestCounters
}

var processMetrics = &gateMetrics{
	requests: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "tenantgate",
		Name:      "requests_total",
		Help:      "Requests decided by the gate, by decision, reason and tenant.",
	}, []string{"decision", "reason", "tenant"}),
	authTime: prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "tenantgate",
		Name:      "auth_duration_seconds",
		Help:      "Time the gate itself spent on a request, upstream excluded.",
		Buckets:   []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1},
	}),
	jwksRefresh: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "tenantgate",
		Name:      "jwks_refresh_total",
		Help:      "Key set fetches per issuer and result (success or failure).",
	}, []string{"issuer", "result"}),
	jwksKeys: prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "tenantgate",
		Name:      "jwks_keys",
		Help:      "Keys currently loaded per issuer.",
	}, []string{"issuer"}),
	jwksLast: prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "tenantgate",
		Name:      "jwks_last_success_timestamp_seconds",
		Help:      "Unix time of the last successful key fetch per issuer.",
	}, []string{"issuer"}),
	cacheHits: prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "tenantgate",
		Name:      "token_cache_hits_total",
		Help:      "Tokens found in the verified-token cache (parsing and signature skipped).",
	}),
	cacheMisses: prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "tenantgate",
		Name:      "token_cache_misses_total",
		Help:      "Tokens looked up in the verified-token cache and verified in full.",
	}),
	issuerTenants: prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "tenantgate",
		Name:      "issuer_tenants",
		Help:      "Tenants whose key sets a multi-tenant issuer holds (at most its max_tenants), per issuer as configured.",
	}, []string{"issuer"}),
	rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "tenantgate",
		Name:      "rate_limited_total",
		Help:      "Requests answered 429 by tenant_rate_limit, by tenant.",
	}, []string{"tenant"}),
	tenants: newTenantLabels(),
	issuers: &issuerRefs{n: map[string]int{}},
}

func init() {
	m := processMetrics
	m.counters = newRequestCounters(m.requests, m.tenants)
	m.cacheEntries = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "tenantgate",
		Name:      "token_cache_entries",
		Help:      "Entries in the verified-token caches of the live configuration.",
	}, func() float64 { return float64(storeStats().TokenCacheEntries) })
}

// newGateMetrics registers the process's collectors on reg (Caddy's
// registry for this config) and raises the tenant cap to maxTenants.
func newGateMetrics(reg prometheus.Registerer, maxTenants int) (*gateMetrics, error) {
	m := processMetrics
	m.tenants.raiseMax(maxTenants)
	if reg == nil {
		return m, nil
	}
	var errs []error
	for _, c := range []prometheus.Collector{m.requests, m.authTime, m.jwksRefresh, m.jwksKeys, m.jwksLast,
		m.cacheHits, m.cacheMisses, m.cacheEntries, m.issuerTenants, m.rateLimited, idpTemporaryTotal, tenantBudgetRefusals} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) && are.ExistingCollector == c {
				continue
			}
			errs = append(errs, fmt.Errorf("tenant_gate metrics: %w", err))
		}
	}
	return m, errors.Join(errs...)
}

func (m *gateMetrics) observe(d audit.Decision, r audit.Reason, tenant string, gateTime time.Duration) {
	m.counters.get(counterKey{d, r, tenant}).Inc()
	m.authTime.Observe(gateTime.Seconds())
	if r == audit.ReasonRateLimited {
		m.rateLimited.WithLabelValues(m.tenants.label(tenant)).Inc()
	}
}

// JWKSRefresh implements verify.Observer. keys is the count in force after
// the attempt (the kept set after a failure), so the gauge always shows what
// the live config verifies with.
func (m *gateMetrics) JWKSRefresh(issuer string, ok bool, keys int, at time.Time) {
	result := "failure"
	if ok {
		result = "success"
		m.jwksLast.WithLabelValues(issuer).Set(float64(at.UnixNano()) / 1e9)
	}
	m.jwksKeys.WithLabelValues(issuer).Set(float64(keys))
	m.jwksRefresh.WithLabelValues(issuer, result).Inc()
}

// JWKSInUse implements verify.Observer: a config being loaded starts with
// keys (kept in the process's key store, or none), not with whatever an
// earlier config last reported.
func (m *gateMetrics) JWKSInUse(issuer string, keys int, lastSuccess time.Time) {
	m.jwksKeys.WithLabelValues(issuer).Set(float64(keys))
	if lastSuccess.IsZero() {
		m.jwksLast.DeleteLabelValues(issuer)
		return
	}
	m.jwksLast.WithLabelValues(issuer).Set(float64(lastSuccess.UnixNano()) / 1e9)
}

// holdIssuers and releaseIssuers count the live tenant_gate instances that
// name each issuer. When a reload drops an issuer, the last release deletes
// its key gauges, so no series describes keys no config uses. (The refresh
// counters stay: counts outlive configs.)
func (m *gateMetrics) holdIssuers(names []string) {
	m.issuers.mu.Lock()
	defer m.issuers.mu.Unlock()
	for _, n := range names {
		m.issuers.n[n]++
	}
}

func (m *gateMetrics) releaseIssuers(names []string) {
	m.issuers.mu.Lock()
	defer m.issuers.mu.Unlock()
	for _, n := range names {
		if m.issuers.n[n]--; m.issuers.n[n] <= 0 {
			delete(m.issuers.n, n)
			m.jwksKeys.DeleteLabelValues(n)
			m.jwksLast.DeleteLabelValues(n)
			m.issuerTenants.DeleteLabelValues(n)
		}
	}
}

// issuerRefs counts, per issuer label, the live instances naming it.
type issuerRefs struct {
	mu sync.Mutex
	n  map[string]int
}

// IssuerTenants implements verify.TemplateObserver: a multi-tenant issuer
// has one jwks_keys series (its tenants' keys together), not one per tenant.
func (m *gateMetrics) IssuerTenants(issuer string, tenants, keys int) {
	m.issuerTenants.WithLabelValues(issuer).Set(float64(tenants))
	m.jwksKeys.WithLabelValues(issuer).Set(float64(keys))
}

// TokenCacheLookup implements verify.CacheObserver.
func (m *gateMetrics) TokenCacheLookup(hit bool) {
	if hit {
		m.cacheHits.Inc()
	} else {
		m.cacheMisses.Inc()
	}
}

// tenantLabels caps the tenant label. Every label value is a time series
// kept in memory by Caddy and by Prometheus; tenants are created by
// customers, so without a cap a large or hostile tenant population would
// grow both without bound. The first maxTenants tenants seen keep their
// own series, the rest share "_other".
//
// The set is an immutable map behind an atomic pointer: every request reads
// it without a lock; the few requests that add a tenant (at most max, ever)
// copy it under mu.
type tenantLabels struct {
	seen atomic.Pointer[map[string]struct{}]
	max  atomic.Int64
	mu   sync.Mutex // serialises writers
}

func newTenantLabels() *tenantLabels {
	t := &tenantLabels{}
	t.seen.Store(&map[string]struct{}{})
	return t
}

func (t *tenantLabels) raiseMax(n int) {
	for {
		cur := t.max.Load()
		if int64(n) <= cur || t.max.CompareAndSwap(cur, int64(n)) {
			return
		}
	}
}

// label counts requests without a tenant as the pseudo-tenant "_none",
// under the same cap, so the label never has more than max+1 values.
func (t *tenantLabels) label(tenant string) string {
	if tenant == "" {
		tenant = tenantNone
	}
	seen := *t.seen.Load()
	if _, ok := seen[tenant]; ok {
		return tenant
	}
	if int64(len(seen)) >= t.max.Load() {
		return tenantOther
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	seen = *t.seen.Load()
	if _, ok := seen[tenant]; ok {
		return tenant
	}
	if int64(len(seen)) >= t.max.Load() {
		return tenantOther
	}
	next := make(map[string]struct{}, len(seen)+1)
	for k := range seen {
		next[k] = struct{}{}
	}
	next[tenant] = struct{}{}
	t.seen.Store(&next)
	return tenant
}
