package api_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/backend/api"
	"github.com/tenantgate/tenantgate/backend/hedging"
	"github.com/tenantgate/tenantgate/backend/store"
	"github.com/tenantgate/tenantgate/module/assertion"
)

// riskLimits are small on purpose so every bound is easy to reach:
// 5 units per order, 240 000 USD per order (4 BTC at 60 000), 600 000 USD
// per position (10 BTC).
var riskLimits = hedging.Limits{MaxOrderQty: 5, MaxOrderNotionalUSD: 240000, MaxPositionNotionalUSD: 600000, MaxCashUSD: 1e12, MaxSpotQty: 1e9}

// newRiskHarness gives tenant "risk" spot BTC 20, cash 1 000 000, tenant
// "poor" spot BTC 20, cash 100, and tenant "hedge" spot BTC 2, cash
// 1 000 000, all under riskLimits.
func newRiskHarness(t *testing.T) *harness {
	t.Helper()
	h := newHarnessWith(t, func(c *api.Config) {
		c.Limits = &hedging.LimitsTable{Default: hedging.DefaultLimits, Tenants: map[string]hedging.Limits{"risk": riskLimits, "poor": riskLimits}}
	})
	for name, a := range map[string][2]float64{"risk": {20, 1e6}, "poor": {20, 100}, "hedge": {2, 1e6}} {
		if _, err := h.store.SeedAccount(context.Background(), store.MustTenantID(name),
			hedging.Account{Spot: map[string]float64{"BTC": a[0]}, Perp: map[string]float64{}, CashUSD: a[1]}, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

// account reads the tenant's account as the analysis shows it.
func account(t *testing.T, h *harness, tenant string) string {
	t.Helper()
	r := h.do(tenant, "GET", "/api/v1/hedging/analysis", nil)
	expectStatus(t, r, http.StatusOK)
	return fmt.Sprint(r.json(t)["account"])
}

type orderCase struct {
	name   string
	tenant string
	body   string
	status int
	words  []string
}

// Every bound of an execute, at and just over it, and the values no order
// may carry. A refused order changes nothing (the account read before and
// after is the same); an accepted one trades. The cases run in order on
// one account: "risk" starts with spot 20 BTC and no short.
func TestExecuteBoundsTable(t *testing.T) {
	h := newRiskHarness(t)
	order := func(asset, side string, qty string) string {
		return `{"orders":[{"asset":"` + asset + `","side":"` + side + `","quantity":` + qty + `}]}`
	}
	for i, tc := range []orderCase{
		{"quantity NaN (not JSON)", "risk", order("BTC", "sell", "NaN"), 400, []string{"not valid JSON"}},
		{"quantity Infinity (not JSON)", "risk", order("BTC", "sell", "Infinity"), 400, []string{"not valid JSON"}},
		{"quantity 1e400 (overflows float64)", "risk", order("BTC", "sell", "1e400"), 400, []string{"quantity"}},
		{"quantity as a string", "risk", order("BTC", "sell", `"1"`), 400, []string{"quantity"}},
		{"quantity 1.5e300", "risk", order("BTC", "sell", "1.5e300"), 422, []string{"risk-limit", "5 units"}},
		{"quantity 1e12", "risk", order("BTC", "sell", "1e12"), 422, []string{"risk-limit"}},
		{"quantity negative", "risk", order("BTC", "sell", "-1"), 422, []string{"invalid-order", "> 0"}},
		{"quantity zero", "risk", order("BTC", "sell", "0"), 422, []string{"invalid-order", "> 0"}},
		{"quantity below 8 decimals", "risk", order("BTC", "sell", "0.000000001"), 422, []string{"invalid-order"}},
		{"quantity just over the order limit", "risk", order("BTC", "sell", "5.00000001"), 422, []string{"risk-limit", "5 units"}},
		{"quantity at its limit, notional over its limit (5 BTC = 300 000 USD)", "risk", order("BTC", "sell", "5"), 422, []string{"risk-limit", "240000.00 USD per order"}},
		{"notional just over its limit", "risk", order("BTC", "sell", "4.00000001"), 422, []string{"risk-limit", "per order"}},
		{"notional at its limit (4 BTC = 240 000 USD)", "risk", order("BTC", "sell", "4"), 200, nil},
		{"a sell on an asset without spot opens a naked short", "risk", order("SOL", "sell", "1"), 422, []string{"naked short", "no SOL spot"}},
		{"an unpriced asset", "risk", order("DOGE", "sell", "1"), 422, []string{"invalid-order", "not traded"}},
		{"a bad side", "risk", order("BTC", "short", "1"), 422, []string{"invalid-order", "side"}},
		{"short 8", "risk", order("BTC", "sell", "4"), 200, nil},
		{"short 10: position 600 000 USD, at its limit", "risk", order("BTC", "sell", "2"), 200, nil},
		{"position just over its limit", "risk", order("BTC", "sell", "0.01"), 422, []string{"risk-limit", "position", "600000.00"}},
		{"a buy that reduces the short is always allowed", "risk", order("BTC", "buy", "5"), 200, nil},
		{"a buy past flat would go long", "risk", order("BTC", "buy", "5.00000001"), 422, []string{"long perpetual"}},
		{"a hedge at spot × (1 + tolerance): 2.1 on 2 BTC", "hedge", order("BTC", "sell", "2.1"), 200, nil},
		{"a hedge just past spot × (1 + tolerance)", "hedge", order("BTC", "sell", "0.00000001"), 422, []string{"exceed the spot", "tolerance"}},
		{"fees larger than the cash", "poor", order("BTC", "sell", "4"), 422, []string{"risk-limit", "fee of 120.00 USD exceeds the cash"}},
		{"fees equal to the cash: 100 USD for 3.33333333 BTC", "poor", order("BTC", "sell", "3.33333333"), 200, nil},
		{"any fee with no cash left", "poor", order("BTC", "sell", "0.001"), 422, []string{"exceeds the cash"}},
		{"duplicate key in an order", "risk", `{"orders":[{"asset":"BTC","side":"sell","quantity":1,"quantity":1e300}]}`, 400, []string{`"quantity" twice`}},
		{"orders and a policy together", "risk", `{"orders":[{"asset":"BTC","side":"sell","quantity":1}],"target_ratio":1}`, 400, []string{"either orders"}},
		{"policy out of range", "risk", `{"target_ratio":1.5}`, 400, []string{"target_ratio"}},
		{"tolerance NaN-like string", "risk", `{"tolerance":"NaN"}`, 400, []string{"tolerance"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := account(t, h, tc.tenant)
			r := h.do(tc.tenant, "POST", "/api/v1/hedging/execute", tc.body, api.IdempotencyKeyHeader, fmt.Sprintf("k%d", i))
			after := account(t, h, tc.tenant)
			if tc.status != http.StatusOK {
				checkProblem(t, r, tc.status, tc.words)
				if after != before {
					t.Errorf("refused order changed the account:\nbefore %s\nafter  %s", before, after)
				}
				return
			}
			expectStatus(t, r, http.StatusOK)
			if after == before {
				t.Errorf("accepted order did not trade: %s", r.body)
			}
		})
	}
}

// The sequence: the 1.5e300 sell used to return 200 and break every
// later analysis of the tenant (500, json: unsupported value: +Inf). Now it
// is refused and the analysis stays 200 with finite numbers.
func TestHugeOrderLeavesAnalysisAnswerable(t *testing.T) {
	h := newHarness(t)
	before := account(t, h, "acme")
	r := h.do("acme", "POST", "/api/v1/hedging/execute", `{"orders":[{"asset":"BTC","side":"sell","quantity":1.5e300}]}`, api.IdempotencyKeyHeader, "huge")
	checkProblem(t, r, http.StatusUnprocessableEntity, []string{"risk-limit"})
	r = h.do("acme", "GET", "/api/v1/hedging/analysis", nil)
	expectStatus(t, r, http.StatusOK)
	if strings.Contains(string(r.body), "Inf") || strings.Contains(string(r.body), "NaN") {
		t.Errorf("analysis holds non-finite numbers: %s", r.body)
	}
	totals := r.json(t)["totals"].(map[string]any)
	for k, v := range totals {
		if f := v.(float64); math.IsInf(f, 0) || math.Abs(f) > 1e15 {
			t.Errorf("totals.%s = %v", k, f)
		}
	}
	if after := account(t, h, "acme"); after != before {
		t.Errorf("account changed: %s -> %s", before, after)
	}
	// close still works and reports what it did.
	r = h.do("acme", "POST", "/api/v1/hedging/close", nil)
	expectStatus(t, r, http.StatusOK)
	if m := r.json(t); str(m, "status") != "closed" || !strings.HasPrefix(str(m, "execution_id"), "exe_") {
		t.Errorf("close = %s", r.body)
	}
}

// The ensemble endpoints: each refused write leaves the tenant's ensembles
// and weights as they were.
func TestEnsembleBadInputTable(t *testing.T) {
	h := newHarness(t)
	id := createEnsemble(t, h, "acme", map[string]any{"name": "n", "method": "majority",
		"agents": []map[string]any{{"agent_id": "a", "agent_type": "t"}, {"agent_id": "b", "agent_type": "t"}}})
	state := func() string {
		r := h.do("acme", "GET", "/api/v1/ensemble/?limit=100", nil)
		expectStatus(t, r, http.StatusOK)
		return string(r.body)
	}
	agent := func(w string) string { return `{"agent_id":"x","agent_type":"t","initial_weight":` + w + `}` }
	create := func(name string) string { return `{"name":` + name + `,"method":"majority"}` }
	name100 := `"` + strings.Repeat("é", 100) + `"` // 100 characters, 200 bytes
	name101 := `"` + strings.Repeat("é", 101) + `"`
	for _, tc := range []struct {
		name, path, contentType, body string
		status                        int
		words                         []string
	}{
		{"name of 101 characters", "/api/v1/ensemble/create", "", create(name101), 400, []string{"1 to 100 characters, has 101"}},
		{"name with \\u0000", "/api/v1/ensemble/create", "", create(`"a\u0000b"`), 400, []string{"NUL"}},
		{"name with a lone high surrogate", "/api/v1/ensemble/create", "", create(`"a\ud800b"`), 400, []string{"lone UTF-16 surrogate"}},
		{"name with a lone low surrogate", "/api/v1/ensemble/create", "", create(`"\udc00"`), 400, []string{"lone UTF-16 surrogate"}},
		{"name with invalid UTF-8", "/api/v1/ensemble/create", "", create("\"a\xff\xfeb\""), 400, []string{"not valid UTF-8"}},
		{"name with a control character", "/api/v1/ensemble/create", "", create(`"a\u001bb"`), 400, []string{"control character"}},
		{"empty name", "/api/v1/ensemble/create", "", create(`"  "`), 400, []string{"name"}},
		{"duplicate key (last would win)", "/api/v1/ensemble/create", "", `{"name":"a","name":"b","method":"majority"}`, 400, []string{`"name" twice`}},
		{"duplicate key in a nested object", "/api/v1/ensemble/create", "", `{"name":"a","method":"majority","config":{"threshold":0.1,"threshold":0.2}}`, 400, []string{`"threshold" twice`}},
		{"text/plain", "/api/v1/ensemble/create", "text/plain", create(`"a"`), 415, []string{"Content-Type"}},
		{"application/xml", "/api/v1/ensemble/create", "application/xml", `<e name="a"/>`, 415, []string{"Content-Type"}},
		{"multipart", "/api/v1/ensemble/create", "multipart/form-data; boundary=x", "--x--", 415, []string{"Content-Type"}},
		{"no Content-Type", "/api/v1/ensemble/create", "-", create(`"a"`), 415, []string{"Content-Type"}},
		{"min_agents above the agents", "/api/v1/ensemble/create", "", `{"name":"a","method":"majority","agents":[{"agent_id":"a","agent_type":"t"}],"config":{"min_agents":2}}`, 422, []string{"could never predict"}},
		{"min_agents 2 without agents", "/api/v1/ensemble/create", "", `{"name":"a","method":"majority","config":{"min_agents":2}}`, 422, []string{"min_agents"}},
		{"threshold 1e300", "/api/v1/ensemble/create", "", `{"name":"a","method":"majority","config":{"threshold":1e300}}`, 400, []string{"threshold"}},
		{"weight zero", "/api/v1/ensemble/" + id + "/register-agent", "", agent("0"), 400, []string{"initial_weight"}},
		{"weight negative", "/api/v1/ensemble/" + id + "/register-agent", "", agent("-1"), 400, []string{"initial_weight"}},
		{"weight just over 1e6", "/api/v1/ensemble/" + id + "/register-agent", "", agent("1000000.0001"), 400, []string{"initial_weight"}},
		{"weight 1e300", "/api/v1/ensemble/" + id + "/register-agent", "", agent("1e300"), 400, []string{"initial_weight"}},
		{"outcome 1e300", "/api/v1/ensemble/" + id + "/outcomes", "", `{"prediction_id":"prd_x","realized_return":1e300}`, 400, []string{"realized_return"}},
		{"outcome just over 100", "/api/v1/ensemble/" + id + "/outcomes", "", `{"prediction_id":"prd_x","realized_return":100.0001}`, 400, []string{"realized_return"}},
		{"signal just over 1", "/api/v1/ensemble/" + id + "/predict", "", `{"symbol":"BTC","signals":[{"agent_id":"a","signal":1.0000001,"confidence":1}]}`, 400, []string{"[-1, 1]"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := state()
			hdr := map[string]string{assertion.Header: h.sign(h.claims("acme", "POST", tc.path))}
			switch tc.contentType {
			case "":
				hdr["Content-Type"] = "application/json"
			case "-":
			default:
				hdr["Content-Type"] = tc.contentType
			}
			r := h.raw("POST", tc.path, []byte(tc.body), hdr)
			checkProblem(t, r, tc.status, tc.words)
			if after := state(); after != before {
				t.Errorf("refused write changed the ensembles:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
	// At the bounds: 100 characters (200 bytes) and weight 1e6 pass; a
	// +json media type with parameters passes.
	r := h.raw("POST", "/api/v1/ensemble/create", []byte(create(name100)), map[string]string{
		assertion.Header: h.sign(h.claims("acme", "POST", "/api/v1/ensemble/create")), "Content-Type": "application/vnd.tenantgate+json; charset=utf-8"})
	expectStatus(t, r, http.StatusCreated)
	expectStatus(t, h.do("acme", "POST", "/api/v1/ensemble/"+id+"/register-agent", agent("1e6")), http.StatusCreated)
	// min_agents equal to the agents passes.
	expectStatus(t, h.do("acme", "POST", "/api/v1/ensemble/create", `{"name":"a","method":"majority","agents":[{"agent_id":"a","agent_type":"t"},{"agent_id":"b","agent_type":"t"}],"config":{"min_agents":2}}`), http.StatusCreated)
}

// register-agent stops at MaxAgents and changes nothing when it does.
func TestAgentCap(t *testing.T) {
	h := newHarness(t)
	agents := make([]map[string]any, api.MaxAgents)
	for i := range agents {
		agents[i] = map[string]any{"agent_id": fmt.Sprintf("a%d", i), "agent_type": "t"}
	}
	id := createEnsemble(t, h, "acme", map[string]any{"name": "full", "method": "majority", "agents": agents})
	r := h.do("acme", "POST", "/api/v1/ensemble/"+id+"/register-agent", map[string]any{"agent_id": "one-more", "agent_type": "t"})
	checkProblem(t, r, http.StatusUnprocessableEntity, []string{"too-many-agents", "100 agents"})
	r = h.do("acme", "GET", "/api/v1/ensemble/"+id+"/weights", nil)
	if n := len(list(r.json(t), "weights")); n != api.MaxAgents {
		t.Errorf("%d agents after a refused register", n)
	}
}

// The backend checks the route's roles itself, from the assertion.
func TestBackendEnforcesRoles(t *testing.T) {
	h := newHarness(t)
	as := func(roles []string, method, path, body string) response {
		c := h.claims("acme", method, path)
		c.Roles = roles
		hdr := map[string]string{assertion.Header: h.sign(c), "X-User-Roles": "hedging:admin,ensemble:write", api.IdempotencyKeyHeader: "roles"}
		if body != "" {
			hdr["Content-Type"] = "application/json"
		}
		return h.raw(method, path, []byte(body), hdr)
	}
	before := account(t, h, "acme")
	for _, tc := range []struct {
		roles        []string
		method, path string
		body         string
		status       int
	}{
		{nil, "POST", "/api/v1/hedging/close", "", 403},
		{[]string{"hedging:trade"}, "POST", "/api/v1/hedging/close", "", 403},
		{[]string{"hedging:read"}, "POST", "/api/v1/hedging/execute", "", 403},
		{[]string{"ensemble:read"}, "POST", "/api/v1/ensemble/create", `{"name":"n","method":"majority"}`, 403},
		{[]string{"hedging:admin"}, "GET", "/api/v1/ensemble/", "", 403},
		{[]string{"ensemble:read"}, "GET", "/api/v1/ensemble/", "", 200},
		{[]string{"hedging:read"}, "GET", "/api/v1/hedging/analysis", "", 200},
		{nil, "GET", "/api/v1/whoami", "", 200},
	} {
		r := as(tc.roles, tc.method, tc.path, tc.body)
		if tc.status == 403 {
			p := expectProblem(t, r, 403, "needs one of the roles")
			if str(p, "type") != api.ProblemTypePrefix+"missing_role" {
				t.Errorf("%s %s: type %v", tc.method, tc.path, p["type"])
			}
			continue
		}
		expectStatus(t, r, tc.status)
	}
	if after := account(t, h, "acme"); after != before {
		t.Errorf("a refused role traded")
	}
}

// An expired Idempotency-Key is a fresh key: with a retention of 1 ns the
// same request trades twice (the store tests cover replay inside the
// retention and the sweep).
func TestIdempotencyRetention(t *testing.T) {
	h := newHarnessWith(t, func(c *api.Config) { c.IdempotencyRetention = time.Nanosecond })
	sell := `{"orders":[{"asset":"SOL","side":"sell","quantity":1}]}`
	before := feesPaidCents(t, h, "acme")
	for i := 0; i < 2; i++ {
		r := h.do("acme", "POST", "/api/v1/hedging/execute", sell, api.IdempotencyKeyHeader, "k")
		expectStatus(t, r, 200)
		if r.header.Get("Idempotent-Replayed") != "" {
			t.Errorf("call %d replayed an expired key", i)
		}
	}
	// 1 SOL = 150 USD, fee 5 bps = 0.075, rounded to 0.08: 8 cents a fill.
	if got := feesPaidCents(t, h, "acme") - before; got != 16 {
		t.Errorf("fees paid %d cents, want two fills", got)
	}
}

// Bodies over the cap are 413, read as a client that streams the body
// would: three times in a row on fresh connections, never a reset.
func TestBodyOverCapIs413NotReset(t *testing.T) {
	h := newHarness(t)
	for i := 0; i < 3; i++ {
		for _, chunked := range []bool{false, true} {
			status, err := streamPost(h, 1<<20, chunked)
			if err != nil || status != http.StatusRequestEntityTooLarge {
				t.Errorf("post %d (chunked %v): %d %v", i, chunked, status, err)
			}
		}
	}
}

// streamPost sends size bytes to create over a raw connection, with a
// Content-Length or chunked, writing while it reads the answer as curl does.
func streamPost(h *harness, size int, chunked bool) (int, error) {
	conn, err := net.Dial("tcp", h.srv.Listener.Addr().String())
	if err != nil {
		return 0, err
	}
	defer func() { _ = conn.Close() }()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	path := "/api/v1/ensemble/create"
	head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: x\r\n%s: %s\r\nContent-Type: application/json\r\n", path, assertion.Header, h.sign(h.claims("acme", "POST", path)))
	if chunked {
		head += "Transfer-Encoding: chunked\r\n\r\n"
	} else {
		head += fmt.Sprintf("Content-Length: %d\r\n\r\n", size)
	}
	if _, err := conn.Write([]byte(head)); err != nil {
		return 0, err
	}
	go func() {
		chunk := bytes.Repeat([]byte("x"), 32<<10)
		for sent := 0; sent < size; sent += len(chunk) {
			var err error
			if chunked {
				_, err = fmt.Fprintf(conn, "%x\r\n%s\r\n", len(chunk), chunk)
			} else {
				_, err = conn.Write(chunk)
			}
			if err != nil {
				return
			}
		}
		if chunked {
			_, _ = conn.Write([]byte("0\r\n\r\n"))
		}
	}()
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0, err
	}
	_ = res.Body.Close()
	return res.StatusCode, nil
}

// problemSlugs are words checkProblem matches against the problem type.
var problemSlugs = map[string]bool{"risk-limit": true, "invalid-order": true, "too-many-agents": true, "missing_role": true}

// checkProblem is expectProblem where a word may also be the problem's slug.
func checkProblem(t *testing.T, r response, status int, words []string) {
	t.Helper()
	var detail []string
	var slug string
	for _, w := range words {
		if problemSlugs[w] {
			slug = w
			continue
		}
		detail = append(detail, w)
	}
	p := expectProblem(t, r, status, detail...)
	if slug != "" && str(p, "type") != api.ProblemTypePrefix+slug {
		t.Errorf("type = %v, want %s", p["type"], slug)
	}
}
