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

// IdPTemporaryFailure implements keysource.FailureObserver.
func (m *gateMetrics) IdPTemporaryFailure(issuer, class string) {
	idpTemporaryTotal.WithLabelValues(issuer, class).Inc()
}

var _ keysource.FailureObserver = (*gateMetrics)(nil)
