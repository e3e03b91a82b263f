package tenantgate

import (
	"net/http"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tenantgate/tenantgate/module/audit"
	"github.com/tenantgate/tenantgate/module/ratelimit"
)

// rateLimitedTotal counts 429s of tenant_rate_limit per tenant. The gate
// counts them, not tenant_rate_limit, because the gate owns the capped
// tenant label (metrics_max_tenants): the series stay bounded the same way.
var rateLimitedTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
	Namespace: "tenantgate",
	Name:      "rate_limited_total",
	Help:      "Requests answered 429 by tenant_rate_limit, by tenant.",
}, []string{"tenant"})

// applyRateLimitOutcome makes the audit record of a request that
// tenant_rate_limit answered itself (after the gate let it pass) say so:
// decision deny with its reason. The status is the 429 or 503 the client got.
func (g *Gate) applyRateLimitOutcome(r *http.Request, rec *audit.Record) {
	o, ok := caddyhttp.GetVar(r.Context(), ratelimit.OutcomeVar).(ratelimit.Outcome)
	if !ok {
		return
	}
	rec.Decision, rec.Reason = audit.DecisionDeny, audit.Reason(o)
	if rec.Reason == audit.ReasonRateLimited && g.metrics != nil {
		rateLimitedTotal.WithLabelValues(g.metrics.tenants.label(rec.TenantID)).Inc()
	}
}
