package store

import (
	"context"
	"database/sql"
	"errors"
	"io/fs"
	"math"
	"reflect"
	"testing"
	"testing/fstest"
	"time"

	"github.com/tenantgate/tenantgate/backend/ensemble"
	"github.com/tenantgate/tenantgate/backend/hedging"
)

// predictWith stores a prediction of ens with the given action and agent
// signals, then its outcome r.
func predictWith(t *testing.T, s *SQLite, tenant TenantID, ens, id string, at time.Time, action ensemble.Action, r float64, signals map[string]float64) {
	t.Helper()
	ctx := context.Background()
	p := ensemble.Prediction{ID: id, EnsembleID: ens, Symbol: "BTC", CreatedAt: at, Combined: ensemble.Combined{Action: action}}
	for _, a := range []string{"a", "b", "c"} {
		if sig, ok := signals[a]; ok {
			p.Contributions = append(p.Contributions, ensemble.Contribution{AgentID: a, Signal: sig, Confidence: 1, Weight: 1})
		}
	}
	if err := s.AddPrediction(ctx, tenant, p); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RecordOutcome(ctx, tenant, ens, id, r, at); err != nil {
		t.Fatal(err)
	}
}

// The SQL tallies equal the in-memory ensemble.Tally over the same window.
func TestPerformanceWindowTallies(t *testing.T) {
	s, _ := open(t)
	ctx := context.Background()
	mustCreate(t, s, acme, newEnsemble("ens_w", t0, "a", "b", "c"))
	type call struct {
		action  ensemble.Action
		r       float64
		signals map[string]float64
	}
	calls := []call{ // oldest first
		{ensemble.Buy, 0.02, map[string]float64{"a": 0.5, "b": -0.5}},
		{ensemble.Sell, 0.01, map[string]float64{"a": -0.2, "b": 0}},
		{ensemble.Hold, -0.03, map[string]float64{"a": 0.1}},
		{ensemble.Buy, -0.01, map[string]float64{"a": 0.9, "b": 0.3}},
	}
	for i, c := range calls {
		predictWith(t, s, acme, "ens_w", "p"+string(rune('0'+i)), t0.Add(time.Duration(i)*time.Minute), c.action, c.r, c.signals)
	}
	// An unscored prediction is outside every window.
	if err := s.AddPrediction(ctx, acme, ensemble.Prediction{ID: "open", EnsembleID: "ens_w", CreatedAt: t0.Add(time.Hour), Combined: ensemble.Combined{Action: ensemble.Buy,
		Contributions: []ensemble.Contribution{{AgentID: "a", Signal: 1}}}}); err != nil {
		t.Fatal(err)
	}
	dir := map[ensemble.Action]int{ensemble.Buy: 1, ensemble.Sell: -1}
	sign := func(x float64) int { return map[bool]int{true: 1}[x > 0] - map[bool]int{true: 1}[x < 0] }
	for _, lookback := range []int{1, 2, 3, 4, 50} {
		var want ensemble.Tally
		wantAgents := map[string]*ensemble.Tally{"a": {}, "b": {}, "c": {}}
		for _, c := range calls[max(0, len(calls)-lookback):] {
			want.Add(dir[c.action], c.r)
			for a, sig := range c.signals {
				wantAgents[a].Add(sign(sig), c.r)
			}
		}
		w, err := s.Performance(ctx, acme, "ens_w", lookback)
		if err != nil {
			t.Fatal(err)
		}
		if w.Predictions != min(lookback, 4) || !tallyEqual(w.Ensemble, want) {
			t.Errorf("lookback %d: ensemble %+v, want %+v", lookback, w.Ensemble, want)
		}
		var ids []string
		for _, at := range w.Agents {
			ids = append(ids, at.ID)
			if !tallyEqual(at.Tally, *wantAgents[at.ID]) {
				t.Errorf("lookback %d: agent %s %+v, want %+v", lookback, at.ID, at.Tally, *wantAgents[at.ID])
			}
		}
		if !reflect.DeepEqual(ids, []string{"a", "b", "c"}) {
			t.Errorf("agents %v, want every agent in registration order", ids)
		}
	}
	if _, err := s.Performance(ctx, acme, "ens_missing", 50); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing ensemble: %v", err)
	}
}

func tallyEqual(a, b ensemble.Tally) bool {
	return a.Scored == b.Scored && a.Directional == b.Directional && a.Hits == b.Hits &&
		math.Abs(a.Sum-b.Sum) < 1e-12 && math.Abs(a.SumSquares-b.SumSquares) < 1e-12
}

// Rankings keep agents that share an id in two ensembles apart, each over
// its own ensemble's window.
func TestRankingsPerEnsembleAgent(t *testing.T) {
	s, _ := open(t)
	mustCreate(t, s, acme, newEnsemble("ens_1", t0, "a"))
	mustCreate(t, s, acme, newEnsemble("ens_2", t0, "a", "b"))
	predictWith(t, s, acme, "ens_1", "x1", t0, ensemble.Buy, 0.05, map[string]float64{"a": 1})
	predictWith(t, s, acme, "ens_1", "x2", t0.Add(time.Minute), ensemble.Buy, 0.01, map[string]float64{"a": 1})
	predictWith(t, s, acme, "ens_2", "y1", t0, ensemble.Sell, 0.02, map[string]float64{"a": -1, "b": 1})
	got, err := s.Rankings(context.Background(), acme, 1)
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		ens, agent   string
		scored, hits int
		sum          float64
	}
	var rows []row
	for _, g := range got {
		rows = append(rows, row{g.EnsembleID, g.ID, g.Tally.Scored, g.Tally.Hits, math.Round(g.Tally.Sum*1e9) / 1e9})
	}
	// lookback 1: ens_1's window is x2 only; ens_2's is y1.
	want := []row{{"ens_1", "a", 1, 1, 0.01}, {"ens_2", "a", 1, 0, -0.02}, {"ens_2", "b", 1, 1, 0.02}}
	if !reflect.DeepEqual(rows, want) {
		t.Errorf("rankings = %+v, want %+v", rows, want)
	}
}

func TestAddAgentCap(t *testing.T) {
	s, _ := open(t)
	ctx := context.Background()
	mustCreate(t, s, acme, newEnsemble("ens_c", t0, "a", "b"))
	if err := s.AddAgent(ctx, acme, "ens_c", ensemble.Agent{ID: "c", Type: "t", Weight: 1, CreatedAt: t0}, 3); err != nil {
		t.Fatal(err)
	}
	if err := s.AddAgent(ctx, acme, "ens_c", ensemble.Agent{ID: "d", Type: "t", Weight: 1, CreatedAt: t0}, 3); !errors.Is(err, ErrLimit) {
		t.Errorf("fourth agent with cap 3: %v, want ErrLimit", err)
	}
	if e, _ := s.Ensemble(ctx, acme, "ens_c"); len(e.Agents) != 3 {
		t.Errorf("%d agents after a refused add, want 3", len(e.Agents))
	}
}

func TestSetAccount(t *testing.T) {
	s, _ := open(t)
	ctx := context.Background()
	initech := MustTenantID("initech")
	cash := 5000.0
	got, err := s.SetAccount(ctx, initech, AccountSet{Spot: map[string]float64{"BTC": 2.5, "ETH": 10}, CashUSD: &cash}, t0)
	if err != nil {
		t.Fatal(err)
	}
	want := hedging.Account{Spot: map[string]float64{"BTC": 2.5, "ETH": 10}, Perp: map[string]float64{}, CashUSD: 5000}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("new account = %+v, want %+v", got, want)
	}
	// A hedge survives a change of spot; ETH 0 removes it; cash kept when not given.
	if _, err := s.Trade(ctx, initech, "execute", t0, func(b hedging.Account) ([]hedging.Fill, hedging.Account, error) {
		return hedging.Apply(b, hedging.DemoPrices, []hedging.Order{{Asset: "BTC", Side: hedging.Sell, Quantity: 1}})
	}); err != nil {
		t.Fatal(err)
	}
	got, err = s.SetAccount(ctx, initech, AccountSet{Spot: map[string]float64{"BTC": 3, "ETH": 0}}, t0)
	if err != nil {
		t.Fatal(err)
	}
	want = hedging.Account{Spot: map[string]float64{"BTC": 3}, Perp: map[string]float64{"BTC": -1}, CashUSD: 4970, FeesPaidUSD: 30}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("changed account = %+v, want %+v", got, want)
	}
	if read, _ := s.Account(ctx, initech); !reflect.DeepEqual(read, want) {
		t.Errorf("read back = %+v", read)
	}
	if _, err := s.Account(ctx, acme); !errors.Is(err, ErrNotFound) {
		t.Errorf("acme got an account from initech's set: %v", err)
	}
}

func TestIdempotencyExpiryAndSweep(t *testing.T) {
	s, _ := open(t)
	ctx := context.Background()
	for _, tn := range []TenantID{acme, globex} {
		if _, err := s.SeedAccount(ctx, tn, hedging.DemoAccounts()[tn.String()], t0); err != nil {
			t.Fatal(err)
		}
	}
	sell := func(b hedging.Account) ([]hedging.Fill, hedging.Account, error) {
		return hedging.Apply(b, hedging.DemoPrices, []hedging.Order{{Asset: "SOL", Side: hedging.Sell, Quantity: 1}})
	}
	// Keys at t0 (acme k1, globex k1) and t0+2h (acme k2).
	for _, c := range []struct {
		tn  TenantID
		key string
		at  time.Time
	}{{acme, "k1", t0}, {globex, "k1", t0}, {acme, "k2", t0.Add(2 * time.Hour)}} {
		if _, replayed, err := s.ExecuteOnce(ctx, c.tn, c.key, "h", c.at, c.at.Add(-24*time.Hour), sell, okRender); err != nil || replayed {
			t.Fatal(replayed, err)
		}
	}
	// Within retention a retry replays; once expired the same key trades again.
	if _, replayed, err := s.ExecuteOnce(ctx, acme, "k1", "h", t0.Add(time.Hour), t0.Add(-23*time.Hour), sell, okRender); err != nil || !replayed {
		t.Errorf("retry within retention: replayed=%v %v", replayed, err)
	}
	if _, replayed, err := s.ExecuteOnce(ctx, acme, "k1", "other", t0.Add(25*time.Hour), t0.Add(time.Hour), sell, okRender); err != nil || replayed {
		t.Errorf("expired key: replayed=%v %v, want a fresh claim", replayed, err)
	}
	if n := count(t, s, `SELECT count(*) FROM orders WHERE tenant_id = 'acme'`); n != 3 {
		t.Errorf("acme orders = %d, want 3 (k1, k2, k1 again after expiry)", n)
	}
	// The sweep deletes only records older than the cut, in batches of limit.
	n, err := s.SweepIdempotencyKeys(ctx, t0.Add(time.Hour), 10)
	if err != nil || n != 1 {
		t.Errorf("sweep = %d, %v; want globex's k1 only", n, err)
	}
	if left := count(t, s, `SELECT count(*) FROM idempotency_keys`); left != 2 {
		t.Errorf("%d keys left, want 2", left)
	}
	n, err = s.SweepIdempotencyKeys(ctx, t0.Add(100*time.Hour), 1)
	if err != nil || n != 1 {
		t.Errorf("sweep with limit 1 = %d, %v", n, err)
	}
}

// Migration 0002 fills contributions from the JSON of predictions that
// existed before it.
func TestMigrationBackfillsContributions(t *testing.T) {
	ctx := context.Background()
	path := t.TempDir() + "/old.db"
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	init, _ := fs.ReadFile(migrations, "migrations/sqlite/0001_init.sql")
	if err := migrate(ctx, db, fstest.MapFS{"migrations/sqlite/0001_init.sql": {Data: init}}); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO ensembles VALUES ('acme', 'e', 'n', 'majority', 0.1, 1, 0)`,
		`INSERT INTO predictions (tenant_id, prediction_id, ensemble_id, symbol, signal, action, confidence, contributions, created_at, realized_return)
		 VALUES ('acme', 'p', 'e', 'BTC', 1, 'buy', 1, '[{"agent_id":"a","signal":0.5},{"agent_id":"b","signal":-0.25}]', 0, 0.1)`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	_ = db.Close()
	s, err := OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	if got := count(t, s, `SELECT count(*) FROM contributions WHERE tenant_id = 'acme' AND prediction_id = 'p' AND
		((agent_id = 'a' AND signal = 0.5) OR (agent_id = 'b' AND signal = -0.25))`); got != 2 {
		t.Errorf("backfilled %d contributions, want 2", got)
	}
}
