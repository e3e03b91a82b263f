package api_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tenantgate/tenantgate/backend/api"
	"github.com/tenantgate/tenantgate/backend/ensemble"
	"github.com/tenantgate/tenantgate/backend/hedging"
	"github.com/tenantgate/tenantgate/backend/store"
	"github.com/tenantgate/tenantgate/module/assertion"
)

// errDisk is what the failing store returns; it must never reach a client.
var errDisk = errors.New("disk I/O error at /var/lib/secret.db")

// failingStore wraps the real store and fails the methods named in fail
// (with the error given, errDisk by default).
type failingStore struct {
	store.Store
	fail map[string]error
}

func (f *failingStore) err(method string) error { return f.fail[method] }

func (f *failingStore) CreateEnsemble(ctx context.Context, t store.TenantID, e ensemble.Ensemble) error {
	if err := f.err("CreateEnsemble"); err != nil {
		return err
	}
	return f.Store.CreateEnsemble(ctx, t, e)
}

func (f *failingStore) Ensemble(ctx context.Context, t store.TenantID, id string) (ensemble.Ensemble, error) {
	if err := f.err("Ensemble"); err != nil {
		return ensemble.Ensemble{}, err
	}
	return f.Store.Ensemble(ctx, t, id)
}

func (f *failingStore) ListEnsembles(ctx context.Context, t store.TenantID, cursor string, limit int) ([]ensemble.Ensemble, string, error) {
	if err := f.err("ListEnsembles"); err != nil {
		return nil, "", err
	}
	return f.Store.ListEnsembles(ctx, t, cursor, limit)
}

func (f *failingStore) AddAgent(ctx context.Context, t store.TenantID, id string, a ensemble.Agent, maxAgents int) error {
	if err := f.err("AddAgent"); err != nil {
		return err
	}
	return f.Store.AddAgent(ctx, t, id, a, maxAgents)
}

func (f *failingStore) SetWeights(ctx context.Context, t store.TenantID, id string, w map[string]float64) error {
	if err := f.err("SetWeights"); err != nil {
		return err
	}
	return f.Store.SetWeights(ctx, t, id, w)
}

func (f *failingStore) AddPrediction(ctx context.Context, t store.TenantID, p ensemble.Prediction) error {
	if err := f.err("AddPrediction"); err != nil {
		return err
	}
	return f.Store.AddPrediction(ctx, t, p)
}

func (f *failingStore) RecordOutcome(ctx context.Context, t store.TenantID, e, p string, r float64, at time.Time) (ensemble.Prediction, error) {
	if err := f.err("RecordOutcome"); err != nil {
		return ensemble.Prediction{}, err
	}
	return f.Store.RecordOutcome(ctx, t, e, p, r, at)
}

func (f *failingStore) Performance(ctx context.Context, t store.TenantID, e string, lookback int) (store.Window, error) {
	if err := f.err("Performance"); err != nil {
		return store.Window{}, err
	}
	return f.Store.Performance(ctx, t, e, lookback)
}

func (f *failingStore) Rankings(ctx context.Context, t store.TenantID, lookback int) ([]store.AgentTally, error) {
	if err := f.err("Rankings"); err != nil {
		return nil, err
	}
	return f.Store.Rankings(ctx, t, lookback)
}

// errPanic makes a failing store method panic instead of returning.
var errPanic = errors.New("panic")

func (f *failingStore) Account(ctx context.Context, t store.TenantID) (hedging.Account, error) {
	if err := f.err("Account"); err == errPanic {
		panic("store exploded")
	} else if err != nil {
		return hedging.Account{}, err
	}
	return f.Store.Account(ctx, t)
}

func (f *failingStore) ExecuteOnce(ctx context.Context, t store.TenantID, key, hash string, at, expired time.Time, plan store.TradePlan, render func(store.Execution) (store.Response, error)) (store.Response, bool, error) {
	if err := f.err("ExecuteOnce"); err != nil {
		return store.Response{}, false, err
	}
	return f.Store.ExecuteOnce(ctx, t, key, hash, at, expired, plan, render)
}

func (f *failingStore) Trade(ctx context.Context, t store.TenantID, kind string, at time.Time, plan store.TradePlan) (store.Execution, error) {
	if err := f.err("Trade"); err != nil {
		return store.Execution{}, err
	}
	return f.Store.Trade(ctx, t, kind, at, plan)
}

// TestStoreFailuresAre500 fails each store call an endpoint makes: the
// client gets a 500 problem with the request id and nothing of the error;
// the log has the error under the same request id and tenant.
func TestStoreFailuresAre500(t *testing.T) {
	fs := &failingStore{}
	core, logs := observer.New(zapcore.InfoLevel)
	h := newHarnessWith(t, func(c *api.Config) {
		fs.Store = c.Store
		c.Store = fs
		c.Logger = zap.New(core)
	})
	id := createEnsemble(t, h, "acme", map[string]any{"name": "n", "method": "majority", "agents": []map[string]any{{"agent_id": "a", "agent_type": "t"}}})
	r := h.do("acme", "POST", "/api/v1/ensemble/"+id+"/predict", map[string]any{"symbol": "BTC", "signals": []map[string]any{{"agent_id": "a", "signal": 1, "confidence": 1}}})
	expectStatus(t, r, http.StatusCreated)
	pred := str(r.json(t), "prediction_id")

	base := "/api/v1/ensemble/" + id
	for _, tc := range []struct {
		fail, method, path string
		body               any
	}{
		{"CreateEnsemble", "POST", "/api/v1/ensemble/create", map[string]any{"name": "n", "method": "majority"}},
		{"Ensemble", "GET", base + "/weights", nil},
		{"Ensemble", "POST", base + "/register-agent", map[string]any{"agent_id": "b", "agent_type": "t"}},
		{"AddAgent", "POST", base + "/register-agent", map[string]any{"agent_id": "b", "agent_type": "t"}},
		{"AddPrediction", "POST", base + "/predict", map[string]any{"symbol": "BTC", "signals": []map[string]any{{"agent_id": "a", "signal": 1, "confidence": 1}}}},
		{"RecordOutcome", "POST", base + "/outcomes", map[string]any{"prediction_id": pred, "realized_return": 0.1}},
		{"Performance", "GET", base + "/performance", nil},
		{"Performance", "POST", base + "/optimize-weights", nil},
		{"SetWeights", "POST", base + "/optimize-weights", nil},
		{"ListEnsembles", "GET", "/api/v1/ensemble/", nil},
		{"Rankings", "GET", "/api/v1/ensemble/agent-rankings", nil},
		{"Account", "GET", "/api/v1/hedging/analysis", nil},
		{"ExecuteOnce", "POST", "/api/v1/hedging/execute", nil},
		{"Trade", "POST", "/api/v1/hedging/close", nil},
	} {
		t.Run(tc.fail+" "+tc.method+" "+tc.path, func(t *testing.T) {
			fs.fail = map[string]error{tc.fail: errDisk}
			defer func() { fs.fail = nil }()
			logs.TakeAll()
			r := h.do("acme", tc.method, tc.path, tc.body, api.IdempotencyKeyHeader, "k-"+tc.fail)
			p := expectProblem(t, r, http.StatusInternalServerError, "request_id")
			if str(p, "type") != api.ProblemTypePrefix+"internal" {
				t.Errorf("type = %v", p["type"])
			}
			if strings.Contains(string(r.body), "disk") || strings.Contains(string(r.body), "secret") {
				t.Errorf("the store error leaked: %s", r.body)
			}
			errs := logs.FilterMessage("internal error").All()
			if len(errs) != 1 {
				t.Fatalf("%d internal error log entries", len(errs))
			}
			fields := errs[0].ContextMap()
			if fields["error"] != errDisk.Error() || fields["request_id"] != str(p, "request_id") || fields["tenant_id"] != "acme" {
				t.Errorf("log fields = %v, problem = %v", fields, p)
			}
			reqs := logs.FilterMessage("request").All()
			if len(reqs) != 1 || reqs[0].ContextMap()["status"] != int64(500) || reqs[0].ContextMap()["reason"] != "internal" {
				t.Errorf("request log = %v", reqs)
			}
		})
	}
	// Nothing was written by the failed requests.
	r = h.do("acme", "GET", base+"/weights", nil)
	expectStatus(t, r, http.StatusOK)
	if n := len(list(r.json(t), "weights")); n != 1 {
		t.Errorf("weights after failures: %s", r.body)
	}
}

// The ensemble vanishing between the lookup and the write is a 404, like
// any other missing ensemble.
func TestRegisterAgentRaceIs404(t *testing.T) {
	fs := &failingStore{}
	h := newHarnessWith(t, func(c *api.Config) { fs.Store = c.Store; c.Store = fs })
	id := createEnsemble(t, h, "acme", map[string]any{"name": "n", "method": "majority"})
	fs.fail = map[string]error{"AddAgent": store.ErrNotFound}
	expectProblem(t, h.do("acme", "POST", "/api/v1/ensemble/"+id+"/register-agent", map[string]any{"agent_id": "b", "agent_type": "t"}), 404, id)
}

// An account holding an asset the price source has no price for cannot be
// analysed: the prices are unavailable, so 503 (not a client error), and
// nothing trades.
func TestAnalysisOfUnpricedAsset(t *testing.T) {
	h := newHarness(t)
	if _, err := h.store.SeedAccount(context.Background(), store.MustTenantID("initech"),
		hedging.Account{Spot: map[string]float64{"DOGE": 10}, Perp: map[string]float64{}, CashUSD: 1}, time.Now()); err != nil {
		t.Fatal(err)
	}
	expectProblem(t, h.do("initech", "GET", "/api/v1/hedging/analysis", nil), http.StatusServiceUnavailable, "price")
	expectProblem(t, h.do("initech", "POST", "/api/v1/hedging/execute", nil, api.IdempotencyKeyHeader, "doge"), http.StatusServiceUnavailable, "price")
	// The failed execution traded nothing.
	acct, err := h.store.Account(context.Background(), store.MustTenantID("initech"))
	if err != nil || acct.Spot["DOGE"] != 10 || len(acct.Perp) != 0 || acct.CashUSD != 1 {
		t.Errorf("account after the failed execution = %+v, %v", acct, err)
	}
}

func TestNewRequiresStoreAndVerifier(t *testing.T) {
	v, err := assertion.NewHMACVerifier([]byte(strings.Repeat("k", 32)), "backend")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := api.New(api.Config{Verifier: v}); err == nil || !strings.Contains(err.Error(), "store") {
		t.Errorf("no store: %v", err)
	}
	h := newHarness(t)
	if _, err := api.New(api.Config{Store: h.store}); err == nil || !strings.Contains(err.Error(), "verifier") {
		t.Errorf("no verifier: %v", err)
	}
}

// A body that cannot be read (the client went away mid-upload) is a 400
// naming the problem, and nothing is created.
func TestUnreadableBody(t *testing.T) {
	h := newHarness(t)
	for _, path := range []string{"/api/v1/ensemble/create", "/api/v1/hedging/close", "/api/v1/hedging/execute"} {
		req := httptest.NewRequest("POST", path, iotest.ErrReader(errors.New("connection reset by peer")))
		req.Header.Set(assertion.Header, h.sign(h.claims("acme", "POST", path)))
		req.Header.Set(api.IdempotencyKeyHeader, "k")
		rec := httptest.NewRecorder()
		h.handler.ServeHTTP(rec, req)
		r := response{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
		p := expectProblem(t, r, http.StatusBadRequest, "could not be read", "connection reset")
		if str(p, "type") != api.ProblemTypePrefix+"unreadable-body" {
			t.Errorf("%s: type %v", path, p["type"])
		}
	}
	r := h.do("acme", "GET", "/api/v1/ensemble/", nil)
	if n := len(list(r.json(t), "items")); n != 0 {
		t.Errorf("%d ensembles after unreadable bodies", n)
	}
}

// Bodies over the limit are 413 on every endpoint that reads one.
func TestBodyTooLargeEverywhere(t *testing.T) {
	h := newHarnessWith(t, func(c *api.Config) { c.MaxBodyBytes = 64 })
	big := `{"name":"` + strings.Repeat("x", 100) + `"}`
	id := createEnsemble(t, h, "acme", map[string]any{"name": "n", "method": "majority"})
	for _, path := range []string{"/api/v1/ensemble/create", "/api/v1/ensemble/" + id + "/register-agent", "/api/v1/ensemble/" + id + "/predict",
		"/api/v1/ensemble/" + id + "/outcomes", "/api/v1/ensemble/" + id + "/optimize-weights", "/api/v1/hedging/execute", "/api/v1/hedging/close"} {
		expectProblem(t, h.do("acme", "POST", path, big, api.IdempotencyKeyHeader, "k"), http.StatusRequestEntityTooLarge, "64")
	}
}

// Bodies that are not the JSON object the endpoint wants are 400 on every
// endpoint that reads one.
func TestBadJSONEverywhere(t *testing.T) {
	h := newHarness(t)
	id := createEnsemble(t, h, "acme", map[string]any{"name": "n", "method": "majority"})
	paths := []string{"/api/v1/ensemble/create", "/api/v1/ensemble/" + id + "/register-agent", "/api/v1/ensemble/" + id + "/predict",
		"/api/v1/ensemble/" + id + "/outcomes", "/api/v1/ensemble/" + id + "/optimize-weights", "/api/v1/hedging/execute", "/api/v1/hedging/close"}
	for _, tc := range []struct{ body, want string }{
		{`{"nope":1}`, `unknown field "nope"`},
		{`{`, "ends in the middle"},
		{`{} {}`, "data after the JSON object"},
		{`[1]`, "must be a JSON object, found a JSON array"},
		{`{"x" 1}`, "not valid JSON (at byte"},
	} {
		for _, path := range paths {
			expectProblem(t, h.do("acme", "POST", path, tc.body, api.IdempotencyKeyHeader, "k"), http.StatusBadRequest, tc.want)
		}
	}
	// Wrong types name the field.
	expectProblem(t, h.do("acme", "POST", "/api/v1/ensemble/create", `{"name":1}`), 400, `field "name" must be a JSON string, found a JSON number`)
	expectProblem(t, h.do("acme", "POST", "/api/v1/ensemble/"+id+"/optimize-weights", `{"lookback":"ten"}`), 400, `"lookback"`)
	// Only create, register-agent, predict and outcomes need a body.
	for _, path := range paths[:4] {
		expectProblem(t, h.do("acme", "POST", path, "  \n"), 400, "empty")
	}
}

// A panic in a handler is a 500 problem that carries the request id, like
// every other error (it used to carry an empty one).
func TestPanicIs500WithRequestID(t *testing.T) {
	fs := &failingStore{fail: map[string]error{"Account": errPanic}}
	h := newHarnessWith(t, func(c *api.Config) {
		fs.Store = c.Store
		c.Store = fs
	})
	r := h.do("acme", "GET", "/api/v1/hedging/analysis", nil)
	p := expectProblem(t, r, http.StatusInternalServerError, "request_id")
	if id := str(p, "request_id"); id == "" || id != r.header.Get("X-Request-ID") {
		t.Errorf("request_id %q, X-Request-ID %q", id, r.header.Get("X-Request-ID"))
	}
}
