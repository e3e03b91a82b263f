package tenantgate

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tenantgate/tenantgate/module/audit"
	"github.com/tenantgate/tenantgate/module/rules"
)

// scaleRules is n rules, per service a read and a write rule, the last one
// the rule the benchmark's request matches: the end of the list, the worst
// case of a linear scan.
func scaleRules(n int) []rules.Rule {
	out := make([]rules.Rule, 0, n)
	for i := 0; len(out) < n-1; i++ {
		out = append(out,
			rules.Rule{Methods: []string{"GET"}, Pattern: fmt.Sprintf("/api/v1/svc%d/{id}", i), Roles: []string{fmt.Sprintf("svc%d:read", i)}},
			rules.Rule{Methods: []string{"POST"}, Pattern: fmt.Sprintf("/api/v1/svc%d/{id}/action", i), Roles: []string{fmt.Sprintf("svc%d:write", i)}})
	}
	out = out[:n-1]
	return append(out, rules.Rule{Methods: []string{"GET"}, Pattern: "/api/v1/target/{id}", Roles: []string{"reader"}})
}

// BenchmarkServeHTTPRulesScale shows that a cached request through the gate
// (audit JSON, metrics, Ed25519 assertion) costs the same with 10 rules and
// with 10,000 (issue 24: cost flat as the work grows). Blocks of requests
// alternate between the two gates; large/small is the median of each pair's
// ratio, which holds on a shared machine where two benchmarks' ns/op do not.
func BenchmarkServeHTTPRulesScale(b *testing.B) {
	jsonAudit := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()),
		zapcore.AddSync(io.Discard), zapcore.InfoLevel)).Named(audit.LoggerName)
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.WriteHeader(http.StatusOK)
		return nil
	})
	tok := testToken(b, "acme")
	gate := func(n int) *Gate {
		return newTestGateWith(b, jsonAudit, func(g *Gate) { g.Rules = scaleRules(n) })
	}
	small, large := gate(10), gate(10_000)
	w := &discardWriter{h: http.Header{}}
	block := func(g *Gate) time.Duration {
		start := time.Now()
		for range 200 {
			r := newTestRequest(context.Background(), http.MethodGet, "/api/v1/target/42", tok)
			clear(w.h)
			_ = g.ServeHTTP(w, r, next)
			if r.Header.Get(keyTenantID) != "acme" {
				b.Fatal("the request was not allowed")
			}
		}
		return time.Since(start)
	}
	var ratios, smallUs, largeUs []float64
	for b.Loop() {
		s, l := block(small), block(large)
		ratios = append(ratios, float64(l)/float64(s))
		smallUs = append(smallUs, float64(s)/200/1e3)
		largeUs = append(largeUs, float64(l)/200/1e3)
	}
	med := func(xs []float64) float64 {
		s := slices.Clone(xs)
		slices.Sort(s)
		return s[len(s)/2]
	}
	b.ReportMetric(med(ratios), "large/small")
	b.ReportMetric(med(smallUs), "µs/req-10")
	b.ReportMetric(med(largeUs), "µs/req-10k")
}
