package api_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/backend/api"
	"github.com/tenantgate/tenantgate/backend/store"
	"github.com/tenantgate/tenantgate/module/assertion"
)

func TestValidationEdges(t *testing.T) {
	h := newHarness(t)
	agents := make([]map[string]any, api.MaxAgents+1)
	for i := range agents {
		agents[i] = map[string]any{"agent_id": fmt.Sprintf("a%d", i), "agent_type": "t"}
	}
	expectProblem(t, h.do("acme", "POST", "/api/v1/ensemble/create", map[string]any{"name": "n", "method": "majority", "agents": agents}), 400, "at most 100 agents")
	expectProblem(t, h.do("acme", "POST", "/api/v1/ensemble/create", map[string]any{"name": "n", "method": "majority",
		"agents": []map[string]any{{"agent_id": "a", "agent_type": "has space"}}}), 400, "agents[0].agent_type", "has space")

	id := createEnsemble(t, h, "acme", map[string]any{"name": "n", "method": "majority", "agents": []map[string]any{{"agent_id": "a", "agent_type": "t"}}})
	base := "/api/v1/ensemble/" + id
	expectProblem(t, h.do("acme", "POST", base+"/register-agent", map[string]any{"agent_id": "b", "agent_type": ""}), 400, "agent_type")
	expectProblem(t, h.do("acme", "POST", base+"/predict", map[string]any{"symbol": "BTC", "signals": []any{}}), 400, "signals must hold 1 to 1000")
	expectProblem(t, h.do("acme", "POST", base+"/outcomes", map[string]any{"realized_return": 0.1}), 400, "prediction_id is required")

	for _, key := range []string{strings.Repeat("k", 256), "tab\there", "é"} {
		expectProblem(t, h.do("acme", "POST", "/api/v1/hedging/execute", nil, api.IdempotencyKeyHeader, key), 400, "Idempotency-Key")
	}
	expectProblem(t, h.do("acme", "POST", "/api/v1/hedging/execute", map[string]any{"tolerance": 0.9}, api.IdempotencyKeyHeader, "k1"), 400, "tolerance")
	expectProblem(t, h.do("acme", "POST", "/api/v1/hedging/execute", map[string]any{"orders": []any{}}, api.IdempotencyKeyHeader, "k2"), 400, "1 to 100")
	// A failed request leaves its key free: the same key works for a valid body.
	r := h.do("acme", "POST", "/api/v1/hedging/execute", map[string]any{"tolerance": 0.1}, api.IdempotencyKeyHeader, "k1")
	expectStatus(t, r, http.StatusOK)
	if pol := r.json(t)["policy"].(map[string]any); num(pol, "tolerance") != 0.1 || num(pol, "target_ratio") != 1 {
		t.Errorf("policy = %v", pol)
	}
	expectProblem(t, h.do("acme", "GET", "/api/v1/ensemble/agent-rankings?limit=0", nil), 400, "limit")
	expectProblem(t, h.do("acme", "GET", "/api/v1/ensemble/?limit=101", nil), 400, "limit")
}

// Rankings are per ensemble agent: "shared" in three ensembles is three
// rows, each scored only on its own ensemble's calls; the shrunk score puts
// a record above no record, ties keep (ensemble, agent) order, and limit
// cuts the list.
func TestRankingsPerEnsembleAgent(t *testing.T) {
	h := newHarness(t)
	e1 := createEnsemble(t, h, "acme", map[string]any{"name": "one", "method": "majority",
		"agents": []map[string]any{{"agent_id": "shared", "agent_type": "tech"}, {"agent_id": "quiet", "agent_type": "t"}}})
	e2 := createEnsemble(t, h, "acme", map[string]any{"name": "two", "method": "majority",
		"agents": []map[string]any{{"agent_id": "shared", "agent_type": "macro"}, {"agent_id": "zz", "agent_type": "t"}}})
	createEnsemble(t, h, "acme", map[string]any{"name": "three", "method": "majority",
		"agents": []map[string]any{{"agent_id": "shared", "agent_type": "tech"}}})
	// shared and zz call one right in e2; shared is wrong once in e1.
	call := func(e string, ret float64, signals ...map[string]any) {
		r := h.do("acme", "POST", "/api/v1/ensemble/"+e+"/predict", map[string]any{"symbol": "BTC", "signals": signals})
		expectStatus(t, r, http.StatusCreated)
		expectStatus(t, h.do("acme", "POST", "/api/v1/ensemble/"+e+"/outcomes", map[string]any{"prediction_id": str(r.json(t), "prediction_id"), "realized_return": ret}), 201)
	}
	call(e2, 0.02, map[string]any{"agent_id": "shared", "signal": 0.5, "confidence": 1}, map[string]any{"agent_id": "zz", "signal": 0.5, "confidence": 1})
	call(e1, -0.02, map[string]any{"agent_id": "shared", "signal": 0.5, "confidence": 1})

	r := h.do("acme", "GET", "/api/v1/ensemble/agent-rankings", nil)
	expectStatus(t, r, http.StatusOK)
	ranked := list(r.json(t), "agents")
	var order []string
	for _, a := range ranked {
		m := a.(map[string]any)
		order = append(order, str(m, "agent_id")+"@"+map[string]string{e1: "e1", e2: "e2"}[str(m, "ensemble_id")])
	}
	// Scores: e2's shared and zz 6/11; no record 0.5 (quiet@e1, shared@e3);
	// e1's shared, one wrong call, 5/11. Ties: shrunk mean, then (ensemble_id, agent_id).
	if len(order) != 5 || order[0] != "shared@e2" && order[0] != "zz@e2" || order[4] != "shared@e1" {
		t.Fatalf("order = %v; %s", order, r.body)
	}
	top := ranked[0].(map[string]any)
	near(t, "top score", num(top, "score"), 6.0/11)
	if num(top, "rank") != 1 || num(top, "directional") != 1 || top["sharpe"] != nil {
		t.Errorf("top = %v", top)
	}
	r = h.do("acme", "GET", "/api/v1/ensemble/agent-rankings?limit=1", nil)
	if got := list(r.json(t), "agents"); len(got) != 1 || str(got[0].(map[string]any), "ensemble_id") != e2 {
		t.Errorf("limit=1: %s", r.body)
	}
	expectProblem(t, h.do("acme", "GET", "/api/v1/ensemble/agent-rankings?lookback=1001", nil), 400, "lookback")
}

// The mux's redirects to the canonical path pass through, with the
// request id header.
func TestMuxRedirectsPassThrough(t *testing.T) {
	h := newHarness(t)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := client.Get(h.srv.URL + "/api/v1/ensemble")
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if res.StatusCode/100 != 3 || res.Header.Get("Location") != "/api/v1/ensemble/" || res.Header.Get("X-Request-ID") == "" {
		t.Errorf("GET /api/v1/ensemble: %d Location %q X-Request-ID %q", res.StatusCode, res.Header.Get("Location"), res.Header.Get("X-Request-ID"))
	}
}

// X-Request-ID is echoed only if it is short and printable; otherwise the
// backend makes one up.
func TestRequestIDHeader(t *testing.T) {
	h := newHarness(t)
	for in, keep := range map[string]bool{"gate-req-1": true, "has space": false, strings.Repeat("x", 129): false, "": false} {
		r := h.raw("GET", "/healthz", nil, map[string]string{"X-Request-ID": in})
		got := r.header.Get("X-Request-ID")
		if keep && got != in {
			t.Errorf("%q: X-Request-ID = %q, want it echoed", in, got)
		}
		if !keep && !strings.HasPrefix(got, "req_") {
			t.Errorf("%q: X-Request-ID = %q, want a fresh req_ id", in, got)
		}
	}
	// A 401 carries the request id too.
	p := expectProblem(t, h.raw("GET", "/api/v1/whoami", nil, map[string]string{"X-Request-ID": "gate-req-2"}), 401)
	if str(p, "request_id") != "gate-req-2" {
		t.Errorf("problem request_id = %v", p["request_id"])
	}
}

// An assertion without roles is a user without roles.
func TestWhoamiWithoutRoles(t *testing.T) {
	h := newHarness(t)
	c := h.claims("acme", "GET", "/api/v1/whoami")
	c.Roles = nil
	r := h.raw("GET", "/api/v1/whoami", nil, map[string]string{assertion.Header: h.sign(c), "X-Request-ID": "from-gate"})
	expectStatus(t, r, http.StatusOK)
	m := r.json(t)
	if roles, ok := m["roles"].([]any); !ok || len(roles) != 0 {
		t.Errorf("roles = %v, want []", m["roles"])
	}
	if str(m, "request_id") != c.ID {
		t.Errorf("request_id = %q, want the jti %q", str(m, "request_id"), c.ID)
	}
}

// Without a jti an assertion could not be used once only: missing or
// longer than 128 characters is 401.
func TestAssertionNeedsAJTI(t *testing.T) {
	h := newHarness(t)
	for _, id := range []string{"", strings.Repeat("j", 129)} {
		c := h.claims("acme", "GET", "/api/v1/whoami")
		c.ID = id
		r := h.raw("GET", "/api/v1/whoami", nil, map[string]string{assertion.Header: h.sign(c)})
		expectProblem(t, r, http.StatusUnauthorized, "jti")
	}
	c := h.claims("acme", "GET", "/api/v1/whoami")
	c.ID = strings.Repeat("j", 128)
	expectStatus(t, h.raw("GET", "/api/v1/whoami", nil, map[string]string{assertion.Header: h.sign(c)}), http.StatusOK)
}

// RequireAssertion works on its own (without the Server's logging), with
// the real clock when now is nil.
func TestRequireAssertionStandalone(t *testing.T) {
	h := newHarness(t)
	pub := h.key.Public()
	v, err := assertion.NewEd25519Verifier(pub.(ed25519.PublicKey), assertion.DefaultAudience)
	if err != nil {
		t.Fatal(err)
	}
	v.Issuer = assertion.DefaultIssuer
	var got api.Principal
	mw := api.RequireAssertion(v, nil)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, _ = api.PrincipalFrom(r.Context())
		w.WriteHeader(http.StatusNoContent)
	}))
	req := httptest.NewRequest("POST", "/anything", nil)
	c := h.claims("globex", "POST", "/anything")
	c.ID = "jti-1"
	req.Header.Set(assertion.Header, h.sign(c))
	rec := httptest.NewRecorder()
	mw.ServeHTTP(rec, req)
	if rec.Code != http.StatusNoContent || got.Tenant != store.MustTenantID("globex") || got.RequestID != "jti-1" || got.UserID != "user-globex" {
		t.Errorf("status %d, principal %+v", rec.Code, got)
	}
	// An assertion from the past (beyond leeway) is refused with the real clock.
	old := h.claims("globex", "POST", "/anything")
	old.IssuedAt = time.Now().Add(-10 * time.Minute)
	old.Expiry = old.IssuedAt.Add(30 * time.Second)
	req = httptest.NewRequest("POST", "/anything", nil)
	req.Header.Set(assertion.Header, h.sign(old))
	rec = httptest.NewRecorder()
	mw.ServeHTTP(rec, req)
	if rec.Code != http.StatusUnauthorized {
		t.Errorf("expired assertion: %d", rec.Code)
	}
	if _, ok := api.PrincipalFrom(context.Background()); ok {
		t.Error("a principal in an empty context")
	}
}

func TestRouteString(t *testing.T) {
	want := map[string]string{
		"GET /healthz":                 "GET /healthz public",
		"GET /api/v1/whoami":           "GET /api/v1/whoami authenticated",
		"GET /api/v1/ensemble/{$}":     "GET /api/v1/ensemble/ roles ensemble:read ensemble:write",
		"POST /api/v1/hedging/execute": "POST /api/v1/hedging/execute roles hedging:trade hedging:admin",
	}
	seen := 0
	for _, r := range api.Routes() {
		if w, ok := want[r.Method+" "+r.Pattern]; ok {
			seen++
			if r.String() != w {
				t.Errorf("%s %s: String() = %q, want %q", r.Method, r.Pattern, r.String(), w)
			}
		}
	}
	if seen != len(want) {
		t.Errorf("found %d of %d routes", seen, len(want))
	}
	// Routes returns a copy.
	rs := api.Routes()
	rs[0].Pattern = "/changed"
	if api.Routes()[0].Pattern == "/changed" {
		t.Error("Routes exposes the table")
	}
}
