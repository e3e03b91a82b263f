package tenantgate

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tenantgate/tenantgate/module/ratelimit"
	"github.com/tenantgate/tenantgate/module/ratelimit/limiter"
)

// tenant_rate_limit runs right after tenant_gate wherever the two stand in
// a site block, with no `order` line.
func TestRateLimitOrderedRightAfterGate(t *testing.T) {
	adapter := caddyconfig.GetAdapter("caddyfile")
	out, _, err := adapter.Adapt([]byte(`http://:8080 {
	reverse_proxy 127.0.0.1:9
	tenant_rate_limit {
		limit * /** 1/s
	}
	request_header X-A b
	tenant_gate {
		rule * /** authenticated
	}
	basic_auth /nothing {
		u $2a$14$Zkx19XLiW6VYouLHR5NmfOFU0z2GTNmpkT/5qqR7hx4IjWJPDhjvG
	}
}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Apps struct {
			HTTP struct {
				Servers map[string]struct {
					Routes []struct {
						Handle []struct {
							Handler string `json:"handler"`
							Routes  []struct {
								Handle []struct {
									Handler string `json:"handler"`
								} `json:"handle"`
							} `json:"routes"`
						} `json:"handle"`
					} `json:"routes"`
				} `json:"servers"`
			} `json:"http"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, srv := range cfg.Apps.HTTP.Servers {
		for _, rt := range srv.Routes {
			for _, h := range rt.Handle {
				order = append(order, h.Handler)
				for _, sub := range h.Routes {
					for _, sh := range sub.Handle {
						order = append(order, sh.Handler)
					}
				}
			}
		}
	}
	idx := map[string]int{}
	for i, h := range order {
		if _, seen := idx[h]; !seen {
			idx[h] = i
		}
	}
	if idx["tenant_rate_limit"] != idx["tenant_gate"]+1 {
		t.Fatalf("handler order %v: tenant_rate_limit must come right after tenant_gate", order)
	}
}

// A request tenant_rate_limit refuses gets one audit record from the gate:
// deny, rate_limited, 429; and it is counted per tenant.
func TestRateLimitedRequestRecord(t *testing.T) {
	c := newCaptured()
	g := newTestGate(t, c.l)
	rl := &ratelimit.Handler{Limits: []limiter.Limit{{Methods: []string{"*"}, Pattern: "/api/**", Rate: "10/m", Burst: 2}}}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(func() { _ = rl.Cleanup(); cancel() })
	if err := rl.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	upstream := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.WriteHeader(http.StatusOK)
		return nil
	})
	chain := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		return rl.ServeHTTP(w, r, upstream)
	})
	tenant := "rl-record-tenant"
	tok := testToken(t, tenant)
	before := testutil.ToFloat64(processMetrics.rateLimited.WithLabelValues(tenant))
	for i, want := range []int{200, 200, 429} {
		c.recs = nil
		w := httptest.NewRecorder()
		if err := g.ServeHTTP(w, newTestRequest(context.Background(), "GET", "/api/x", tok), chain); err != nil {
			t.Fatal(err)
		}
		if w.Code != want {
			t.Fatalf("request %d: %d, want %d", i+1, w.Code, want)
		}
		rec := c.only(t)
		wantDecision, wantReason := "allow", "ok"
		if want == 429 {
			wantDecision, wantReason = "deny", "rate_limited"
			if w.Header().Get("Retry-After") == "" || w.Header().Get("RateLimit") == "" || w.Header().Get(HeaderRequestID) == "" {
				t.Errorf("429 headers %v", w.Header())
			}
		}
		if rec["decision"] != wantDecision || rec["reason"] != wantReason || rec["status"] != float64(want) ||
			rec["tenant_id"] != tenant || rec["upstream_status"] != 0.0 {
			t.Errorf("request %d record %v", i+1, rec)
		}
	}
	if got := testutil.ToFloat64(processMetrics.rateLimited.WithLabelValues(tenant)) - before; got != 1 {
		t.Errorf("rate_limited_total{tenant=%q} rose by %v, want 1", tenant, got)
	}
	// A `vars` directive cannot fake the outcome: only the handler's own type counts.
	c.recs = nil
	chain = caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		caddyhttp.SetVar(r.Context(), "tenant_rate_limit.outcome", "rate_limited")
		w.WriteHeader(http.StatusOK)
		return nil
	})
	w := httptest.NewRecorder()
	_ = g.ServeHTTP(w, newTestRequest(context.Background(), "GET", "/api/x", tok), chain)
	if rec := c.only(t); rec["decision"] != "allow" {
		t.Errorf("a plain string var changed the record: %v", rec)
	}
}
