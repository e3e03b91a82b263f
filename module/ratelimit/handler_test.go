package ratelimit

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"

	"github.com/tenantgate/tenantgate/module/audit"
	"github.com/tenantgate/tenantgate/module/ratelimit/limiter"
	"github.com/tenantgate/tenantgate/module/ratelimit/redistest"
)

func provisioned(t testing.TB, h *Handler) *Handler {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(func() { _ = h.Cleanup(); cancel() })
	if err := h.Provision(ctx); err != nil {
		t.Fatalf("provision: %v", err)
	}
	if err := h.Validate(); err != nil {
		t.Fatalf("validate: %v", err)
	}
	h.logger = zap.NewNop()
	return h
}

func limits(lines ...string) []limiter.Limit {
	var out []limiter.Limit
	for _, l := range lines {
		parsed, err := limiter.ParseLimit(strings.Fields(l), 0)
		if err != nil {
			panic(err)
		}
		out = append(out, parsed)
	}
	return out
}

// request is prepared as tenant_gate leaves it: vars, the audit.Outcome
// the gate reads back, a replacer with the request id and, when tenant is
// not empty, {http.auth.tenant_id}.
func request(method, target, tenant string) *http.Request {
	r := httptest.NewRequest(method, target, nil)
	ctx := context.WithValue(r.Context(), caddyhttp.VarsCtxKey, map[string]any{})
	ctx = audit.WithOutcome(ctx, new(audit.Outcome))
	r = r.WithContext(ctx)
	repl := caddyhttp.NewTestReplacer(r)
	repl.Set("http.request.uuid", "req-1")
	if tenant != "" {
		repl.Set("http.auth.tenant_id", tenant)
	}
	return r
}

type next struct{ calls int }

func (n *next) handler() caddyhttp.Handler {
	return caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		n.calls++
		w.WriteHeader(http.StatusOK)
		return nil
	})
}

func serve(t testing.TB, h *Handler, r *http.Request, n *next) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	if err := h.ServeHTTP(w, r, n.handler()); err != nil {
		t.Fatal(err)
	}
	return w
}

// outcome is what the handler told the gate: nil when it did not refuse r.
func outcome(r *http.Request) any {
	if reason := audit.OutcomeFrom(r.Context()).Denied(); reason != "" {
		return Outcome(reason)
	}
	return nil
}

func TestServeMemory(t *testing.T) {
	h := provisioned(t, &Handler{Limits: limits("* /** 100/s burst 200", "POST /api/v1/hedging/execute 10/m burst 2")})
	n := &next{}
	for i := 0; i < 2; i++ {
		w := serve(t, h, request("POST", "/api/v1/hedging/execute", "acme"), n)
		if w.Code != 200 {
			t.Fatalf("request %d: %d", i+1, w.Code)
		}
		if got := w.Header().Get("RateLimit"); got != fmt.Sprintf(`"* /**";r=%d;t=1, "POST /api/v1/hedging/execute";r=%d;t=%d`, 199-i, 1-i, 6*(i+1)) {
			t.Errorf("RateLimit on success %d: %s", i+1, got)
		}
		if got := w.Header().Get("RateLimit-Policy"); got != `"* /**";q=200;w=2, "POST /api/v1/hedging/execute";q=2;w=12` {
			t.Errorf("RateLimit-Policy: %s", got)
		}
	}
	r := request("POST", "/api/v1/hedging/execute", "acme")
	w := serve(t, h, r, n)
	if w.Code != http.StatusTooManyRequests || n.calls != 2 {
		t.Fatalf("third execute: %d, next called %d times", w.Code, n.calls)
	}
	if got := w.Header().Get("Retry-After"); got != "6" {
		t.Errorf("Retry-After %q, want 6", got)
	}
	if got := w.Header().Get("RateLimit"); !strings.HasSuffix(got, `"POST /api/v1/hedging/execute";r=0;t=6`) {
		t.Errorf("RateLimit on 429: %s", got)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type %q", ct)
	}
	var p audit.Problem
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
		t.Fatal(err)
	}
	if p.Status != 429 || p.Reason != "rate_limited" || p.RequestID != "req-1" || p.Title != "Too many requests" ||
		!strings.Contains(p.Detail, "POST /api/v1/hedging/execute 10/m burst 2") {
		t.Errorf("problem %+v", p)
	}
	if o, ok := outcome(r).(Outcome); !ok || o != Outcome(audit.ReasonRateLimited) || o.String() != "rate_limited" {
		t.Errorf("outcome var %#v", outcome(r))
	}

	// Other routes of the same tenant still pass (only the global limit counts there).
	if w := serve(t, h, request("GET", "/api/v1/hedging/analysis", "acme"), n); w.Code != 200 {
		t.Errorf("analysis: %d", w.Code)
	}
	// Another tenant is unaffected.
	if w := serve(t, h, request("POST", "/api/v1/hedging/execute", "globex"), n); w.Code != 200 {
		t.Errorf("globex: %d", w.Code)
	}
	// No tenant (public route, or no tenant_gate in front): untouched.
	w = serve(t, h, request("POST", "/api/v1/hedging/execute", ""), n)
	if w.Code != 200 || w.Header().Get("RateLimit") != "" || outcome(r) == nil {
		t.Errorf("no tenant: %d, RateLimit %q", w.Code, w.Header().Get("RateLimit"))
	}
}

func TestServePassesWhatNoLimitMatches(t *testing.T) {
	h := provisioned(t, &Handler{Limits: limits("POST /api/** 1/m")})
	n := &next{}
	for _, r := range []*http.Request{
		request("GET", "/api/x", "acme"),       // no limit for GET
		request("POST", "/other", "acme"),      // no limit for the path
		request("POST", "/api/%2e%2e", "acme"), // not canonical: tenant_gate refused it already
	} {
		for i := 0; i < 3; i++ {
			if w := serve(t, h, r, n); w.Code != 200 || w.Header().Get("RateLimit") != "" {
				t.Fatalf("%s %s: %d %v", r.Method, r.URL, w.Code, w.Header())
			}
		}
	}
	// Without a replacer (not under Caddy's server) the handler passes.
	w := httptest.NewRecorder()
	if err := h.ServeHTTP(w, httptest.NewRequest("POST", "/api/x", nil), n.handler()); err != nil || w.Code != 200 {
		t.Fatalf("no replacer: %d %v", w.Code, err)
	}
}

func TestServeStoreDown(t *testing.T) {
	closed := redistest.ClosedURL(t)
	lim := limits("* /** 1/m")
	errs := testutil.ToFloat64(processMetrics.storeErrors)

	allow := provisioned(t, &Handler{Store: closed, Limits: lim, Timeout: caddy.Duration(50 * time.Millisecond)})
	n := &next{}
	for i := 0; i < 3; i++ {
		r := request("GET", "/x", "acme")
		if w := serve(t, allow, r, n); w.Code != 200 || w.Header().Get("RateLimit") != "" || outcome(r) != nil {
			t.Fatalf("allow: %d %v", w.Code, w.Header())
		}
	}
	if got := testutil.ToFloat64(processMetrics.storeErrors) - errs; got != 3 {
		t.Errorf("store errors counted %v, want 3", got)
	}

	deny := provisioned(t, &Handler{Store: closed, Limits: lim, OnStoreError: OnStoreErrorDeny})
	r := request("GET", "/x", "acme")
	w := serve(t, deny, r, n)
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") != "1" || n.calls != 3 {
		t.Fatalf("deny: %d %v", w.Code, w.Header())
	}
	var p audit.Problem
	_ = json.Unmarshal(w.Body.Bytes(), &p)
	if p.Reason != "rate_limit_unavailable" || p.Status != 503 {
		t.Errorf("problem %+v", p)
	}
	if o, _ := outcome(r).(Outcome); o != Outcome(audit.ReasonRateLimitUnavailable) {
		t.Errorf("outcome %#v", outcome(r))
	}
}

func TestServeRedis(t *testing.T) {
	url := redistest.Redis(t)
	prefix := redistest.Prefix(t, url)
	// Two handlers on one Redis: two replicas.
	a := provisioned(t, &Handler{Store: url, KeyPrefix: prefix, Limits: limits("* /** 10/m burst 3")})
	b := provisioned(t, &Handler{Store: url, KeyPrefix: prefix, Limits: limits("* /** 10/m burst 3")})
	n := &next{}
	codes := ""
	for i := 0; i < 6; i++ {
		h := a
		if i%2 == 1 {
			h = b
		}
		codes += fmt.Sprint(serve(t, h, request("GET", "/x", "acme"), n).Code, " ")
	}
	if codes != "200 200 200 429 429 429 " {
		t.Fatalf("codes across two replicas: %s", codes)
	}
}

func TestServeRedisSlow(t *testing.T) {
	url := redistest.Redis(t)
	prefix := redistest.Prefix(t, url)
	slow := redistest.SlowProxy(t, url, 500*time.Millisecond)
	h := provisioned(t, &Handler{Store: slow, KeyPrefix: prefix, Limits: limits("* /** 10/s"), Timeout: caddy.Duration(30 * time.Millisecond)})
	n := &next{}
	start := time.Now()
	w := serve(t, h, request("GET", "/x", "acme"), n)
	if w.Code != 200 || n.calls != 1 {
		t.Fatalf("slow store, allow: %d", w.Code)
	}
	// Bounded by the timeout, not by the 500 ms of the store (generously:
	// the machine is shared).
	if took := time.Since(start); took >= 500*time.Millisecond {
		t.Fatalf("the request waited %s for a store with a 30ms timeout", took)
	}
}

func TestProvisionAndValidateErrors(t *testing.T) {
	for _, c := range []struct {
		h    Handler
		want string
	}{
		{Handler{}, "no limits"},
		{Handler{Limits: []limiter.Limit{{Methods: []string{"*"}, Pattern: "/**", Rate: "10/x"}}}, `bad rate "10/x"`},
		{Handler{Limits: limits("* /** 1/s"), Store: "http://x"}, "store http://x"},
		{Handler{Limits: limits("* /** 1/s"), OnStoreError: "sometimes"}, `on_store_error "sometimes"`},
		{Handler{Limits: limits("* /** 1/s"), Timeout: -1}, "timeout"},
		{Handler{Limits: limits("* /** 1/s"), MaxTenants: -1}, "max_tenants -1"},
	} {
		h := c.h
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		if err := h.Provision(ctx); err != nil {
			t.Fatalf("provision should leave problems to Validate: %v", err)
		}
		err := h.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "tenant_rate_limit: ") {
			t.Errorf("%+v: %v, want %q", c.h, err, c.want)
		}
		_ = h.Cleanup()
		cancel()
	}
}

// The store placeholder is read when the config loads.
func TestProvisionStorePlaceholder(t *testing.T) {
	t.Setenv("TG_TEST_RL_STORE", "redis://127.0.0.1:1/0")
	h := provisioned(t, &Handler{Store: "{env.TG_TEST_RL_STORE}", Limits: limits("* /** 1/s")})
	if _, ok := h.store.(*limiter.Redis); !ok {
		t.Fatalf("store %T", h.store)
	}
}

func TestMemoryStoreTenantsGauge(t *testing.T) {
	before := testutil.ToFloat64(processMetrics.tenants)
	h := provisioned(t, &Handler{Limits: limits("* /** 100/s"), MaxTenants: 100})
	n := &next{}
	// 100,000 made-up tenants through the handler.
	for i := 0; i < 100_000; i++ {
		serve(t, h, request("GET", "/x", fmt.Sprintf("t%d", i)), n)
	}
	mem := h.store.(*limiter.Memory)
	if got := mem.Tenants(); got > 100 || got == 0 {
		t.Fatalf("memory store holds %d tenants, cap 100", got)
	}
	deadline := time.Now().Add(5 * time.Second)
	for testutil.ToFloat64(processMetrics.tenants)-before > 100 {
		if time.Now().After(deadline) {
			t.Fatalf("gauge %v above the cap", testutil.ToFloat64(processMetrics.tenants)-before)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestMetricsRegisterTwice(t *testing.T) {
	reg := testutilRegistry()
	if _, err := newMetrics(reg); err != nil {
		t.Fatal(err)
	}
	if _, err := newMetrics(reg); err != nil {
		t.Fatalf("second registration: %v", err)
	}
}

// BenchmarkServeMemory is the handler alone on the memory store, one
// allowed request per iteration, against the same request with no limit
// matching (the handler's fixed cost).
func BenchmarkServeMemory(b *testing.B) {
	for _, c := range []struct{ name, path string }{{"limited", "/api/x"}, {"no_limit_matches", "/other"}} {
		b.Run(c.name, func(b *testing.B) {
			h := provisioned(b, &Handler{Limits: limits("* /api/** 1000000/s burst 1000000")})
			n := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })
			r := request("GET", c.path, "acme")
			w := httptest.NewRecorder()
			b.ReportAllocs()
			for b.Loop() {
				clear(w.Header())
				_ = h.ServeHTTP(w, r, n)
			}
		})
	}
}
