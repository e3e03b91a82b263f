package tenantgate

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/tenantgate/tenantgate/module/ratelimit"
	"github.com/tenantgate/tenantgate/module/ratelimit/limiter"
	"github.com/tenantgate/tenantgate/module/ratelimit/redistest"
)

// rateLimitChain is tenant_gate → (tenant_rate_limit on store →) upstream,
// as Caddy runs them. store "" is no limit at all (the baseline), "memory"
// the per-process store, anything else a Redis URL.
func rateLimitChain(b *testing.B, store, keyPrefix string) caddyhttp.Handler {
	b.Helper()
	g := newTestGate(b, zap.NewNop())
	upstream := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.WriteHeader(http.StatusOK)
		return nil
	})
	next := caddyhttp.Handler(upstream)
	if store != "" {
		rl := &ratelimit.Handler{KeyPrefix: keyPrefix, Limits: []limiter.Limit{
			// Never reached in a benchmark: every request is allowed and counted.
			{Methods: []string{"*"}, Pattern: "/api/**", Rate: "1000000/s", Burst: 1000000},
		}}
		if store != "memory" {
			rl.Store, rl.Timeout = store, caddy.Duration(time.Second)
		}
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		b.Cleanup(func() { _ = rl.Cleanup(); cancel() })
		if err := rl.Provision(ctx); err != nil {
			b.Fatal(err)
		}
		if err := rl.Validate(); err != nil {
			b.Fatal(err)
		}
		next = caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			return rl.ServeHTTP(w, r, upstream)
		})
	}
	return caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		return g.ServeHTTP(w, r, next)
	})
}

// BenchmarkRateLimitAddedCost measures one authenticated request through
// the gate without limits, with the memory store and with the Redis store,
// interleaved in the same loop (in rotating order) so that all three see
// the same machine. It
// reports each variant's ns per request and the ratios to the baseline
// (memory_x, redis_x): the added cost per request of tenant_rate_limit.
func BenchmarkRateLimitAddedCost(b *testing.B) {
	url := redistest.Redis(b)
	prefix := redistest.Prefix(b, url)
	variants := []struct {
		name string
		h    caddyhttp.Handler
		sum  time.Duration
	}{
		{name: "baseline", h: rateLimitChain(b, "", "")},
		{name: "memory", h: rateLimitChain(b, "memory", "")},
		{name: "redis", h: rateLimitChain(b, url, prefix)},
	}
	tok := testToken(b, "acme")
	w := &discardWriter{h: http.Header{}}
	// Warm the Redis connection and the script cache.
	for i := range variants {
		_ = variants[i].h.ServeHTTP(w, newTestRequest(context.Background(), http.MethodGet, "/api/x", tok))
	}
	b.ReportAllocs()
	round := 0
	for b.Loop() {
		// Rotate which variant goes first, so that none always pays for the
		// garbage collection the others' allocations bring on.
		round++
		for k := range variants {
			i := (k + round) % len(variants)
			r := newTestRequest(context.Background(), http.MethodGet, "/api/x", tok)
			clear(w.h)
			start := time.Now()
			_ = variants[i].h.ServeHTTP(w, r)
			variants[i].sum += time.Since(start)
		}
	}
	base := float64(variants[0].sum)
	for _, v := range variants {
		b.ReportMetric(float64(v.sum.Nanoseconds())/float64(b.N), v.name+"_ns/req")
	}
	b.ReportMetric(float64(variants[1].sum)/base, "memory_x")
	b.ReportMetric(float64(variants[2].sum)/base, "redis_x")
}
