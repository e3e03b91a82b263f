package api_test

import (
	"fmt"
	"math"
	"net/http"
	"strings"
	"testing"
)

func createEnsemble(t testing.TB, h *harness, tenant string, body map[string]any) string {
	t.Helper()
	r := h.do(tenant, "POST", "/api/v1/ensemble/create", body)
	expectStatus(t, r, http.StatusCreated)
	id := str(r.json(t), "ensemble_id")
	if !strings.HasPrefix(id, "ens_") {
		t.Fatalf("ensemble_id = %q", id)
	}
	return id
}

func near(t *testing.T, name string, got, want float64) {
	t.Helper()
	if math.Abs(got-want) > 1e-9 {
		t.Errorf("%s = %.12g, want %.12g", name, got, want)
	}
}

func TestEnsembleLifecycle(t *testing.T) {
	h := newHarness(t)
	r := h.do("acme", "POST", "/api/v1/ensemble/create", map[string]any{
		"name": "momentum", "method": "weighted_average",
		"agents": []map[string]any{{"agent_id": "a", "agent_type": "lstm", "initial_weight": 2}},
	})
	expectStatus(t, r, http.StatusCreated)
	e := r.json(t)
	id := str(e, "ensemble_id")
	cfg := e["config"].(map[string]any)
	if num(cfg, "threshold") != 0.1 || num(cfg, "min_agents") != 1 || str(e, "method") != "weighted_average" || len(list(e, "agents")) != 1 {
		t.Errorf("created = %s", r.body)
	}
	base := "/api/v1/ensemble/" + id

	// register-agent: b and c with weight 1; a duplicate is 409.
	for _, a := range []string{"b", "c"} {
		r = h.do("acme", "POST", base+"/register-agent", map[string]any{"agent_id": a, "agent_type": "xgb", "initial_weight": 1})
		expectStatus(t, r, http.StatusCreated)
	}
	r = h.do("acme", "POST", base+"/register-agent", map[string]any{"agent_id": "b", "agent_type": "xgb", "initial_weight": 1})
	expectProblem(t, r, http.StatusConflict, `"b"`)
	r = h.do("acme", "POST", base+"/register-agent", map[string]any{"agent_id": "d", "agent_type": "xgb", "initial_weight": 0})
	expectProblem(t, r, http.StatusBadRequest, "initial_weight")

	// predict: the README example — S = 0.425, buy, confidence 0.55.
	r = h.do("acme", "POST", base+"/predict", map[string]any{"symbol": "BTC-USD", "signals": []map[string]any{
		{"agent_id": "a", "signal": 0.5, "confidence": 0.8},
		{"agent_id": "b", "signal": -0.2, "confidence": 0.5},
		{"agent_id": "c", "signal": 0.9, "confidence": 0.1},
	}})
	expectStatus(t, r, http.StatusCreated)
	p := r.json(t)
	near(t, "signal", num(p, "signal"), 0.425)
	near(t, "confidence", num(p, "confidence"), 0.55)
	if str(p, "action") != "buy" || len(list(p, "contributions")) != 3 {
		t.Errorf("prediction = %s", r.body)
	}
	near(t, "contribution a", num(list(p, "contributions")[0].(map[string]any), "contribution"), 0.25)
	pid := str(p, "prediction_id")

	// predict errors.
	r = h.do("acme", "POST", base+"/predict", map[string]any{"symbol": "BTC-USD", "signals": []map[string]any{{"agent_id": "zz", "signal": 0.5, "confidence": 0.5}}})
	expectProblem(t, r, http.StatusUnprocessableEntity, `"zz"`, "register")
	r = h.do("acme", "POST", base+"/predict", map[string]any{"symbol": "BTC-USD", "signals": []map[string]any{{"agent_id": "a", "signal": 1.5, "confidence": 0.5}}})
	expectProblem(t, r, http.StatusBadRequest, "[-1, 1]")
	r = h.do("acme", "POST", base+"/predict", map[string]any{"symbol": "BTC-USD", "signals": []map[string]any{{"agent_id": "a", "signal": 0.5}}})
	expectProblem(t, r, http.StatusBadRequest, "confidence")
	r = h.do("acme", "POST", base+"/predict", map[string]any{"symbol": "", "signals": []map[string]any{{"agent_id": "a", "signal": 0.5, "confidence": 1}}})
	expectProblem(t, r, http.StatusBadRequest, "symbol")

	// outcomes: once, then 409.
	r = h.do("acme", "POST", base+"/outcomes", map[string]any{"prediction_id": pid, "realized_return": 0.02})
	expectStatus(t, r, http.StatusCreated)
	near(t, "position_return", num(r.json(t), "position_return"), 0.02)
	r = h.do("acme", "POST", base+"/outcomes", map[string]any{"prediction_id": pid, "realized_return": 0.03})
	expectProblem(t, r, http.StatusConflict, "already")
	r = h.do("acme", "POST", base+"/outcomes", map[string]any{"prediction_id": "prd_nope", "realized_return": 0.03})
	expectProblem(t, r, http.StatusNotFound, "prd_nope")
	r = h.do("acme", "POST", base+"/outcomes", map[string]any{"prediction_id": pid})
	expectProblem(t, r, http.StatusBadRequest, "realized_return")

	// A sell that loses: b alone with −0.9 → sell, then r=+0.01.
	r = h.do("acme", "POST", base+"/predict", map[string]any{"symbol": "BTC-USD", "signals": []map[string]any{{"agent_id": "b", "signal": -0.9, "confidence": 1}}})
	expectStatus(t, r, http.StatusCreated)
	p2 := r.json(t)
	if str(p2, "action") != "sell" {
		t.Fatalf("p2 = %s", r.body)
	}
	expectStatus(t, h.do("acme", "POST", base+"/outcomes", map[string]any{"prediction_id": str(p2, "prediction_id"), "realized_return": 0.01}), http.StatusCreated)

	// performance: ensemble x = +0.02, −0.01 → hit 0.5, mean 0.005, stddev 0.015;
	// score (1 + 5) / (2 + 10) = 0.5; shrunk mean 0.01 / 12; no ratio from 2 calls (< 20).
	r = h.do("acme", "GET", base+"/performance", nil)
	expectStatus(t, r, http.StatusOK)
	perf := r.json(t)
	ens := perf["ensemble"].(map[string]any)
	near(t, "scored", num(ens, "scored"), 2)
	near(t, "hit_rate", num(ens, "hit_rate"), 0.5)
	near(t, "mean_return", num(ens, "mean_return"), 0.005)
	near(t, "stddev", num(ens, "stddev"), 0.015)
	near(t, "score", num(ens, "score"), 0.5)
	near(t, "shrunk mean", num(ens, "shrunk_mean_return"), 0.01/12)
	if v, ok := ens["sharpe"]; !ok || v != nil {
		t.Errorf("sharpe = %v (present %v), want null below the minimum sample", v, ok)
	}
	near(t, "lookback", num(perf, "lookback"), 50)
	agents := map[string]map[string]any{}
	for _, a := range list(perf, "agents") {
		m := a.(map[string]any)
		agents[str(m, "agent_id")] = m
	}
	// a: +0.5 on r=+0.02 → 1/1; b: −0.2 on +0.02 and −0.9 on +0.01 → 0/2, mean −0.015.
	near(t, "a hit", num(agents["a"], "hit_rate"), 1)
	near(t, "b hit", num(agents["b"], "hit_rate"), 0)
	near(t, "b mean", num(agents["b"], "mean_return"), -0.015)
	near(t, "c directional", num(agents["c"], "directional"), 1)

	// weights, then optimize: scores a 6/11 (1 of 1), b 5/12 (0 of 2), c 6/11
	// → weights score/0.5: 12/11, 10/12, 12/11 (neutral = 1.0, the default).
	r = h.do("acme", "GET", base+"/weights", nil)
	expectStatus(t, r, http.StatusOK)
	w := list(r.json(t), "weights")
	near(t, "a normalized", num(w[0].(map[string]any), "normalized_weight"), 0.5)
	r = h.do("acme", "POST", base+"/optimize-weights", map[string]any{"lookback": 10})
	expectStatus(t, r, http.StatusOK)
	opt := r.json(t)
	near(t, "predictions_used", num(opt, "predictions_used"), 2)
	changes := list(opt, "weights")
	near(t, "a old", num(changes[0].(map[string]any), "old_weight"), 2)
	near(t, "a new", num(changes[0].(map[string]any), "new_weight"), 12.0/11)
	near(t, "b new", num(changes[1].(map[string]any), "new_weight"), 10.0/12)
	near(t, "c new", num(changes[2].(map[string]any), "new_weight"), 12.0/11)
	r = h.do("acme", "GET", base+"/weights", nil)
	near(t, "c stored", num(list(r.json(t), "weights")[2].(map[string]any), "weight"), 12.0/11)
	// lookback 1 sees only the losing sell: a and c have no data (weight 1), b 0 of 1 → 10/11.
	r = h.do("acme", "POST", base+"/optimize-weights", map[string]any{"lookback": 1})
	expectStatus(t, r, http.StatusOK)
	near(t, "lookback 1 used", num(r.json(t), "predictions_used"), 1)
	r = h.do("acme", "POST", base+"/optimize-weights", map[string]any{"lookback": 0})
	expectProblem(t, r, http.StatusBadRequest, "lookback")
	// An empty body is allowed (default lookback).
	expectStatus(t, h.do("acme", "POST", base+"/optimize-weights", nil), http.StatusOK)

	// agent-rankings: a (1 hit of 1) above c (1 of 1, lower return) above b.
	r = h.do("acme", "GET", "/api/v1/ensemble/agent-rankings", nil)
	expectStatus(t, r, http.StatusOK)
	ranks := list(r.json(t), "agents")
	if len(ranks) != 3 {
		t.Fatalf("rankings = %s", r.body)
	}
	var order []string
	for _, x := range ranks {
		order = append(order, str(x.(map[string]any), "agent_id"))
	}
	if strings.Join(order, ",") != "a,c,b" {
		t.Errorf("ranking order = %v; body %s", order, r.body)
	}
}

func TestMinAgents(t *testing.T) {
	h := newHarness(t)
	id := createEnsemble(t, h, "acme", map[string]any{"name": "quorum", "method": "majority", "config": map[string]any{"min_agents": 2, "threshold": 0.3},
		"agents": []map[string]any{{"agent_id": "a", "agent_type": "t"}, {"agent_id": "b", "agent_type": "t"}}})
	r := h.do("acme", "POST", "/api/v1/ensemble/"+id+"/predict", map[string]any{"symbol": "ETH", "signals": []map[string]any{{"agent_id": "a", "signal": 1, "confidence": 1}}})
	expectProblem(t, r, http.StatusUnprocessableEntity, "at least 2")
	r = h.do("acme", "POST", "/api/v1/ensemble/"+id+"/predict", map[string]any{"symbol": "ETH", "signals": []map[string]any{{"agent_id": "a", "signal": 1, "confidence": 1}, {"agent_id": "a", "signal": 1, "confidence": 1}}})
	expectProblem(t, r, http.StatusUnprocessableEntity, "already")
	// majority 1 vs 1 → 0, hold.
	r = h.do("acme", "POST", "/api/v1/ensemble/"+id+"/predict", map[string]any{"symbol": "ETH", "signals": []map[string]any{{"agent_id": "a", "signal": 0.4, "confidence": 1}, {"agent_id": "b", "signal": -0.2, "confidence": 1}}})
	expectStatus(t, r, http.StatusCreated)
	if str(r.json(t), "action") != "hold" {
		t.Errorf("tie = %s", r.body)
	}
}

func TestCreateValidation(t *testing.T) {
	h := newHarness(t)
	cases := []struct {
		body   string
		status int
		words  []string
	}{
		{`{"name":"x","method":"vote"}`, 400, []string{"method", "weighted_average"}},
		{`{"name":"","method":"majority"}`, 400, []string{"name"}},
		{`{"name":"x","method":"majority","config":{"threshold":0}}`, 400, []string{"threshold"}},
		{`{"name":"x","method":"majority","config":{"min_agents":0}}`, 400, []string{"min_agents"}},
		{`{"name":"x","method":"majority","tresholds":1}`, 400, []string{`"tresholds"`}},
		{`{"name":"x","method":"majority","config":{"treshold":0.2}}`, 400, []string{`"treshold"`}},
		{`{"name":"x","method":"majority","agents":[{"agent_id":"a","agent_type":"t","weight":2}]}`, 400, []string{`"weight"`}},
		{`{"name":"x","method":"majority","agents":[{"agent_id":"a","agent_type":"t"},{"agent_id":"a","agent_type":"t"}]}`, 409, []string{`"a"`}},
		{`{"name":"x","method":"majority","agents":[{"agent_id":"a b","agent_type":"t"}]}`, 400, []string{"agent_id"}},
		{`{"name":5}`, 400, []string{`"name"`, "string"}},
		{`{"name":"x",`, 400, []string{"JSON"}},
		{`[]`, 400, []string{"object"}},
		{``, 400, []string{"empty"}},
		{`{"name":"x","method":"majority"} {}`, 400, []string{"after"}},
	}
	for _, tc := range cases {
		r := h.do("acme", "POST", "/api/v1/ensemble/create", tc.body)
		expectProblem(t, r, tc.status, tc.words...)
	}
	big := `{"name":"` + strings.Repeat("x", 70<<10) + `","method":"majority"}`
	expectProblem(t, h.do("acme", "POST", "/api/v1/ensemble/create", big), http.StatusRequestEntityTooLarge, "bytes")
}

func TestListEnsemblesPaginates(t *testing.T) {
	h := newHarness(t)
	var want []string
	for i := 0; i < 7; i++ {
		want = append(want, createEnsemble(t, h, "acme", map[string]any{"name": fmt.Sprintf("e%d", i), "method": "majority"}))
	}
	var got []string
	cursor := ""
	pages := 0
	for {
		target := "/api/v1/ensemble/?limit=3"
		if cursor != "" {
			target += "&cursor=" + cursor
		}
		r := h.do("acme", "GET", target, nil)
		expectStatus(t, r, http.StatusOK)
		m := r.json(t)
		for _, it := range list(m, "items") {
			got = append(got, str(it.(map[string]any), "ensemble_id"))
		}
		pages++
		cursor = str(m, "next_cursor")
		if cursor == "" {
			break
		}
	}
	if pages != 3 || strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("pages %d, got %v, want %v", pages, got, want)
	}
	r := h.do("acme", "GET", "/api/v1/ensemble/", nil)
	if n := len(list(r.json(t), "items")); n != 7 {
		t.Errorf("default page has %d items", n)
	}
	expectProblem(t, h.do("acme", "GET", "/api/v1/ensemble/?limit=101", nil), 400, "limit", "100")
	expectProblem(t, h.do("acme", "GET", "/api/v1/ensemble/?cursor=zzz", nil), 400, "cursor")
	// /api/v1/ensemble/ is exact: a deeper unknown path is 404, not the list.
	expectStatus(t, h.do("acme", "GET", "/api/v1/ensemble/x/y/z", nil), http.StatusNotFound)
}

// Another tenant's ids answer 404 (never 403) on every endpoint that takes
// one, and its lists never show them.
func TestTenantIsolation(t *testing.T) {
	h := newHarness(t)
	id := createEnsemble(t, h, "acme", map[string]any{"name": "secret", "method": "weighted_average",
		"agents": []map[string]any{{"agent_id": "alpha", "agent_type": "t"}}})
	base := "/api/v1/ensemble/" + id
	r := h.do("acme", "POST", base+"/predict", map[string]any{"symbol": "BTC", "signals": []map[string]any{{"agent_id": "alpha", "signal": 1, "confidence": 1}}})
	expectStatus(t, r, http.StatusCreated)
	pid := str(r.json(t), "prediction_id")
	expectStatus(t, h.do("acme", "POST", base+"/outcomes", map[string]any{"prediction_id": pid, "realized_return": 0.01}), http.StatusCreated)

	calls := []struct {
		method, path string
		body         any
	}{
		{"POST", base + "/register-agent", map[string]any{"agent_id": "x", "agent_type": "t", "initial_weight": 1}},
		{"POST", base + "/predict", map[string]any{"symbol": "BTC", "signals": []map[string]any{{"agent_id": "alpha", "signal": 1, "confidence": 1}}}},
		{"POST", base + "/outcomes", map[string]any{"prediction_id": pid, "realized_return": 0.01}},
		{"GET", base + "/performance", nil},
		{"GET", base + "/weights", nil},
		{"POST", base + "/optimize-weights", map[string]any{"lookback": 5}},
	}
	for _, c := range calls {
		r := h.do("globex", c.method, c.path, c.body)
		expectProblem(t, r, http.StatusNotFound, id)
		if strings.Contains(string(r.body), "secret") || strings.Contains(string(r.body), "alpha") {
			t.Errorf("%s %s leaks acme data: %s", c.method, c.path, r.body)
		}
	}
	// acme's prediction id against globex's own ensemble: 404 too.
	gid := createEnsemble(t, h, "globex", map[string]any{"name": "mine", "method": "majority"})
	expectProblem(t, h.do("globex", "POST", "/api/v1/ensemble/"+gid+"/outcomes", map[string]any{"prediction_id": pid, "realized_return": 0.5}), http.StatusNotFound, pid)

	r = h.do("globex", "GET", "/api/v1/ensemble/", nil)
	items := list(r.json(t), "items")
	if len(items) != 1 || str(items[0].(map[string]any), "ensemble_id") != gid {
		t.Errorf("globex list = %s", r.body)
	}
	r = h.do("globex", "GET", "/api/v1/ensemble/agent-rankings", nil)
	if len(list(r.json(t), "agents")) != 0 {
		t.Errorf("globex rankings = %s", r.body)
	}
	// And acme's data is untouched by globex's attempts.
	r = h.do("acme", "GET", base+"/weights", nil)
	if n := len(list(r.json(t), "weights")); n != 1 {
		t.Errorf("acme agents after globex attempts: %d", n)
	}
}
