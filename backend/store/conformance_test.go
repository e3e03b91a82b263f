package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantgate/tenantgate/backend/ensemble"
	"github.com/tenantgate/tenantgate/backend/hedging"
	"github.com/tenantgate/tenantgate/backend/store/pgtest"
)

// The conformance suite: every test here runs the same calls through the
// Store interface against SQLite and against PostgreSQL, so both stores
// keep one semantics. Store-specific checks (pragmas, RLS, migrations
// under the advisory lock) live in sqlite_test.go and postgres_test.go.

// subject is a Store under test plus a way to break it on purpose.
type subject struct {
	Store
	name string
	// failWrites makes every write of kind event ("INSERT" or "UPDATE") to
	// table fail with message msg until the returned func runs.
	failWrites func(t *testing.T, event, table, msg string) (restore func())
}

// eachStore runs fn as a subtest per store, each on a fresh database.
func eachStore(t *testing.T, fn func(t *testing.T, s subject)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) { fn(t, openSQLiteSubject(t)) })
	t.Run("postgres", func(t *testing.T) { fn(t, openPostgresSubject(t)) })
}

func openSQLiteSubject(t *testing.T) subject {
	s, err := OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "backend.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return subject{Store: s, name: "sqlite", failWrites: func(t *testing.T, event, table, msg string) func() {
		exec(t, s, fmt.Sprintf(`CREATE TRIGGER fail BEFORE %s ON %s BEGIN SELECT RAISE(ABORT, '%s'); END`, event, table, msg))
		return func() { exec(t, s, `DROP TRIGGER fail`) }
	}}
}

// openPostgres opens the PostgreSQL store on a database of t's own.
func openPostgres(t *testing.T) (*Postgres, *pgtest.DB) {
	t.Helper()
	db := pgtest.New(t)
	p, err := OpenPostgres(context.Background(), db.URL, PostgresOptions{Role: db.Role})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p, db
}

// adminExec runs SQL on the test database as the admin (owner) user,
// outside the store and outside row-level security.
func adminExec(t *testing.T, db *pgtest.DB, q string, args ...any) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, db.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close(ctx) }()
	if _, err := conn.Exec(ctx, q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func openPostgresSubject(t *testing.T) subject {
	p, db := openPostgres(t)
	return subject{Store: p, name: "postgres", failWrites: func(t *testing.T, event, table, msg string) func() {
		adminExec(t, db, fmt.Sprintf(`CREATE FUNCTION fail() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION '%s'; END $$`, msg))
		adminExec(t, db, fmt.Sprintf(`CREATE TRIGGER fail BEFORE %s ON %s FOR EACH ROW EXECUTE FUNCTION fail()`, event, table))
		return func() {
			adminExec(t, db, `DROP TRIGGER fail ON `+table)
			adminExec(t, db, `DROP FUNCTION fail()`)
		}
	}}
}

func create(t *testing.T, s Store, tenant TenantID, e ensemble.Ensemble) {
	t.Helper()
	if err := s.CreateEnsemble(context.Background(), tenant, e); err != nil {
		t.Fatal(err)
	}
}

func TestConformanceEnsembles(t *testing.T) {
	eachStore(t, func(t *testing.T, s subject) {
		ctx := context.Background()
		e := newEnsemble("ens_a", t0.In(time.FixedZone("X", 3600)), "a1", "a2")
		create(t, s, acme, e)
		got, err := s.Ensemble(ctx, acme, "ens_a")
		if err != nil {
			t.Fatal(err)
		}
		want := newEnsemble("ens_a", t0, "a1", "a2") // UTC, to the nanosecond
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Ensemble =\n%+v\nwant\n%+v", got, want)
		}
		if _, err := s.Ensemble(ctx, globex, "ens_a"); !errors.Is(err, ErrNotFound) {
			t.Errorf("globex reads acme's ensemble: %v", err)
		}
		if _, err := s.Ensemble(ctx, acme, "ens_missing"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "ens_missing") {
			t.Errorf("missing ensemble: %v", err)
		}
		// The same id in another tenant is another row; in the same tenant a conflict.
		create(t, s, globex, newEnsemble("ens_a", t0, "g"))
		if err := s.CreateEnsemble(ctx, acme, e); !errors.Is(err, ErrConflict) {
			t.Errorf("duplicate ensemble: %v", err)
		}
		late := ensemble.Agent{ID: "a0", Type: "late", Weight: 0.5, CreatedAt: t0.Add(time.Hour)}
		if err := s.AddAgent(ctx, acme, "ens_a", late); err != nil {
			t.Fatal(err)
		}
		got, _ = s.Ensemble(ctx, acme, "ens_a")
		if ids := agentIDs(got.Agents); !reflect.DeepEqual(ids, []string{"a1", "a2", "a0"}) {
			t.Errorf("agents after AddAgent = %v (registration order)", ids)
		}
		if err := s.AddAgent(ctx, acme, "ens_a", late); !errors.Is(err, ErrConflict) {
			t.Errorf("duplicate agent: %v", err)
		}
		if err := s.AddAgent(ctx, globex, "ens_nope", late); !errors.Is(err, ErrNotFound) {
			t.Errorf("agent in a missing ensemble: %v", err)
		}
		if g, _ := s.Ensemble(ctx, globex, "ens_a"); !reflect.DeepEqual(agentIDs(g.Agents), []string{"g"}) {
			t.Errorf("globex's ensemble got acme's agents: %v", agentIDs(g.Agents))
		}
		// An ensemble without agents has an empty, non-nil list.
		create(t, s, acme, newEnsemble("ens_empty", t0))
		if empty, err := s.Ensemble(ctx, acme, "ens_empty"); err != nil || empty.Agents == nil || len(empty.Agents) != 0 {
			t.Errorf("ensemble without agents: %+v %v", empty, err)
		}
	})
}

func TestConformanceCreateEnsembleIsAtomic(t *testing.T) {
	eachStore(t, func(t *testing.T, s subject) {
		ctx := context.Background()
		e := newEnsemble("ens_dup", t0, "a", "b")
		e.Agents = append(e.Agents, e.Agents[0])
		if err := s.CreateEnsemble(ctx, acme, e); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), `"a"`) {
			t.Errorf("duplicate agent in create: %v", err)
		}
		if _, err := s.Ensemble(ctx, acme, "ens_dup"); !errors.Is(err, ErrNotFound) {
			t.Errorf("ensemble stored despite the failed agent: %v", err)
		}
		restore := s.failWrites(t, "INSERT", "agents", "agents are read-only")
		err := s.CreateEnsemble(ctx, acme, newEnsemble("ens_t", t0, "a"))
		if err == nil || errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "agents are read-only") {
			t.Errorf("failing agent insert: %v", err)
		}
		restore()
		if _, err := s.Ensemble(ctx, acme, "ens_t"); !errors.Is(err, ErrNotFound) {
			t.Errorf("ensemble stored despite the failed agent: %v", err)
		}
	})
}

func TestConformanceSetWeights(t *testing.T) {
	eachStore(t, func(t *testing.T, s subject) {
		ctx := context.Background()
		create(t, s, acme, newEnsemble("ens_w", t0, "a", "b"))
		create(t, s, globex, newEnsemble("ens_w", t0, "a", "b"))
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
		if err := s.SetWeights(ctx, acme, "ens_w", map[string]float64{"a": 0.25, "b": 0.75}); err != nil {
			t.Fatal(err)
		}
		if got := weights(acme); got["a"] != 0.25 || got["b"] != 0.75 {
			t.Errorf("acme weights = %v", got)
		}
		if got := weights(globex); got["a"] != 1 || got["b"] != 2 {
			t.Errorf("globex weights changed with acme's: %v", got)
		}
		err := s.SetWeights(ctx, acme, "ens_w", map[string]float64{"a": 0.5, "b": 0.5, "ghost": 0})
		if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "ghost") {
			t.Errorf("unknown agent: %v", err)
		}
		if err := s.SetWeights(ctx, acme, "ens_w", map[string]float64{"a": -1}); err == nil || errors.Is(err, ErrNotFound) {
			t.Errorf("negative weight: %v", err)
		}
		if got := weights(acme); got["a"] != 0.25 || got["b"] != 0.75 {
			t.Errorf("a failed update changed weights: %v", got)
		}
		if err := s.SetWeights(ctx, globex, "ens_nope", map[string]float64{"a": 1}); !errors.Is(err, ErrNotFound) {
			t.Errorf("missing ensemble: %v", err)
		}
	})
}

func TestConformancePaging(t *testing.T) {
	eachStore(t, func(t *testing.T, s subject) {
		ctx := context.Background()
		for i, id := range []string{"ens_3", "ens_1", "ens_2", "ens_5", "ens_4"} {
			created := t0.Add(time.Duration(i) * time.Second)
			if id == "ens_5" {
				created = t0.Add(2 * time.Second) // ties with ens_2: the id decides
			}
			create(t, s, acme, newEnsemble(id, created, "agent-"+id, "second-"+id))
			create(t, s, globex, newEnsemble("g"+id, created))
		}
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
				if ids := agentIDs(e.Agents); !reflect.DeepEqual(ids, []string{"agent-" + e.ID, "second-" + e.ID}) {
					t.Errorf("%s agents = %v", e.ID, ids)
				}
			}
			if next == "" || pages > 5 {
				break
			}
			cursor = next
		}
		if want := []string{"ens_3", "ens_1", "ens_2", "ens_5", "ens_4"}; !reflect.DeepEqual(got, want) || pages != 3 {
			t.Errorf("listed %v in %d pages, want %v in 3", got, pages, want)
		}
		if all, next, err := s.ListEnsembles(ctx, acme, "", 5); err != nil || len(all) != 5 || next != "" {
			t.Errorf("exact page: %d items, next %q, %v", len(all), next, err)
		}
		if none, next, err := s.ListEnsembles(ctx, MustTenantID("initech"), "", 5); err != nil || none == nil || len(none) != 0 || next != "" {
			t.Errorf("empty tenant: %v %q %v", none, next, err)
		}
		for _, bad := range []string{"%%%", encodeB64("v2:1:x"), encodeB64("v1:x:y")} {
			if _, _, err := s.ListEnsembles(ctx, acme, bad, 2); !errors.Is(err, ErrBadCursor) {
				t.Errorf("cursor %q: %v", bad, err)
			}
		}
	})
}

func TestConformancePredictions(t *testing.T) {
	eachStore(t, func(t *testing.T, s subject) {
		ctx := context.Background()
		create(t, s, acme, newEnsemble("ens_p", t0, "a", "b"))
		create(t, s, acme, newEnsemble("ens_q", t0, "a"))
		pred := func(id, ens string, at time.Time) ensemble.Prediction {
			return ensemble.Prediction{ID: id, EnsembleID: ens, Symbol: "BTC-USD", CreatedAt: at, Combined: ensemble.Combined{
				Signal: 0.4, Confidence: 0.7, Action: ensemble.Buy,
				Contributions: []ensemble.Contribution{{AgentID: "a", Signal: 0.5, Confidence: 0.8, Weight: 1, Contribution: 0.1 + 0.2}},
			}}
		}
		for i, id := range []string{"p1", "p2", "p3", "p4"} {
			if err := s.AddPrediction(ctx, acme, pred(id, "ens_p", t0.Add(time.Duration(i)*time.Minute))); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.AddPrediction(ctx, acme, pred("q1", "ens_q", t0)); err != nil {
			t.Fatal(err)
		}
		if err := s.AddPrediction(ctx, acme, pred("x", "ens_nope", t0)); !errors.Is(err, ErrNotFound) {
			t.Errorf("prediction for a missing ensemble: %v", err)
		}
		if err := s.AddPrediction(ctx, globex, pred("g", "ens_p", t0)); !errors.Is(err, ErrNotFound) {
			t.Errorf("globex predicts on acme's ensemble: %v", err)
		}
		if err := s.AddPrediction(ctx, acme, pred("p1", "ens_p", t0)); err == nil {
			t.Error("duplicate prediction id accepted")
		}
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
		if _, err := s.RecordOutcome(ctx, acme, "ens_q", "p3", 0.1, t0); !errors.Is(err, ErrNotFound) {
			t.Errorf("outcome through another ensemble: %v", err)
		}
		if _, err := s.RecordOutcome(ctx, globex, "ens_p", "p3", 0.1, t0); !errors.Is(err, ErrNotFound) {
			t.Errorf("globex records acme's outcome: %v", err)
		}
		first, err := s.RecordOutcome(ctx, acme, "ens_p", "p1", 0.9, t0)
		if !errors.Is(err, ErrConflict) || first.RealizedReturn == nil || *first.RealizedReturn != 0.01 {
			t.Errorf("second outcome: %v, returned %+v", err, first)
		}
		scored, err := s.ScoredPredictions(ctx, acme, "ens_p", 0)
		if err != nil {
			t.Fatal(err)
		}
		if ids := predIDs(scored); !reflect.DeepEqual(ids, []string{"p4", "p2", "p1"}) {
			t.Errorf("scored (newest first) = %v", ids)
		}
		wantP1 := pred("p1", "ens_p", t0)
		r, at := 0.01, t0.Add(time.Hour)
		wantP1.RealizedReturn, wantP1.OutcomeAt = &r, &at
		if !reflect.DeepEqual(scored[2], wantP1) {
			t.Errorf("p1 read back =\n%+v\nwant\n%+v", scored[2], wantP1)
		}
		if newest, _ := s.ScoredPredictions(ctx, acme, "ens_p", 2); !reflect.DeepEqual(predIDs(newest), []string{"p4", "p2"}) {
			t.Errorf("limit 2 = %v", predIDs(newest))
		}
		if all, err := s.TenantScoredPredictions(ctx, acme); err != nil || !reflect.DeepEqual(predIDs(all), []string{"p1", "q1", "p2", "p4"}) {
			t.Errorf("tenant scored (oldest first) = %v, %v", predIDs(all), err)
		}
		if g, err := s.TenantScoredPredictions(ctx, globex); err != nil || len(g) != 0 {
			t.Errorf("globex scored = %v %v", g, err)
		}
		if g, err := s.ScoredPredictions(ctx, globex, "ens_p", 0); err != nil || len(g) != 0 {
			t.Errorf("globex scored on acme's ensemble = %v %v", g, err)
		}
	})
}

// Of many concurrent outcomes for one prediction exactly one records.
func TestConformanceOutcomeOnce(t *testing.T) {
	eachStore(t, func(t *testing.T, s subject) {
		ctx := context.Background()
		create(t, s, acme, newEnsemble("ens_o", t0, "a"))
		if err := s.AddPrediction(ctx, acme, ensemble.Prediction{ID: "p", EnsembleID: "ens_o", CreatedAt: t0, Combined: ensemble.Combined{Action: ensemble.Hold}}); err != nil {
			t.Fatal(err)
		}
		var ok, conflict atomic.Int32
		var wg sync.WaitGroup
		for i := 0; i < 10; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				_, err := s.RecordOutcome(ctx, acme, "ens_o", "p", float64(i), t0)
				switch {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, ErrConflict):
					conflict.Add(1)
				default:
					t.Errorf("outcome %d: %v", i, err)
				}
			}(i)
		}
		wg.Wait()
		if ok.Load() != 1 || conflict.Load() != 9 {
			t.Errorf("%d recorded, %d conflicts; want 1 and 9", ok.Load(), conflict.Load())
		}
	})
}

func TestConformanceTenantAgents(t *testing.T) {
	eachStore(t, func(t *testing.T, s subject) {
		ctx := context.Background()
		create(t, s, acme, newEnsemble("ens_b", t0, "z", "a"))
		create(t, s, acme, newEnsemble("ens_a", t0, "m"))
		create(t, s, globex, newEnsemble("ens_g", t0, "secret"))
		got, err := s.TenantAgents(ctx, acme)
		if err != nil {
			t.Fatal(err)
		}
		var pairs []string
		for _, a := range got {
			pairs = append(pairs, fmt.Sprintf("%s/%s/%s/%g", a.EnsembleID, a.ID, a.Type, a.Weight))
		}
		if want := []string{"ens_a/m/type-m/1", "ens_b/a/type-a/2", "ens_b/z/type-z/1"}; !reflect.DeepEqual(pairs, want) {
			t.Errorf("TenantAgents = %v, want %v", pairs, want)
		}
		if none, err := s.TenantAgents(ctx, MustTenantID("initech")); err != nil || none == nil || len(none) != 0 {
			t.Errorf("no agents: %v %v", none, err)
		}
	})
}

func TestConformanceAccountAndTrade(t *testing.T) {
	eachStore(t, func(t *testing.T, s subject) {
		ctx := context.Background()
		empty, err := s.Account(ctx, acme)
		if err != nil || empty.CashUSD != 0 || empty.Spot == nil || empty.Perp == nil || len(empty.Spot)+len(empty.Perp) != 0 {
			t.Errorf("account before seeding = %+v, %v", empty, err)
		}
		demo := hedging.DemoAccounts()
		for _, name := range []string{"acme", "globex"} {
			if created, err := s.SeedAccount(ctx, MustTenantID(name), demo[name], t0); err != nil || !created {
				t.Fatal(created, err)
			}
		}
		if got, err := s.Account(ctx, acme); err != nil || !reflect.DeepEqual(got, demo["acme"]) {
			t.Errorf("acme account = %+v, want %+v (%v)", got, demo["acme"], err)
		}
		ex, err := s.Trade(ctx, acme, "execute", t0, func(b hedging.Account) ([]hedging.Fill, hedging.Account, error) { return nil, b, nil })
		if err != nil || len(ex.Fills) != 0 || ex.Kind != "execute" || !strings.HasPrefix(ex.ID, "exe_") {
			t.Errorf("empty trade = %+v, %v", ex, err)
		}
		ex, err = s.Trade(ctx, acme, "close", t0, closeOrders)
		if err != nil {
			t.Fatal(err)
		}
		if len(ex.Fills) != 2 || !reflect.DeepEqual(ex.Before, demo["acme"]) || ex.Kind != "close" || !ex.At.Equal(t0) {
			t.Errorf("close = %+v", ex)
		}
		after, _ := s.Account(ctx, acme)
		if !reflect.DeepEqual(after, ex.After) || after.Perp["BTC"] != 0 || after.FeesPaidUSD <= 0 {
			t.Errorf("stored %+v, execution says %+v", after, ex.After)
		}
		if g, _ := s.Account(ctx, globex); !reflect.DeepEqual(g, demo["globex"]) {
			t.Errorf("globex changed with acme's trade: %+v", g)
		}
		// Seeding again keeps the traded state.
		if created, err := s.SeedAccount(ctx, acme, demo["acme"], t0); err != nil || created {
			t.Errorf("reseed: %v %v", created, err)
		}
		if got, _ := s.Account(ctx, acme); !reflect.DeepEqual(got, after) {
			t.Errorf("reseed changed the account: %+v", got)
		}
		boom := errors.New("boom")
		if _, err := s.Trade(ctx, globex, "close", t0, func(hedging.Account) ([]hedging.Fill, hedging.Account, error) { return nil, hedging.Account{}, boom }); !errors.Is(err, boom) {
			t.Errorf("plan error: %v", err)
		}
	})
}

// A trade and an execution are one transaction each: when any of their
// writes fails, the account, positions, orders and idempotency key stay as
// they were.
func TestConformanceTradeIsAtomic(t *testing.T) {
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
			if _, err := s.Trade(ctx, globex, "close", t0, closeOrders); err == nil || !strings.Contains(err.Error(), "no writes to "+tc.table) {
				t.Errorf("%s %s failing: %v", tc.event, tc.table, err)
			}
			if _, _, err := s.ExecuteOnce(ctx, globex, "k-"+tc.table, "h", t0, closeOrders, okRender); err == nil || !strings.Contains(err.Error(), "no writes to "+tc.table) {
				t.Errorf("ExecuteOnce with %s %s failing: %v", tc.event, tc.table, err)
			}
			restore()
			if got, _ := s.Account(ctx, globex); !reflect.DeepEqual(got, demo) {
				t.Errorf("%s failing: account changed to %+v", tc.table, got)
			}
		}
		// The keys of the failed executions are free: using one now executes.
		if _, replayed, err := s.ExecuteOnce(ctx, globex, "k-orders", "h", t0, closeOrders, okRender); err != nil || replayed {
			t.Errorf("key of a failed execution: replayed=%v %v", replayed, err)
		}
		restore := s.failWrites(t, "INSERT", "perp_positions", "no perp")
		if created, err := s.SeedAccount(ctx, acme, hedging.DemoAccounts()["acme"], t0); err == nil || created {
			t.Errorf("seed with failing perp insert: %v %v", created, err)
		}
		restore()
		if got, _ := s.Account(ctx, acme); got.CashUSD != 0 || len(got.Spot) != 0 {
			t.Errorf("half-seeded account: %+v", got)
		}
	})
}

func TestConformanceExecuteOnce(t *testing.T) {
	eachStore(t, func(t *testing.T, s subject) {
		ctx := context.Background()
		demo := hedging.DemoAccounts()
		for name, acct := range demo {
			if _, err := s.SeedAccount(ctx, MustTenantID(name), acct, t0); err != nil {
				t.Fatal(err)
			}
		}
		var plans atomic.Int32
		plan := func(b hedging.Account) ([]hedging.Fill, hedging.Account, error) {
			plans.Add(1)
			return closeOrders(b)
		}
		invalid := func(b hedging.Account) ([]hedging.Fill, hedging.Account, error) {
			return hedging.Apply(b, hedging.DemoPrices, []hedging.Order{{Asset: "DOGE", Side: hedging.Sell, Quantity: 1}})
		}
		if _, _, err := s.ExecuteOnce(ctx, acme, "k1", "h1", t0, invalid, okRender); !errors.Is(err, hedging.ErrInvalidOrder) {
			t.Errorf("invalid order: %v", err)
		}
		renderErr := errors.New("render failed")
		if _, _, err := s.ExecuteOnce(ctx, acme, "k1", "h1", t0, plan, func(Execution) (Response, error) { return Response{}, renderErr }); !errors.Is(err, renderErr) {
			t.Errorf("render error: %v", err)
		}
		if got, _ := s.Account(ctx, acme); !reflect.DeepEqual(got, demo["acme"]) {
			t.Errorf("failed executions traded: %+v", got)
		}
		first, replayed, err := s.ExecuteOnce(ctx, acme, "k1", "h1", t0, plan, okRender)
		if err != nil || replayed || first.Status != 200 || first.ContentType != "application/json" || !bytes.Contains(first.Body, []byte(`"fills":2`)) {
			t.Fatalf("first = %+v %v %v", first, replayed, err)
		}
		after, _ := s.Account(ctx, acme)
		before := plans.Load()
		again, replayed, err := s.ExecuteOnce(ctx, acme, "k1", "h1", t0.Add(time.Minute), plan, okRender)
		if err != nil || !replayed || !reflect.DeepEqual(again, first) {
			t.Errorf("replay = %+v %v %v, want %+v", again, replayed, err, first)
		}
		if plans.Load() != before {
			t.Error("a replay ran the plan again")
		}
		if got, _ := s.Account(ctx, acme); !reflect.DeepEqual(got, after) {
			t.Errorf("a replay traded: %+v", got)
		}
		if _, _, err := s.ExecuteOnce(ctx, acme, "k1", "h2", t0, plan, okRender); !errors.Is(err, ErrIdempotencyMismatch) {
			t.Errorf("same key, other request: %v", err)
		}
		g, replayed, err := s.ExecuteOnce(ctx, globex, "k1", "h2", t0, plan, okRender)
		if err != nil || replayed || bytes.Equal(g.Body, first.Body) {
			t.Errorf("globex k1 = %+v %v %v", g, replayed, err)
		}
	})
}

// sellBTC opens 0.01 BTC more of the hedge: not idempotent, so running it
// twice shows in the position.
func sellBTC(b hedging.Account) ([]hedging.Fill, hedging.Account, error) {
	return hedging.Apply(b, hedging.DemoPrices, []hedging.Order{{Asset: "BTC", Side: hedging.Sell, Quantity: 0.01}})
}

// 50 concurrent executions with one Idempotency-Key: one trades, 49 replay
// its exact response.
func TestConformanceExecuteOnceConcurrent(t *testing.T) {
	eachStore(t, func(t *testing.T, s subject) {
		ctx := context.Background()
		if _, err := s.SeedAccount(ctx, acme, hedging.DemoAccounts()["acme"], t0); err != nil {
			t.Fatal(err)
		}
		const n = 50
		var plans, fresh atomic.Int32
		plan := func(b hedging.Account) ([]hedging.Fill, hedging.Account, error) {
			plans.Add(1)
			return sellBTC(b)
		}
		bodies := make([][]byte, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				<-start
				resp, replayed, err := s.ExecuteOnce(ctx, acme, "same", "h", t0, plan, okRender)
				bodies[i], errs[i] = resp.Body, err
				if err == nil && !replayed {
					fresh.Add(1)
				}
			}(i)
		}
		close(start)
		wg.Wait()
		for i := range bodies {
			if errs[i] != nil || !bytes.Equal(bodies[i], bodies[0]) {
				t.Errorf("call %d: %v %s", i, errs[i], bodies[i])
			}
		}
		got, _ := s.Account(ctx, acme)
		t.Logf("%s: %d concurrent ExecuteOnce with one key: %d executed, plan ran %d times, BTC hedge %v -> %v",
			s.name, n, fresh.Load(), plans.Load(), hedging.DemoAccounts()["acme"].Perp["BTC"], got.Perp["BTC"])
		if fresh.Load() != 1 || plans.Load() != 1 {
			t.Errorf("%d calls executed and the plan ran %d times, want 1 and 1", fresh.Load(), plans.Load())
		}
		if got.Perp["BTC"] != -2.41 {
			t.Errorf("BTC hedge %v, want -2.41 (one sell of 0.01)", got.Perp["BTC"])
		}
	})
}

// Concurrent executions with different keys of one tenant each trade, and
// none is lost: the trade reads and writes the account under a lock.
func TestConformanceConcurrentTradesLoseNothing(t *testing.T) {
	eachStore(t, func(t *testing.T, s subject) {
		ctx := context.Background()
		if _, err := s.SeedAccount(ctx, acme, hedging.DemoAccounts()["acme"], t0); err != nil {
			t.Fatal(err)
		}
		const n = 20
		var wg sync.WaitGroup
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				if _, replayed, err := s.ExecuteOnce(ctx, acme, fmt.Sprintf("k%d", i), "h", t0, sellBTC, okRender); err != nil || replayed {
					t.Errorf("execution %d: replayed=%v %v", i, replayed, err)
				}
			}(i)
		}
		wg.Wait()
		got, _ := s.Account(ctx, acme)
		if want := hedging.RoundQty(-2.4 - n*0.01); hedging.RoundQty(got.Perp["BTC"]) != want {
			t.Errorf("BTC hedge after %d sells of 0.01: %v, want %v", n, got.Perp["BTC"], want)
		}
	})
}

func TestConformanceZeroTenant(t *testing.T) {
	eachStore(t, func(t *testing.T, s subject) {
		var z TenantID
		nop := func(b hedging.Account) ([]hedging.Fill, hedging.Account, error) { return nil, b, nil }
		for name, call := range interfaceCalls(context.Background(), s, z, nop) {
			if err := call(); !errors.Is(err, ErrNoTenant) {
				t.Errorf("%s: %v, want ErrNoTenant", name, err)
			}
		}
	})
}

func TestConformanceClosedStore(t *testing.T) {
	eachStore(t, func(t *testing.T, s subject) {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		nop := func(b hedging.Account) ([]hedging.Fill, hedging.Account, error) { return nil, b, nil }
		for name, call := range interfaceCalls(context.Background(), s, acme, nop) {
			if err := call(); err == nil || !strings.Contains(err.Error(), "store:") || !strings.Contains(err.Error(), "closed") {
				t.Errorf("%s on a closed store: %v", name, err)
			}
		}
		if h := s.Store.(HealthChecker).Health(context.Background()); h.Status != "unavailable" || h.Driver != s.name || h.Error == "" {
			t.Errorf("health of a closed store: %+v", h)
		}
	})
}

func TestConformanceHealth(t *testing.T) {
	eachStore(t, func(t *testing.T, s subject) {
		h := s.Store.(HealthChecker).Health(context.Background())
		if h.Status != "ok" || h.Driver != s.name || h.Error != "" {
			t.Errorf("health = %+v", h)
		}
		if (h.Pool != nil) != (s.name == "postgres") {
			t.Errorf("pool report = %+v", h.Pool)
		}
	})
}

// interfaceCalls calls every Store method for tenant t.
func interfaceCalls(ctx context.Context, s Store, t TenantID, plan TradePlan) map[string]func() error {
	e := newEnsemble("ens_z", t0, "a")
	return map[string]func() error{
		"CreateEnsemble": func() error { return s.CreateEnsemble(ctx, t, e) },
		"Ensemble":       func() error { _, err := s.Ensemble(ctx, t, "ens_z"); return err },
		"ListEnsembles":  func() error { _, _, err := s.ListEnsembles(ctx, t, "", 10); return err },
		"AddAgent":       func() error { return s.AddAgent(ctx, t, "ens_z", e.Agents[0]) },
		"SetWeights":     func() error { return s.SetWeights(ctx, t, "ens_z", map[string]float64{"a": 1}) },
		"AddPrediction": func() error {
			return s.AddPrediction(ctx, t, ensemble.Prediction{ID: "p", EnsembleID: "ens_z", Combined: ensemble.Combined{Action: ensemble.Hold}})
		},
		"RecordOutcome":           func() error { _, err := s.RecordOutcome(ctx, t, "ens_z", "p", 0, t0); return err },
		"ScoredPredictions":       func() error { _, err := s.ScoredPredictions(ctx, t, "ens_z", 0); return err },
		"TenantScoredPredictions": func() error { _, err := s.TenantScoredPredictions(ctx, t); return err },
		"TenantAgents":            func() error { _, err := s.TenantAgents(ctx, t); return err },
		"Account":                 func() error { _, err := s.Account(ctx, t); return err },
		"SeedAccount":             func() error { _, err := s.SeedAccount(ctx, t, hedging.DemoAccounts()["acme"], t0); return err },
		"Trade":                   func() error { _, err := s.Trade(ctx, t, "close", t0, plan); return err },
		"ExecuteOnce":             func() error { _, _, err := s.ExecuteOnce(ctx, t, "k", "h", t0, plan, okRender); return err },
	}
}
