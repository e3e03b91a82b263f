package tenantgate

import (
	"context"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/tenantgate/tenantgate/module/ratelimit"
)

// rateLimitMetricNames provisions a tenant_rate_limit handler and returns
// the names of the metrics it registers, for the dashboard test.
func rateLimitMetricNames(t *testing.T) []string {
	t.Helper()
	h := new(ratelimit.Handler)
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("tenant_rate_limit {\n limit * /api/** 10/s\n}")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	defer h.Cleanup()
	families, err := ctx.GetMetricsRegistry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range families {
		names = append(names, f.GetName())
	}
	return names
}
