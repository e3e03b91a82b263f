package store

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/tenantgate/tenantgate/backend/ensemble"
	"github.com/tenantgate/tenantgate/backend/hedging"
)

// More of the conformance suite (TestConformanceMore*: every scenario runs
// on SQLite and on PostgreSQL, see conformance_test.go), the fixtures both
// suites share, and the few SQLite-only checks (closed store, missing
// tables, the SQLite migrator, OpenSQLite's refusals).

var (
	acme   = MustTenantID("acme")
	globex = MustTenantID("globex")
	t0     = time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC)
)

func newEnsemble(id string, created time.Time, agents ...string) ensemble.Ensemble {
	e := ensemble.Ensemble{ID: id, Name: "name " + id, Method: ensemble.WeightedAverage,
		Config: ensemble.Config{Threshold: 0.25, MinAgents: 2}, CreatedAt: created, Agents: []ensemble.Agent{}}
	for i, a := range agents {
		e.Agents = append(e.Agents, ensemble.Agent{ID: a, Type: "type-" + a, Weight: float64(i + 1), CreatedAt: created.Add(time.Duration(i) * time.Millisecond)})
	}
	return e
}

func mustCreate(t *testing.T, s Store, tenant TenantID, e ensemble.Ensemble) {
	t.Helper()
	if err := s.CreateEnsemble(context.Background(), tenant, e); err != nil {
		t.Fatal(err)
	}
}

// exec runs SQL on the writer directly, to set up failures and corrupt rows.
func exec(t *testing.T, s *SQLite, q string, args ...any) {
	t.Helper()
	if _, err := s.w.ExecContext(context.Background(), q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func TestTenantID(t *testing.T) {
	var zero TenantID
	if !zero.IsZero() || zero.String() != "" || !errors.Is(zero.check(), ErrNoTenant) {
		t.Errorf("zero TenantID: IsZero %v, String %q", zero.IsZero(), zero.String())
	}
	if acme.IsZero() || acme.String() != "acme" || acme.check() != nil {
		t.Errorf("acme: IsZero %v, String %q", acme.IsZero(), acme.String())
	}
	defer func() {
		if recover() == nil {
			t.Error("MustTenantID accepted an invalid id")
		}
	}()
	MustTenantID("not valid")
}

func TestNewID(t *testing.T) {
	re := regexp.MustCompile(`^ens_[a-z2-7]{26}$`)
	seen := map[string]bool{}
	for i := 0; i < 100; i++ {
		id := NewID("ens")
		if !re.MatchString(id) {
			t.Fatalf("NewID = %q", id)
		}
		if seen[id] {
			t.Fatalf("NewID repeated %q", id)
		}
		seen[id] = true
	}
}

func TestConformanceMoreEnsembleRoundTrip(t *testing.T) {
	eachStore(t, func(t *testing.T, s subject) {
		ctx := context.Background()
		e := newEnsemble("ens_a", t0.In(time.FixedZone("X", 3600)), "a1", "a2")
		mustCreate(t, s, acme, e)

		got, err := s.Ensemble(ctx, acme, "ens_a")
		if err != nil {
			t.Fatal(err)
		}
		want := e
		want.CreatedAt = t0 // stored as UTC nanoseconds
		for i := range want.Agents {
			want.Agents[i].CreatedAt = want.Agents[i].CreatedAt.UTC()
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Ensemble =\n%+v\nwant\n%+v", got, want)
		}
		if _, err := s.Ensemble(ctx, globex, "ens_a"); !errors.Is(err, ErrNotFound) {
			t.Errorf("globex reads acme's ensemble: %v", err)
		}
		if _, err := s.Ensemble(ctx, acme, "ens_missing"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "ens_missing") {
			t.Errorf("missing ensemble: %v", err)
		}

		// AddAgent appends; agents come back in registration order.
		a3 := ensemble.Agent{ID: "a0", Type: "late", Weight: 0.5, CreatedAt: t0.Add(time.Hour)}
		if err := s.AddAgent(ctx, acme, "ens_a", a3, 100); err != nil {
			t.Fatal(err)
		}
		got, _ = s.Ensemble(ctx, acme, "ens_a")
		if ids := agentIDs(got.Agents); !reflect.DeepEqual(ids, []string{"a1", "a2", "a0"}) {
			t.Errorf("agents after AddAgent = %v", ids)
		}
		if err := s.AddAgent(ctx, globex, "ens_a", a3, 100); !errors.Is(err, ErrNotFound) {
			t.Errorf("globex adds to acme's ensemble: %v", err)
		}
	})
}

func agentIDs(as []ensemble.Agent) []string {
	out := []string{}
	for _, a := range as {
		out = append(out, a.ID)
	}
	return out
}

func TestConformanceMoreSetWeights(t *testing.T) {
	eachStore(t, func(t *testing.T, s subject) {
		ctx := context.Background()
		mustCreate(t, s, acme, newEnsemble("ens_w", t0, "a", "b"))
		mustCreate(t, s, globex, newEnsemble("ens_w", t0, "a", "b"))

		if err := s.SetWeights(ctx, acme, "ens_w", map[string]float64{"a": 0.25, "b": 0.75}); err != nil {
			t.Fatal(err)
		}
		weights := func(tenant TenantID) map[string]float64 {
			e, err := s.Ensemble(ctx, tenant, "ens_w")
			if err != nil {
				t.Fatal(err)
			}
			m := map[string]float64{}
			for _, a := range e.Agents {
				m[a.ID] = a.Weight
			}
			return m
		}
		if got := weights(acme); got["a"] != 0.25 || got["b"] != 0.75 {
			t.Errorf("acme weights = %v", got)
		}
		if got := weights(globex); got["a"] != 1 || got["b"] != 2 {
			t.Errorf("globex weights changed with acme's: %v", got)
		}
		// An unknown agent fails the whole update: no weight changes.
		err := s.SetWeights(ctx, acme, "ens_w", map[string]float64{"a": 0.5, "b": 0.5, "ghost": 0})
		if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "ghost") {
			t.Errorf("unknown agent: %v", err)
		}
		if got := weights(acme); got["a"] != 0.25 || got["b"] != 0.75 {
			t.Errorf("partial update after failure: %v", got)
		}
		// A negative weight violates the schema's CHECK and changes nothing.
		if err := s.SetWeights(ctx, acme, "ens_w", map[string]float64{"a": -1}); err == nil || errors.Is(err, ErrNotFound) {
			t.Errorf("negative weight: %v", err)
		}
		if err := s.SetWeights(ctx, acme, "ens_nope", map[string]float64{"a": 1}); !errors.Is(err, ErrNotFound) {
			t.Errorf("missing ensemble: %v", err)
		}
	})
}

// CreateEnsemble is one transaction: if an agent cannot be stored, neither
// is the ensemble.
func TestConformanceMoreCreateEnsembleIsAtomic(t *testing.T) {
	eachStore(t, func(t *testing.T, s subject) {
		ctx := context.Background()
		e := newEnsemble("ens_dup", t0, "a", "b")
		e.Agents = append(e.Agents, e.Agents[0]) // a twice
		if err := s.CreateEnsemble(ctx, acme, e); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), `"a"`) {
			t.Errorf("duplicate agent in create: %v", err)
		}
		if _, err := s.Ensemble(ctx, acme, "ens_dup"); !errors.Is(err, ErrNotFound) {
			t.Errorf("ensemble stored despite the failed agent: %v", err)
		}
		defer s.failWrites(t, "INSERT", "agents", "agents are read-only")()
		err := s.CreateEnsemble(ctx, acme, newEnsemble("ens_t", t0, "a"))
		if err == nil || errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "agents are read-only") {
			t.Errorf("failing agent insert: %v", err)
		}
		if _, err := s.Ensemble(ctx, acme, "ens_t"); !errors.Is(err, ErrNotFound) {
			t.Errorf("ensemble stored despite the failed agent: %v", err)
		}
		if err := s.AddAgent(ctx, acme, "ens_none", ensemble.Agent{ID: "x", Type: "t", Weight: 1}, 100); !errors.Is(err, ErrNotFound) {
			t.Errorf("AddAgent to a missing ensemble checks the ensemble first: %v", err)
		}
		// Without agents the trigger does not fire.
		mustCreate(t, s, acme, newEnsemble("ens_empty", t0))
		if err := s.AddAgent(ctx, acme, "ens_empty", ensemble.Agent{ID: "x", Type: "t", Weight: 1}, 100); err == nil || !strings.Contains(err.Error(), "read-only") {
			t.Errorf("AddAgent with failing insert: %v", err)
		}
	})
}

func TestConformanceMoreListEnsemblesPaging(t *testing.T) {
	eachStore(t, func(t *testing.T, s subject) {
		ctx := context.Background()
		// Two ensembles share a creation time: the id breaks the tie.
		var want []string
		for i, id := range []string{"ens_3", "ens_1", "ens_2", "ens_5", "ens_4"} {
			created := t0.Add(time.Duration(i) * time.Second)
			if id == "ens_5" {
				created = t0.Add(2 * time.Second) // same as ens_2
			}
			mustCreate(t, s, acme, newEnsemble(id, created, "agent-"+id))
			mustCreate(t, s, globex, newEnsemble("g"+id, created))
		}
		want = []string{"ens_3", "ens_1", "ens_2", "ens_5", "ens_4"}

		var got []string
		cursor, pages := "", 0
		for {
			page, next, err := s.ListEnsembles(ctx, acme, cursor, 2)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			if len(page) > 2 {
				t.Fatalf("page of %d > limit 2", len(page))
			}
			for _, e := range page {
				got = append(got, e.ID)
				if len(e.Agents) != 1 || e.Agents[0].ID != "agent-"+e.ID {
					t.Errorf("%s agents = %v", e.ID, agentIDs(e.Agents))
				}
				if e.Name != "name "+e.ID || e.Method != ensemble.WeightedAverage || e.Config.MinAgents != 2 {
					t.Errorf("%s = %+v", e.ID, e)
				}
			}
			if next == "" {
				break
			}
			if pages > 5 {
				t.Fatal("paging does not end")
			}
			cursor = next
		}
		if !reflect.DeepEqual(got, want) || pages != 3 {
			t.Errorf("listed %v in %d pages, want %v in 3", got, pages, want)
		}
		// A page that ends exactly at the last item has no next cursor.
		all, next, err := s.ListEnsembles(ctx, acme, "", 5)
		if err != nil || len(all) != 5 || next != "" {
			t.Errorf("exact page: %d items, next %q, %v", len(all), next, err)
		}
		none, next, err := s.ListEnsembles(ctx, MustTenantID("initech"), "", 5)
		if err != nil || len(none) != 0 || none == nil || next != "" {
			t.Errorf("empty tenant: %v %q %v", none, next, err)
		}
		for _, bad := range []string{"%%%", "djE6", encodeB64("v2:1:x"), encodeB64("v1:notanumber:x"), encodeB64("v1:1")} {
			if _, _, err := s.ListEnsembles(ctx, acme, bad, 2); !errors.Is(err, ErrBadCursor) {
				t.Errorf("cursor %q: %v", bad, err)
			}
		}
		c := listCursor{created: 42, id: "ens_x"}
		if back, err := decodeCursor(encodeCursor(c)); err != nil || back != c {
			t.Errorf("cursor round trip: %+v %v", back, err)
		}
	})
}

func encodeB64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func TestConformanceMorePredictionsAndOutcomes(t *testing.T) {
	eachStore(t, func(t *testing.T, s subject) {
		ctx := context.Background()
		mustCreate(t, s, acme, newEnsemble("ens_p", t0, "a", "b"))
		mustCreate(t, s, acme, newEnsemble("ens_q", t0, "a"))
		pred := func(id, ens string, at time.Time, action ensemble.Action) ensemble.Prediction {
			return ensemble.Prediction{ID: id, EnsembleID: ens, Symbol: "BTC-USD", CreatedAt: at, Combined: ensemble.Combined{
				Signal: 0.4, Confidence: 0.7, Action: action,
				Contributions: []ensemble.Contribution{{AgentID: "a", Signal: 0.5, Confidence: 0.8, Weight: 1, Contribution: 0.25}, {AgentID: "b", Signal: 0.3, Confidence: 0.6, Weight: 1, Contribution: 0.15}},
			}}
		}
		for i, id := range []string{"p1", "p2", "p3", "p4"} {
			if err := s.AddPrediction(ctx, acme, pred(id, "ens_p", t0.Add(time.Duration(i)*time.Minute), ensemble.Buy)); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.AddPrediction(ctx, acme, pred("q1", "ens_q", t0, ensemble.Sell)); err != nil {
			t.Fatal(err)
		}
		if err := s.AddPrediction(ctx, acme, pred("x", "ens_nope", t0, ensemble.Buy)); !errors.Is(err, ErrNotFound) {
			t.Errorf("prediction for a missing ensemble: %v", err)
		}
		if err := s.AddPrediction(ctx, globex, pred("g", "ens_p", t0, ensemble.Buy)); !errors.Is(err, ErrNotFound) {
			t.Errorf("globex predicts on acme's ensemble: %v", err)
		}
		if err := s.AddPrediction(ctx, acme, pred("p1", "ens_p", t0, ensemble.Buy)); err == nil {
			t.Error("duplicate prediction id accepted")
		}

		// Outcomes on p1, p2, p4 (not p3) and q1.
		for i, id := range []string{"p1", "p2", "p4"} {
			got, err := s.RecordOutcome(ctx, acme, "ens_p", id, float64(i+1)/100, t0.Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			if *got.RealizedReturn != float64(i+1)/100 || !got.OutcomeAt.Equal(t0.Add(time.Hour)) || got.Action != ensemble.Buy {
				t.Errorf("RecordOutcome(%s) = %+v", id, got)
			}
		}
		if _, err := s.RecordOutcome(ctx, acme, "ens_q", "q1", -0.5, t0); err != nil {
			t.Fatal(err)
		}
		// The prediction must belong to the named ensemble.
		if _, err := s.RecordOutcome(ctx, acme, "ens_q", "p3", 0.1, t0); !errors.Is(err, ErrNotFound) {
			t.Errorf("outcome through another ensemble: %v", err)
		}
		first, err := s.RecordOutcome(ctx, acme, "ens_p", "p1", 0.9, t0)
		if !errors.Is(err, ErrConflict) || first.RealizedReturn == nil || *first.RealizedReturn != 0.01 {
			t.Errorf("second outcome: %v, returned %+v", err, first)
		}

		// The window: the newest scored predictions, p4 (0.03), p2 (0.02), p1 (0.01), all buys.
		w, err := s.Performance(ctx, acme, "ens_p", 50)
		if err != nil {
			t.Fatal(err)
		}
		if w.Predictions != 3 || w.Ensemble.Directional != 3 || w.Ensemble.Hits != 3 || math.Abs(w.Ensemble.Sum-0.06) > 1e-12 ||
			math.Abs(w.Ensemble.SumSquares-0.0014) > 1e-12 {
			t.Errorf("window = %+v", w)
		}
		if w2, _ := s.Performance(ctx, acme, "ens_p", 2); w2.Predictions != 2 || math.Abs(w2.Ensemble.Sum-0.05) > 1e-12 {
			t.Errorf("lookback 2 = %+v", w2)
		}
		if g, err := s.Rankings(ctx, globex, 50); err != nil || len(g) != 0 {
			t.Errorf("globex rankings = %v %v", g, err)
		}
	})
}

func TestConformanceMoreRankingsRows(t *testing.T) {
	eachStore(t, func(t *testing.T, s subject) {
		ctx := context.Background()
		mustCreate(t, s, acme, newEnsemble("ens_b", t0, "z", "a"))
		mustCreate(t, s, acme, newEnsemble("ens_a", t0, "m"))
		mustCreate(t, s, globex, newEnsemble("ens_g", t0, "secret"))
		got, err := s.Rankings(ctx, acme, 50)
		if err != nil {
			t.Fatal(err)
		}
		var pairs []string
		for _, a := range got {
			pairs = append(pairs, fmt.Sprintf("%s/%s/%s/%g", a.EnsembleID, a.ID, a.Type, a.Weight))
		}
		if want := []string{"ens_a/m/type-m/1", "ens_b/a/type-a/2", "ens_b/z/type-z/1"}; !reflect.DeepEqual(pairs, want) {
			t.Errorf("Rankings = %v, want %v", pairs, want)
		}
		none, err := s.Rankings(ctx, MustTenantID("initech"), 50)
		if err != nil || none == nil || len(none) != 0 {
			t.Errorf("no agents: %v %v", none, err)
		}
		// SQLite only: its loose column types let a row hold what no write
		// of the store would; the reads refuse it.
		if s.name == "sqlite" {
			exec(t, s.Store.(*SQLite), `UPDATE agents SET created_at = 'soon' WHERE agent_id = 'z'`)
			if _, err := s.Rankings(ctx, acme, 50); err == nil {
				t.Error("corrupt agent row accepted by Rankings")
			}
			if _, err := s.Ensemble(ctx, acme, "ens_b"); err == nil {
				t.Error("corrupt agent row accepted by Ensemble")
			}
			if _, _, err := s.ListEnsembles(ctx, acme, "", 10); err == nil {
				t.Error("corrupt agent row accepted by ListEnsembles")
			}
			exec(t, s.Store.(*SQLite), `UPDATE ensembles SET created_at = 'later' WHERE ensemble_id = 'ens_a'`)
			if _, err := s.Ensemble(ctx, acme, "ens_a"); err == nil || errors.Is(err, ErrNotFound) {
				t.Errorf("corrupt ensemble row: %v", err)
			}
			if _, _, err := s.ListEnsembles(ctx, acme, "", 10); err == nil {
				t.Error("corrupt ensemble row accepted by ListEnsembles")
			}
		}
	})
}

func closeOrders(b hedging.Account) ([]hedging.Fill, hedging.Account, error) {
	return hedging.Apply(b, hedging.DemoPrices, hedging.CloseOrders(b))
}

func TestConformanceMoreAccountAndTrade(t *testing.T) {
	eachStore(t, func(t *testing.T, s subject) {
		ctx := context.Background()
		if _, err := s.Account(ctx, acme); !errors.Is(err, ErrNotFound) {
			t.Errorf("account before seeding: %v, want ErrNotFound", err)
		}
		if _, err := s.Trade(ctx, acme, "close", t0, closeOrders); !errors.Is(err, ErrNotFound) {
			t.Errorf("trade without an account: %v, want ErrNotFound", err)
		}
		demo := hedging.DemoAccounts()
		if created, err := s.SeedAccount(ctx, acme, demo["acme"], t0); err != nil || !created {
			t.Fatal(created, err)
		}
		if created, err := s.SeedAccount(ctx, globex, demo["globex"], t0); err != nil || !created {
			t.Fatal(created, err)
		}
		got, err := s.Account(ctx, acme)
		if err != nil || !reflect.DeepEqual(got, demo["acme"]) {
			t.Errorf("acme account = %+v, want %+v (%v)", got, demo["acme"], err)
		}

		// A trade with no fills changes nothing and stores nothing.
		ex, err := s.Trade(ctx, acme, "execute", t0, func(b hedging.Account) ([]hedging.Fill, hedging.Account, error) { return nil, b, nil })
		if err != nil || len(ex.Fills) != 0 || ex.Kind != "execute" || ex.ID != "" {
			t.Errorf("empty trade = %+v, %v", ex, err)
		}
		if n := s.count(t, `SELECT count(*) FROM orders`); n != 0 {
			t.Errorf("%d orders after an empty trade", n)
		}

		ex, err = s.Trade(ctx, acme, "close", t0, closeOrders)
		if err != nil {
			t.Fatal(err)
		}
		if len(ex.Fills) != 2 || !reflect.DeepEqual(ex.Before, demo["acme"]) || ex.Kind != "close" || !ex.At.Equal(t0) {
			t.Errorf("close = %+v", ex)
		}
		for _, f := range ex.Fills {
			if !strings.HasPrefix(f.OrderID, "ord_") || f.Side != hedging.Buy {
				t.Errorf("fill %+v", f)
			}
		}
		after, _ := s.Account(ctx, acme)
		if after.Perp["BTC"] != 0 || after.Perp["ETH"] != 0 || after.Spot["BTC"] != 2.5 || after.FeesPaidUSD <= 0 || after.CashUSD >= demo["acme"].CashUSD {
			t.Errorf("after close = %+v", after)
		}
		if !reflect.DeepEqual(after, ex.After) {
			t.Errorf("stored %+v, execution says %+v", after, ex.After)
		}
		if n := s.count(t, `SELECT count(*) FROM orders WHERE tenant_id = 'acme' AND execution_id = $1`, ex.ID); n != 2 {
			t.Errorf("%d orders stored for the close", n)
		}
		if g, _ := s.Account(ctx, globex); !reflect.DeepEqual(g, demo["globex"]) {
			t.Errorf("globex changed with acme's trade: %+v", g)
		}
		// A plan error stores nothing.
		boom := errors.New("boom")
		if _, err := s.Trade(ctx, globex, "close", t0, func(hedging.Account) ([]hedging.Fill, hedging.Account, error) { return nil, hedging.Account{}, boom }); !errors.Is(err, boom) {
			t.Errorf("plan error: %v", err)
		}
	})
}

func count(t *testing.T, s *SQLite, q string, args ...any) int {
	t.Helper()
	var n int
	if err := s.r.QueryRowContext(context.Background(), q, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// A trade is one transaction: if an order cannot be stored, the account
// and positions stay as they were.
func TestConformanceMoreTradeIsAtomic(t *testing.T) {
	eachStore(t, func(t *testing.T, s subject) {
		ctx := context.Background()
		demo := hedging.DemoAccounts()["globex"]
		if _, err := s.SeedAccount(ctx, globex, demo, t0); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct{ table, event string }{
			{"orders", "INSERT"}, {"perp_positions", "UPDATE"}, {"accounts", "UPDATE"},
		} {
			restore := s.failWrites(t, tc.event, tc.table, "no writes to "+tc.table)
			_, err := s.Trade(ctx, globex, "close", t0, closeOrders)
			if err == nil || !strings.Contains(err.Error(), "no writes to "+tc.table) {
				t.Errorf("%s %s failing: %v", tc.event, tc.table, err)
			}
			_, _, err = s.ExecuteOnce(ctx, globex, "k-"+tc.table, "h", t0, time.Time{}, closeOrders, okRender)
			if err == nil || !strings.Contains(err.Error(), "no writes to "+tc.table) {
				t.Errorf("ExecuteOnce with %s %s failing: %v", tc.event, tc.table, err)
			}
			if got, _ := s.Account(ctx, globex); !reflect.DeepEqual(got, demo) {
				t.Errorf("%s failing: account changed to %+v", tc.table, got)
			}
			if n := s.count(t, `SELECT count(*) FROM orders`) + s.count(t, `SELECT count(*) FROM idempotency_keys`); n != 0 {
				t.Errorf("%s failing: %d rows left behind", tc.table, n)
			}
			restore()
		}
		restore := s.failWrites(t, "INSERT", "spot_balances", "no spot")
		if created, err := s.SeedAccount(ctx, acme, hedging.DemoAccounts()["acme"], t0); err == nil || created {
			t.Errorf("seed with failing spot insert: %v %v", created, err)
		}
		restore()
		defer s.failWrites(t, "INSERT", "perp_positions", "no perp")()
		if created, err := s.SeedAccount(ctx, acme, hedging.DemoAccounts()["acme"], t0); err == nil || created {
			t.Errorf("seed with failing perp insert: %v %v", created, err)
		}
		if got, _ := s.Account(ctx, acme); got.CashUSD != 0 || len(got.Spot) != 0 {
			t.Errorf("half-seeded account: %+v", got)
		}
	})
}

func okRender(ex Execution) (Response, error) {
	return Response{Status: 200, ContentType: "application/json", Body: []byte(fmt.Sprintf(`{"execution_id":%q,"fills":%d}`, ex.ID, len(ex.Fills)))}, nil
}

func TestConformanceMoreExecuteOnce(t *testing.T) {
	eachStore(t, func(t *testing.T, s subject) {
		ctx := context.Background()
		demo := hedging.DemoAccounts()
		for name, acct := range demo {
			if _, err := s.SeedAccount(ctx, MustTenantID(name), acct, t0); err != nil {
				t.Fatal(err)
			}
		}
		plans := 0
		plan := func(b hedging.Account) ([]hedging.Fill, hedging.Account, error) {
			plans++
			return closeOrders(b)
		}

		// A failing plan or render stores nothing and keeps the key free.
		invalid := func(b hedging.Account) ([]hedging.Fill, hedging.Account, error) {
			return hedging.Apply(b, hedging.DemoPrices, []hedging.Order{{Asset: "DOGE", Side: hedging.Sell, Quantity: 1}})
		}
		if _, _, err := s.ExecuteOnce(ctx, acme, "k1", "h1", t0, time.Time{}, invalid, okRender); !errors.Is(err, hedging.ErrInvalidOrder) {
			t.Errorf("invalid order: %v", err)
		}
		renderErr := errors.New("render failed")
		if _, _, err := s.ExecuteOnce(ctx, acme, "k1", "h1", t0, time.Time{}, plan, func(Execution) (Response, error) { return Response{}, renderErr }); !errors.Is(err, renderErr) {
			t.Errorf("render error: %v", err)
		}
		if got, _ := s.Account(ctx, acme); !reflect.DeepEqual(got, demo["acme"]) {
			t.Errorf("failed executions traded: %+v", got)
		}

		first, replayed, err := s.ExecuteOnce(ctx, acme, "k1", "h1", t0, time.Time{}, plan, okRender)
		if err != nil || replayed || first.Status != 200 || !bytes.Contains(first.Body, []byte(`"fills":2`)) {
			t.Fatalf("first = %+v %v %v", first, replayed, err)
		}
		after, _ := s.Account(ctx, acme)
		plansBefore := plans
		again, replayed, err := s.ExecuteOnce(ctx, acme, "k1", "h1", t0.Add(time.Minute), time.Time{}, plan, okRender)
		if err != nil || !replayed || !reflect.DeepEqual(again, first) {
			t.Errorf("replay = %+v %v %v, want %+v", again, replayed, err, first)
		}
		if plans != plansBefore {
			t.Error("a replay ran the plan again")
		}
		if got, _ := s.Account(ctx, acme); !reflect.DeepEqual(got, after) {
			t.Errorf("a replay traded: %+v", got)
		}
		if _, _, err := s.ExecuteOnce(ctx, acme, "k1", "h2", t0, time.Time{}, plan, okRender); !errors.Is(err, ErrIdempotencyMismatch) {
			t.Errorf("same key, other request: %v", err)
		}
		// Keys are per tenant: globex's k1 is a new execution.
		g, replayed, err := s.ExecuteOnce(ctx, globex, "k1", "h2", t0, time.Time{}, plan, okRender)
		if err != nil || replayed || bytes.Equal(g.Body, first.Body) {
			t.Errorf("globex k1 = %+v %v %v", g, replayed, err)
		}
		if got, _ := s.Account(ctx, globex); got.Perp["SOL"] != 0 {
			t.Errorf("globex not closed: %+v", got)
		}
	})
}

// Concurrent calls with one key trade once and all get the same bytes.
func TestConformanceMoreExecuteOnceConcurrent(t *testing.T) {
	eachStore(t, func(t *testing.T, s subject) {
		ctx := context.Background()
		if _, err := s.SeedAccount(ctx, acme, hedging.DemoAccounts()["acme"], t0); err != nil {
			t.Fatal(err)
		}
		const n = 20
		bodies := make([][]byte, n)
		errs := make([]error, n)
		var replays sync.WaitGroup
		replays.Add(n)
		var mu sync.Mutex
		fresh := 0
		for i := 0; i < n; i++ {
			go func(i int) {
				defer replays.Done()
				resp, replayed, err := s.ExecuteOnce(ctx, acme, "same", "h", t0, time.Time{}, closeOrders, okRender)
				bodies[i], errs[i] = resp.Body, err
				if !replayed {
					mu.Lock()
					fresh++
					mu.Unlock()
				}
			}(i)
		}
		replays.Wait()
		for i := range bodies {
			if errs[i] != nil || !bytes.Equal(bodies[i], bodies[0]) {
				t.Errorf("call %d: %v %s", i, errs[i], bodies[i])
			}
		}
		if fresh != 1 {
			t.Errorf("%d calls executed, want 1", fresh)
		}
		if n := s.count(t, `SELECT count(*) FROM orders`); n != 2 {
			t.Errorf("%d orders, want the 2 of one close", n)
		}
	})
}

// Every method refuses the zero TenantID before touching the database.
func TestConformanceMoreZeroTenantRefusedEverywhere(t *testing.T) {
	eachStore(t, func(t *testing.T, s subject) {
		ctx := context.Background()
		var z TenantID
		nop := func(b hedging.Account) ([]hedging.Fill, hedging.Account, error) { return nil, b, nil }
		for name, call := range storeCalls(ctx, s, z, nop) {
			if err := call(); !errors.Is(err, ErrNoTenant) {
				t.Errorf("%s: %v, want ErrNoTenant", name, err)
			}
		}
	})
}

// storeCalls calls every Store method for tenant t.
func storeCalls(ctx context.Context, s Store, t TenantID, plan TradePlan) map[string]func() error {
	e := newEnsemble("ens_z", t0, "a")
	return map[string]func() error{
		"CreateEnsemble": func() error { return s.CreateEnsemble(ctx, t, e) },
		"Ensemble":       func() error { _, err := s.Ensemble(ctx, t, "ens_z"); return err },
		"ListEnsembles":  func() error { _, _, err := s.ListEnsembles(ctx, t, "", 10); return err },
		"AddAgent":       func() error { return s.AddAgent(ctx, t, "ens_z", e.Agents[0], 100) },
		"SetWeights":     func() error { return s.SetWeights(ctx, t, "ens_z", map[string]float64{"a": 1}) },
		"AddPrediction": func() error {
			return s.AddPrediction(ctx, t, ensemble.Prediction{ID: "p", EnsembleID: "ens_z", Combined: ensemble.Combined{Action: ensemble.Hold}})
		},
		"RecordOutcome": func() error { _, err := s.RecordOutcome(ctx, t, "ens_z", "p", 0, t0); return err },
		"Performance":   func() error { _, err := s.Performance(ctx, t, "ens_z", 50); return err },
		"Rankings":      func() error { _, err := s.Rankings(ctx, t, 50); return err },
		"SetAccount":    func() error { _, err := s.SetAccount(ctx, t, AccountSet{}, t0); return err },
		"Account":       func() error { _, err := s.Account(ctx, t); return err },
		"SeedAccount":   func() error { _, err := s.SeedAccount(ctx, t, hedging.DemoAccounts()["acme"], t0); return err },
		"Trade":         func() error { _, err := s.Trade(ctx, t, "close", t0, plan); return err },
		"ExecuteOnce": func() error {
			_, _, err := s.ExecuteOnce(ctx, t, "k", "h", t0, time.Time{}, plan, okRender)
			return err
		},
	}
}

// After Close every method fails with an error (no panic, no success).
func TestClosedStoreFails(t *testing.T) {
	s, _ := open(t)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	nop := func(b hedging.Account) ([]hedging.Fill, hedging.Account, error) { return nil, b, nil }
	for name, call := range storeCalls(context.Background(), s, acme, nop) {
		err := call()
		if err == nil || !strings.Contains(err.Error(), "store:") || !strings.Contains(err.Error(), "closed") {
			t.Errorf("%s on a closed store: %v", name, err)
		}
	}
}

// A missing table (a database that is not ours, or a broken migration)
// surfaces as a store error, never a panic or a silent success, once all are gone.
func TestMissingTablesFail(t *testing.T) {
	s, _ := open(t)
	ctx := context.Background()
	mustCreate(t, s, acme, newEnsemble("ens_z", t0, "a"))
	if _, err := s.SeedAccount(ctx, acme, hedging.DemoAccounts()["acme"], t0); err != nil {
		t.Fatal(err)
	}
	nop := func(b hedging.Account) ([]hedging.Fill, hedging.Account, error) { return nil, b, nil }
	for _, tbl := range []string{"idempotency_keys", "orders", "perp_positions", "spot_balances", "accounts", "contributions", "predictions", "agents"} {
		exec(t, s, `DROP TABLE `+tbl)
		for name, call := range storeCalls(ctx, s, acme, nop) {
			if err := call(); err != nil && !strings.HasPrefix(err.Error(), "store: ") {
				t.Errorf("without %s, %s: error not from the store: %v", tbl, name, err)
			}
		}
	}
	for name, call := range storeCalls(ctx, s, acme, nop) {
		if err := call(); err == nil {
			t.Errorf("%s succeeded without its tables", name)
		}
	}
}

func TestMigrate(t *testing.T) {
	s, _ := open(t)
	ctx := context.Background()
	fsys := fstest.MapFS{
		"migrations/sqlite/0010_late.sql":  {Data: []byte(`CREATE TABLE late (tenant_id TEXT NOT NULL, ref TEXT REFERENCES extra2 (x))`)},
		"migrations/sqlite/0003_extra.sql": {Data: []byte(`CREATE TABLE extra2 (tenant_id TEXT NOT NULL, x TEXT PRIMARY KEY)`)},
		"migrations/sqlite/0001_init.sql":  {Data: []byte(`this is not applied again`)},
		"migrations/sqlite/README.md":      {Data: []byte(`not a migration`)},
	}
	if err := migrate(ctx, s.w, fsys); err != nil {
		t.Fatal(err)
	}
	var names []string
	rows, err := s.r.QueryContext(ctx, `SELECT name FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var n string
		_ = rows.Scan(&n)
		names = append(names, n)
	}
	_ = rows.Close()
	if want := []string{"0001_init.sql", "0002_bounded_reads.sql", "0003_extra.sql", "0010_late.sql"}; !reflect.DeepEqual(names, want) {
		t.Errorf("applied %v, want %v", names, want)
	}
	// Applying the same set again is a no-op.
	if err := migrate(ctx, s.w, fsys); err != nil {
		t.Fatal(err)
	}
	if n := count(t, s, `SELECT count(*) FROM schema_migrations`); n != 4 {
		t.Errorf("%d migrations recorded after a second run", n)
	}

	// A failing migration is rolled back and not recorded; later ones do not run.
	bad := fstest.MapFS{
		"migrations/sqlite/0020_half.sql": {Data: []byte(`CREATE TABLE half (tenant_id TEXT); INSERT INTO nowhere VALUES (1);`)},
		"migrations/sqlite/0021_next.sql": {Data: []byte(`CREATE TABLE next (tenant_id TEXT)`)},
	}
	err = migrate(ctx, s.w, bad)
	if err == nil || !strings.Contains(err.Error(), "0020_half.sql") || !strings.Contains(err.Error(), "nowhere") {
		t.Errorf("failing migration: %v", err)
	}
	if n := count(t, s, `SELECT count(*) FROM sqlite_master WHERE name IN ('half', 'next')`); n != 0 {
		t.Errorf("failed migration left %d tables", n)
	}
	if n := count(t, s, `SELECT count(*) FROM schema_migrations WHERE version >= 20`); n != 0 {
		t.Errorf("failed migration recorded")
	}

	for name, fsys := range map[string]fstest.MapFS{
		"must start with a positive number": {"migrations/sqlite/init.sql": {Data: []byte(`SELECT 1`)}},
		"same version 30":                   {"migrations/sqlite/0030_a.sql": {Data: []byte(`SELECT 1`)}, "migrations/sqlite/30_b.sql": {Data: []byte(`SELECT 1`)}},
		"read migration 0040_dir.sql":       {"migrations/sqlite/0040_dir.sql/inner": {Data: []byte(`SELECT 1`)}},
	} {
		if err := migrate(ctx, s.w, fsys); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("want error %q, got %v", name, err)
		}
	}
	if n := count(t, s, `SELECT count(*) FROM schema_migrations`); n != 4 {
		t.Errorf("refused sets recorded migrations: %d rows", n)
	}

	// A database that cannot hold the schema table is refused.
	_ = s.Close()
	if err := migrate(ctx, s.w, fsys); err == nil || !strings.Contains(err.Error(), "schema_migrations") {
		t.Errorf("closed database: %v", err)
	}
}

func TestOpenSQLiteRefuses(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()

	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenSQLite(ctx, filepath.Join(file, "sub", "b.db")); err == nil || !strings.Contains(err.Error(), "create directory") {
		t.Errorf("directory under a file: %v", err)
	}
	if _, err := OpenSQLite(ctx, dir); err == nil || !strings.Contains(err.Error(), "open "+dir) {
		t.Errorf("a directory as database: %v", err)
	}
	garbage := filepath.Join(dir, "garbage.db")
	if err := os.WriteFile(garbage, bytes.Repeat([]byte("not a database "), 512), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenSQLite(ctx, garbage); err == nil {
		t.Error("a file that is not SQLite was opened")
	}
	// Somebody else's database: the first migration cannot create its tables.
	foreign := filepath.Join(dir, "foreign.db")
	s, err := OpenSQLite(ctx, foreign)
	if err != nil {
		t.Fatal(err)
	}
	exec(t, s, `DROP TABLE schema_migrations`)
	_ = s.Close()
	if _, err := OpenSQLite(ctx, foreign); err == nil || !strings.Contains(err.Error(), "0001_init.sql") || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("foreign schema: %v", err)
	}
	ctxDone, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := OpenSQLite(ctxDone, filepath.Join(dir, "cancelled.db")); err == nil {
		t.Error("opened with a cancelled context")
	}
}
