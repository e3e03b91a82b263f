package api_test

import (
	"bytes"
	"context"
	"math"
	"net/http"
	"sync"
	"testing"

	"github.com/tenantgate/tenantgate/backend/store"
)

func TestHedgeAnalysis(t *testing.T) {
	h := newHarness(t)
	r := h.do("acme", "GET", "/api/v1/hedging/analysis", nil)
	expectStatus(t, r, http.StatusOK)
	m := r.json(t)
	assets := list(m, "assets")
	if len(assets) != 3 {
		t.Fatalf("assets = %s", r.body)
	}
	btc := assets[0].(map[string]any)
	near(t, "btc ratio", num(btc, "hedge_ratio"), 0.96)
	near(t, "btc net usd", num(btc, "net_delta_usd"), 6000)
	totals := m["totals"].(map[string]any)
	near(t, "spot usd", num(totals, "spot_usd"), 420000)
	adj := list(m, "adjustments")
	if len(adj) != 1 {
		t.Fatalf("adjustments = %s", r.body)
	}
	a := adj[0].(map[string]any)
	if str(a, "asset") != "SOL" || str(a, "side") != "sell" || num(a, "quantity") != 1000 || num(a, "est_fee_usd") != 75 {
		t.Errorf("adjustment = %v", a)
	}

	// Query params override the policy.
	r = h.do("acme", "GET", "/api/v1/hedging/analysis?target_ratio=0.5&tolerance=0.01", nil)
	expectStatus(t, r, http.StatusOK)
	if n := len(list(r.json(t), "adjustments")); n != 3 {
		t.Errorf("target 0.5: %d adjustments", n)
	}
	expectProblem(t, h.do("acme", "GET", "/api/v1/hedging/analysis?target_ratio=2", nil), 400, "target_ratio")
	expectProblem(t, h.do("acme", "GET", "/api/v1/hedging/analysis?tolerance=abc", nil), 400, "tolerance")

	// A tenant without an account gets 404 naming the operator command.
	expectProblem(t, h.do("initech", "GET", "/api/v1/hedging/analysis", nil), http.StatusNotFound, "backend accounts set")
	expectProblem(t, h.do("initech", "POST", "/api/v1/hedging/execute", nil, "Idempotency-Key", "k-none"), http.StatusNotFound, "backend accounts set")
	expectProblem(t, h.do("initech", "POST", "/api/v1/hedging/close", nil), http.StatusNotFound, "backend accounts set")
}

// feesPaidCents shows how many fills happened: every fill pays its fee once.
func feesPaidCents(t testing.TB, h *harness, tenant string) int {
	t.Helper()
	acct, err := h.store.Account(context.Background(), store.MustTenantID(tenant))
	if err != nil {
		t.Fatal(err)
	}
	return int(math.Round(acct.FeesPaidUSD * 100))
}

func TestHedgeExecute(t *testing.T) {
	h := newHarness(t)
	const path = "/api/v1/hedging/execute"
	expectProblem(t, h.do("acme", "POST", path, nil), http.StatusBadRequest, "Idempotency-Key")

	r := h.do("acme", "POST", path, nil, "Idempotency-Key", "k1")
	expectStatus(t, r, http.StatusOK)
	m := r.json(t)
	orders := list(m, "orders")
	if len(orders) != 1 || str(orders[0].(map[string]any), "asset") != "SOL" || str(m, "source") != "recommended" {
		t.Fatalf("execute = %s", r.body)
	}
	// The account now sits in the band: no more adjustments.
	r2 := h.do("acme", "GET", "/api/v1/hedging/analysis", nil)
	if n := len(list(r2.json(t), "adjustments")); n != 0 {
		t.Errorf("after execute: %d adjustments", n)
	}
	// Retry: same bytes, replay header, no second trade.
	again := h.do("acme", "POST", path, nil, "Idempotency-Key", "k1")
	if again.status != r.status || !bytes.Equal(again.body, r.body) || again.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("replay differs: %d %s", again.status, again.body)
	}
	if fees := feesPaidCents(t, h, "acme"); fees != 7500 {
		t.Errorf("fees paid = %d cents, want 7500 (one fill)", fees)
	}
	// Same key, other body: 422.
	expectProblem(t, h.do("acme", "POST", path, `{"target_ratio":0.5}`, "Idempotency-Key", "k1"), http.StatusUnprocessableEntity, "different request body")
	// The same key is independent per tenant.
	r = h.do("globex", "POST", path, nil, "Idempotency-Key", "k1")
	expectStatus(t, r, http.StatusOK)
	if n := len(list(r.json(t), "orders")); n != 3 {
		t.Errorf("globex orders = %s", r.body)
	}

	// Explicit orders.
	r = h.do("acme", "POST", path, `{"orders":[{"asset":"BTC","side":"buy","quantity":0.4}]}`, "Idempotency-Key", "k2")
	expectStatus(t, r, http.StatusOK)
	if str(r.json(t), "source") != "request" {
		t.Errorf("explicit = %s", r.body)
	}
	expectProblem(t, h.do("acme", "POST", path, `{"orders":[{"asset":"BTC","side":"buy","quantity":10}]}`, "Idempotency-Key", "k3"), 422, "long")
	expectProblem(t, h.do("acme", "POST", path, `{"orders":[{"asset":"DOGE","side":"sell","quantity":1}]}`, "Idempotency-Key", "k4"), 422, "DOGE")
	expectProblem(t, h.do("acme", "POST", path, `{"orders":[],"target_ratio":1}`, "Idempotency-Key", "k5"), 400, "either")
	expectProblem(t, h.do("acme", "POST", path, `{"ordres":[]}`, "Idempotency-Key", "k6"), 400, `"ordres"`)
	// A failed request stored nothing: the key is still free.
	expectStatus(t, h.do("acme", "POST", path, `{"orders":[{"asset":"BTC","side":"buy","quantity":0.1}]}`, "Idempotency-Key", "k3"), http.StatusOK)
}

// 50 concurrent retries with one key: one set of orders, 50 identical bodies.
func TestHedgeExecuteConcurrentRetries(t *testing.T) {
	h := newHarness(t)
	const n = 50
	var wg sync.WaitGroup
	results := make([]response, n)
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			results[i] = h.do("globex", "POST", "/api/v1/hedging/execute", nil, "Idempotency-Key", "same-key")
		}(i)
	}
	close(start)
	wg.Wait()
	replays := 0
	for i, r := range results {
		if r.status != http.StatusOK {
			t.Fatalf("[%d] status %d: %s", i, r.status, r.body)
		}
		if !bytes.Equal(r.body, results[0].body) {
			t.Fatalf("[%d] body differs:\n%s\n%s", i, r.body, results[0].body)
		}
		if r.header.Get("Idempotent-Replayed") == "true" {
			replays++
		}
	}
	if replays != n-1 {
		t.Errorf("%d replays, want %d", replays, n-1)
	}
	// globex's three adjustments cost 3 + 7.5 + 225 = 235.5 once.
	if fees := feesPaidCents(t, h, "globex"); fees != 23550 {
		t.Errorf("fees paid = %d cents, want 23550 (one set of fills)", fees)
	}
}

func TestHedgeClose(t *testing.T) {
	h := newHarness(t)
	r := h.do("acme", "POST", "/api/v1/hedging/close", nil)
	expectStatus(t, r, http.StatusOK)
	closed := list(r.json(t), "closed")
	if len(closed) != 2 {
		t.Fatalf("closed = %s", r.body)
	}
	r = h.do("acme", "POST", "/api/v1/hedging/close", `{}`)
	expectStatus(t, r, http.StatusOK)
	if l := list(r.json(t), "closed"); l == nil || len(l) != 0 || str(r.json(t), "status") != "nothing_to_close" {
		t.Errorf("second close = %s", r.body)
	}
	// Nothing to close: no phantom execution id.
	if _, ok := r.json(t)["execution_id"]; ok {
		t.Errorf("second close names an execution: %s", r.body)
	}
	r = h.do("acme", "GET", "/api/v1/hedging/analysis", nil)
	m := r.json(t)
	near(t, "ratio after close", num(m["totals"].(map[string]any), "hedge_ratio"), 0)
	// globex's hedges are untouched.
	r = h.do("globex", "GET", "/api/v1/hedging/analysis", nil)
	// Over hedgeable assets only: (54 000 + 300 000) / 798 000; the ETH short
	// (no ETH spot) hedges nothing and shows as naked_short_usd.
	near(t, "globex ratio", num(r.json(t)["totals"].(map[string]any), "hedge_ratio"), 0.44360902)
	near(t, "globex naked", num(r.json(t)["totals"].(map[string]any), "naked_short_usd"), -15000)
	expectProblem(t, h.do("acme", "POST", "/api/v1/hedging/close", `{"all":true}`), 400, `"all"`)
}
