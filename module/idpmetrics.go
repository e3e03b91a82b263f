package tenantgate

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tenantgate/tenantgate/module/verify/keysource"
)

// idpTemporaryTotal counts key fetches that failed in a way that says
// nothing about the tenant (429, another 4xx such as a WAF's 403, 5xx,
// timeout, connection error, unusable body). Its issuer label is the issuer
// as configured ({tenant} unreplaced) and its class one of a fixed set, so
// the series are bounded by the config, never by tenants or attackers.
var idpTemporaryTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
	Namespace: "tenantgate",
	Name:      "idp_temporary_failures_total",
	Help:      "Key fetches that failed temporarily, by issuer as configured and class (429, 4xx, 5xx, timeout, network, invalid).",
}, []string{"issuer", "class"})

// tenantBudgetRefusals counts requests for a tenant whose keys the process
// does not hold that the new-tenant budget refused (503 keys_unavailable,
// no fetch): a flood of made-up tenants, or a client over its share. Its
// only label is the issuer as configured ({tenant} unreplaced), bounded by
// the config like every issuer label; neither the tenant nor the client
// address is a label.
var tenantBudgetRefusals = prometheus.NewCounterVec(prometheus.CounterOpts{
	Namespace: "tenantgate",
	Name:      "tenant_budget_refusals_total",
	Help:      "Requests for tenants not held refused by the new-tenant budget (per issuer and per client address), by issuer as configured.",
}, []string{"issuer"})

// TenantBudgetRefused implements keysource.BudgetObserver.
func (m *gateMetrics) TenantBudgetRefused(issuer string) {
	tenantBudgetRefusals.WithLabelValues(issuer).Inc()
}

// IdPTemporaryFailure implements keysource.FailureObserver.
func (m *gateMetrics) IdPTemporaryFailure(issuer, class string) {
	idpTemporaryTotal.WithLabelValues(issuer, class).Inc()
}

var (
	_ keysource.FailureObserver = (*gateMetrics)(nil)
	_ keysource.BudgetObserver  = (*gateMetrics)(nil)
)
