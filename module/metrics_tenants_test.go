package tenantgate

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestIssuerTenantsGauges checks that a multi-tenant issuer reports under
// its template: one tenants series and one keys series, whatever the tenants.
func TestIssuerTenantsGauges(t *testing.T) {
	m, err := newGateMetrics(prometheus.NewPedanticRegistry(), 10)
	if err != nil {
		t.Fatal(err)
	}
	const tmpl = "https://kc.example/realms/{tenant}"
	m.IssuerTenants(tmpl, 3, 5)
	m.IssuerTenants(tmpl, 2, 4) // one left
	if got := testutil.ToFloat64(m.issuerTenants.WithLabelValues(tmpl)); got != 2 {
		t.Fatalf("issuer_tenants %v, want 2", got)
	}
	if got := testutil.ToFloat64(m.jwksKeys.WithLabelValues(tmpl)); got != 4 {
		t.Fatalf("jwks_keys %v, want 4", got)
	}
}
