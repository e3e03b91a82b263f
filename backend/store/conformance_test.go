package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"reflect"
	"regexp"
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
	// count runs a count(*) query on the database itself, outside the
	// store (and, on PostgreSQL, outside row-level security).
	count func(t *testing.T, query string, args ...any) int
}

// eachStore runs fn as a subtest per store, each on a fresh database.
func eachStore(t *testing.T, fn func(t *testing.T, s subject)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) { fn(t, openSQLiteSubject(t)) })
	t.Run("postgres", func(t *testing.T) { fn(t, openPostgresSubject(t)) })
}

// dollarParam is a PostgreSQL placeholder; SQLite's count takes ?.
var dollarParam = regexp.MustCompile(`\$[0-9]+`)

func openSQLiteSubject(t *testing.T) subject {
	s, err := OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "backend.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return subject{Store: s, name: "sqlite", failWrites: func(t *testing.T, event, table, msg string) func() {
		exec(t, s, fmt.Sprintf(`CREATE TRIGGER fail BEFORE %s ON %s BEGIN SELECT RAISE(ABORT, '%s'); END`, event, table, msg))
		return func() { exec(t, s, `DROP TRIGGER fail`) }
	}, count: func(t *testing.T, q string, args ...any) int {
		return count(t, s, dollarParam.ReplaceAllString(q, "?"), args...)
	}}
}

// openPostgres opens the PostgreSQL store on a database of t's own.
func openPostgres(t *testing.T) (*Postgres, *pgtest.DB) {
	t.Helper()
	db := pgtest.New(t)
	p, err := OpenPostgres(context.Background(), db.RuntimeURL(t), PostgresOptions{MigrateURL: db.URL})
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

// adminCount runs a count(*) query as the admin user.
func adminCount(t *testing.T, db *pgtest.DB, q string, args ...any) int {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, db.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close(ctx) }()
	var n int
	if err := conn.QueryRow(ctx, q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
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
	}, count: func(t *testing.T, q string, args ...any) int {
		return adminCount(t, db, q, args...)
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
		if err := s.AddAgent(ctx, acme, "ens_a", late, 100); err != nil {
			t.Fatal(err)
		}
		got, _ = s.Ensemble(ctx, acme, "ens_a")
		if ids := agentIDs(got.Agents); !reflect.DeepEqual(ids, []string{"a1", "a2", "a0"}) {
			t.Errorf("agents after AddAgent = %v (registration order)", ids)
		}
		if err := s.AddAgent(ctx, acme, "ens_a", late, 100); !errors.Is(err, ErrConflict) {
			t.Errorf("duplicate agent: %v", err)
		}
		if err := s.AddAgent(ctx, globex, "ens_nope", late, 100); !errors.Is(err, ErrNotFound) {
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
		w, err := s.Performance(ctx, acme, "ens_p", 50)
		if err != nil {
			t.Fatal(err)
		}
		// p1, p2, p4 scored buys; returns 0.01, 0.02, 0.03 (p4 got the third).
		if e := w.Ensemble; w.Predictions != 3 || e.Scored != 3 || e.Directional != 3 || e.Hits != 3 || math.Abs(e.Sum-0.06) > 1e-12 || math.Abs(e.SumSquares-0.0014) > 1e-12 {
			t.Errorf("performance = %+v", w)
		}
		if w, err := s.Performance(ctx, acme, "ens_p", 2); err != nil || w.Predictions != 2 || math.Abs(w.Ensemble.Sum-0.05) > 1e-12 {
			t.Errorf("lookback 2 (p4, p2) = %+v %v", w, err)
		}
		if _, err := s.Performance(ctx, globex, "ens_p", 50); !errors.Is(err, ErrNotFound) {
			t.Errorf("globex performance on acme's ensemble: %v", err)
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

func TestConformanceRankings(t *testing.T) {
	eachStore(t, func(t *testing.T, s subject) {
		ctx := context.Background()
		create(t, s, acme, newEnsemble("ens_1", t0, "a"))
		create(t, s, acme, newEnsemble("ens_2", t0, "a", "b"))
		create(t, s, globex, newEnsemble("ens_g", t0, "secret"))
		predict(t, s, acme, "ens_1", "x1", t0, ensemble.Buy, 0.05, map[string]float64{"a": 1})
		predict(t, s, acme, "ens_1", "x2", t0.Add(time.Minute), ensemble.Buy, 0.01, map[string]float64{"a": 1})
		predict(t, s, acme, "ens_2", "y1", t0, ensemble.Sell, 0.02, map[string]float64{"a": -1, "b": 1})
		got, err := s.Rankings(ctx, acme, 1)
		if err != nil {
			t.Fatal(err)
		}
		var rows []string
		for _, g := range got {
			rows = append(rows, fmt.Sprintf("%s/%s scored=%d hits=%d sum=%.4f", g.EnsembleID, g.ID, g.Tally.Scored, g.Tally.Hits, g.Tally.Sum))
		}
		// lookback 1: ens_1's window is x2 only; ens_2's is y1.
		want := []string{"ens_1/a scored=1 hits=1 sum=0.0100", "ens_2/a scored=1 hits=0 sum=-0.0200", "ens_2/b scored=1 hits=1 sum=0.0200"}
		if !reflect.DeepEqual(rows, want) {
			t.Errorf("rankings = %v, want %v", rows, want)
		}
		if none, err := s.Rankings(ctx, MustTenantID("initech"), 10); err != nil || none == nil || len(none) != 0 {
			t.Errorf("no agents: %v %v", none, err)
		}
	})
}

// predict stores a prediction of ens with the given action and agent
// signals, then its outcome r.
func predict(t *testing.T, s Store, tenant TenantID, ens, id string, at time.Time, action ensemble.Action, r float64, signals map[string]float64) {
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

// The SQL tallies equal ensemble.Tally over the same window, on both stores.
func TestConformancePerformanceWindow(t *testing.T) {
	eachStore(t, func(t *testing.T, s subject) {
		ctx := context.Background()
		create(t, s, acme, newEnsemble("ens_w", t0, "a", "b", "c"))
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
			predict(t, s, acme, "ens_w", fmt.Sprintf("p%d", i), t0.Add(time.Duration(i)*time.Minute), c.action, c.r, c.signals)
		}
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
			if w.Lookback != lookback || w.Predictions != min(lookback, 4) || !tallyEqual(w.Ensemble, want) {
				t.Errorf("lookback %d: %+v, want ensemble %+v", lookback, w, want)
			}
			var ids []string
			for _, at := range w.Agents {
				ids = append(ids, at.ID)
				if !tallyEqual(at.Tally, *wantAgents[at.ID]) || at.EnsembleID != "ens_w" {
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
	})
}

// The agent cap holds under concurrent registrations: count and insert are
// one transaction.
func TestConformanceAddAgentCap(t *testing.T) {
	eachStore(t, func(t *testing.T, s subject) {
		ctx := context.Background()
		create(t, s, acme, newEnsemble("ens_c", t0, "a", "b"))
		const cap, tries = 5, 12
		var added, limited atomic.Int32
		var wg sync.WaitGroup
		for i := 0; i < tries; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				err := s.AddAgent(ctx, acme, "ens_c", ensemble.Agent{ID: fmt.Sprintf("x%02d", i), Type: "t", Weight: 1, CreatedAt: t0}, cap)
				switch {
				case err == nil:
					added.Add(1)
				case errors.Is(err, ErrLimit):
					limited.Add(1)
				default:
					t.Errorf("agent %d: %v", i, err)
				}
			}(i)
		}
		wg.Wait()
		e, _ := s.Ensemble(ctx, acme, "ens_c")
		if added.Load() != cap-2 || limited.Load() != tries-(cap-2) || len(e.Agents) != cap {
			t.Errorf("%d added, %d refused, %d agents; want %d, %d, %d", added.Load(), limited.Load(), len(e.Agents), cap-2, tries-(cap-2), cap)
		}
		if err := s.AddAgent(ctx, acme, "ens_none", ensemble.Agent{ID: "x", Type: "t"}, cap); !errors.Is(err, ErrNotFound) {
			t.Errorf("missing ensemble: %v", err)
		}
	})
}

func TestConformanceSetAccount(t *testing.T) {
	eachStore(t, func(t *testing.T, s subject) {
		ctx := context.Background()
		initech := MustTenantID("initech")
		cash := 5000.0
		got, err := s.SetAccount(ctx, initech, AccountSet{Spot: map[string]float64{"BTC": 2.5, "ETH": 10}, CashUSD: &cash}, t0)
		want := hedging.Account{Spot: map[string]float64{"BTC": 2.5, "ETH": 10}, Perp: map[string]float64{}, CashUSD: 5000}
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("new account = %+v, want %+v (%v)", got, want, err)
		}
		if _, err := s.Trade(ctx, initech, "execute", t0, func(b hedging.Account) ([]hedging.Fill, hedging.Account, error) {
			return hedging.Apply(b, hedging.DemoPrices, []hedging.Order{{Asset: "BTC", Side: hedging.Sell, Quantity: 1}})
		}); err != nil {
			t.Fatal(err)
		}
		got, err = s.SetAccount(ctx, initech, AccountSet{Spot: map[string]float64{"BTC": 3, "ETH": 0}}, t0)
		want = hedging.Account{Spot: map[string]float64{"BTC": 3}, Perp: map[string]float64{"BTC": -1}, CashUSD: 4970, FeesPaidUSD: 30}
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("changed account = %+v, want %+v (%v)", got, want, err)
		}
		if read, _ := s.Account(ctx, initech); !reflect.DeepEqual(read, want) {
			t.Errorf("read back = %+v", read)
		}
		if _, err := s.Account(ctx, acme); !errors.Is(err, ErrNotFound) {
			t.Errorf("acme got an account from initech's set: %v", err)
		}
	})
}

func TestConformanceIdempotencyExpiryAndSweep(t *testing.T) {
	eachStore(t, func(t *testing.T, s subject) {
		ctx := context.Background()
		for _, tn := range []TenantID{acme, globex} {
			if _, err := s.SeedAccount(ctx, tn, hedging.DemoAccounts()[tn.String()], t0); err != nil {
				t.Fatal(err)
			}
		}
		for _, c := range []struct {
			tn  TenantID
			key string
			at  time.Time
		}{{acme, "k1", t0}, {globex, "k1", t0}, {acme, "k2", t0.Add(2 * time.Hour)}} {
			if _, replayed, err := s.ExecuteOnce(ctx, c.tn, c.key, "h", c.at, c.at.Add(-24*time.Hour), sellBTC, okRender); err != nil || replayed {
				t.Fatal(replayed, err)
			}
		}
		if _, replayed, err := s.ExecuteOnce(ctx, acme, "k1", "h", t0.Add(time.Hour), t0.Add(-23*time.Hour), sellBTC, okRender); err != nil || !replayed {
			t.Errorf("retry within retention: replayed=%v %v", replayed, err)
		}
		if _, replayed, err := s.ExecuteOnce(ctx, acme, "k1", "other", t0.Add(25*time.Hour), t0.Add(time.Hour), sellBTC, okRender); err != nil || replayed {
			t.Errorf("expired key: replayed=%v %v, want a fresh claim", replayed, err)
		}
		if n := s.count(t, `SELECT count(*) FROM orders WHERE tenant_id = $1`, "acme"); n != 3 {
			t.Errorf("acme orders = %d, want 3 (k1, k2, k1 again after expiry)", n)
		}
		// The sweep crosses tenants: it deletes globex's k1 only.
		if n, err := s.SweepIdempotencyKeys(ctx, t0.Add(time.Hour), 10); err != nil || n != 1 {
			t.Errorf("sweep = %d, %v; want globex's k1 only", n, err)
		}
		if left := s.count(t, `SELECT count(*) FROM idempotency_keys WHERE tenant_id = $1`, "globex"); left != 0 {
			t.Errorf("globex keys left: %d", left)
		}
		if left := s.count(t, `SELECT count(*) FROM idempotency_keys WHERE tenant_id = $1`, "acme"); left != 2 {
			t.Errorf("acme keys left: %d, want 2", left)
		}
		if n, err := s.SweepIdempotencyKeys(ctx, t0.Add(100*time.Hour), 1); err != nil || n != 1 {
			t.Errorf("sweep with limit 1 = %d, %v", n, err)
		}
	})
}

func TestConformanceAccountAndTrade(t *testing.T) {
	eachStore(t, func(t *testing.T, s subject) {
		ctx := context.Background()
		if _, err := s.Account(ctx, acme); !errors.Is(err, ErrNotFound) {
			t.Errorf("account before seeding: %v, want ErrNotFound", err)
		}
		planned := false
		if _, err := s.Trade(ctx, acme, "close", t0, func(b hedging.Account) ([]hedging.Fill, hedging.Account, error) { planned = true; return nil, b, nil }); !errors.Is(err, ErrNotFound) || planned {
			t.Errorf("trade without an account: %v (plan called: %v)", err, planned)
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
		if err != nil || len(ex.Fills) != 0 || ex.Kind != "execute" || ex.ID != "" {
			t.Errorf("empty trade = %+v, %v", ex, err)
		}
		ex, err = s.Trade(ctx, acme, "close", t0, closeOrders)
		if err != nil {
			t.Fatal(err)
		}
		if len(ex.Fills) != 2 || !strings.HasPrefix(ex.ID, "exe_") || !reflect.DeepEqual(ex.Before, demo["acme"]) || ex.Kind != "close" || !ex.At.Equal(t0) {
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
			if _, _, err := s.ExecuteOnce(ctx, globex, "k-"+tc.table, "h", t0, past, closeOrders, okRender); err == nil || !strings.Contains(err.Error(), "no writes to "+tc.table) {
				t.Errorf("ExecuteOnce with %s %s failing: %v", tc.event, tc.table, err)
			}
			restore()
			if got, _ := s.Account(ctx, globex); !reflect.DeepEqual(got, demo) {
				t.Errorf("%s failing: account changed to %+v", tc.table, got)
			}
		}
		// The keys of the failed executions are free: using one now executes.
		if _, replayed, err := s.ExecuteOnce(ctx, globex, "k-orders", "h", t0, past, closeOrders, okRender); err != nil || replayed {
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
		if _, _, err := s.ExecuteOnce(ctx, acme, "k1", "h1", t0, past, invalid, okRender); !errors.Is(err, hedging.ErrInvalidOrder) {
			t.Errorf("invalid order: %v", err)
		}
		renderErr := errors.New("render failed")
		if _, _, err := s.ExecuteOnce(ctx, acme, "k1", "h1", t0, past, plan, func(Execution) (Response, error) { return Response{}, renderErr }); !errors.Is(err, renderErr) {
			t.Errorf("render error: %v", err)
		}
		if got, _ := s.Account(ctx, acme); !reflect.DeepEqual(got, demo["acme"]) {
			t.Errorf("failed executions traded: %+v", got)
		}
		first, replayed, err := s.ExecuteOnce(ctx, acme, "k1", "h1", t0, past, plan, okRender)
		if err != nil || replayed || first.Status != 200 || first.ContentType != "application/json" || !bytes.Contains(first.Body, []byte(`"fills":2`)) {
			t.Fatalf("first = %+v %v %v", first, replayed, err)
		}
		after, _ := s.Account(ctx, acme)
		before := plans.Load()
		again, replayed, err := s.ExecuteOnce(ctx, acme, "k1", "h1", t0.Add(time.Minute), past, plan, okRender)
		if err != nil || !replayed || !reflect.DeepEqual(again, first) {
			t.Errorf("replay = %+v %v %v, want %+v", again, replayed, err, first)
		}
		if plans.Load() != before {
			t.Error("a replay ran the plan again")
		}
		if got, _ := s.Account(ctx, acme); !reflect.DeepEqual(got, after) {
			t.Errorf("a replay traded: %+v", got)
		}
		if _, _, err := s.ExecuteOnce(ctx, acme, "k1", "h2", t0, past, plan, okRender); !errors.Is(err, ErrIdempotencyMismatch) {
			t.Errorf("same key, other request: %v", err)
		}
		g, replayed, err := s.ExecuteOnce(ctx, globex, "k1", "h2", t0, past, plan, okRender)
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
				resp, replayed, err := s.ExecuteOnce(ctx, acme, "same", "h", t0, past, plan, okRender)
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
				if _, replayed, err := s.ExecuteOnce(ctx, acme, fmt.Sprintf("k%d", i), "h", t0, past, sellBTC, okRender); err != nil || replayed {
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
		if h := s.Health(context.Background()); h.Status != "unavailable" || h.Driver != s.name || h.Error == "" {
			t.Errorf("health of a closed store: %+v", h)
		}
	})
}

func TestConformanceHealth(t *testing.T) {
	eachStore(t, func(t *testing.T, s subject) {
		h := s.Health(context.Background())
		if h.Status != "ok" || h.Driver != s.name || h.Error != "" {
			t.Errorf("health = %+v", h)
		}
		if (h.Pool != nil) != (s.name == "postgres") {
			t.Errorf("pool report = %+v", h.Pool)
		}
	})
}

// past is an expiry cut before every test time: no key has expired.
var past = t0.Add(-24 * time.Hour)

// interfaceCalls calls every Store method for tenant t.
func interfaceCalls(ctx context.Context, s Store, t TenantID, plan TradePlan) map[string]func() error {
	e := newEnsemble("ens_z", t0, "a")
	calls := map[string]func() error{
		"CreateEnsemble": func() error { return s.CreateEnsemble(ctx, t, e) },
		"Ensemble":       func() error { _, err := s.Ensemble(ctx, t, "ens_z"); return err },
		"ListEnsembles":  func() error { _, _, err := s.ListEnsembles(ctx, t, "", 10); return err },
		"AddAgent":       func() error { return s.AddAgent(ctx, t, "ens_z", e.Agents[0], 10) },
		"SetWeights":     func() error { return s.SetWeights(ctx, t, "ens_z", map[string]float64{"a": 1}) },
		"AddPrediction": func() error {
			return s.AddPrediction(ctx, t, ensemble.Prediction{ID: "p", EnsembleID: "ens_z", Combined: ensemble.Combined{Action: ensemble.Hold}})
		},
		"RecordOutcome": func() error { _, err := s.RecordOutcome(ctx, t, "ens_z", "p", 0, t0); return err },
		"Performance":   func() error { _, err := s.Performance(ctx, t, "ens_z", 10); return err },
		"Rankings":      func() error { _, err := s.Rankings(ctx, t, 10); return err },
		"Account":       func() error { _, err := s.Account(ctx, t); return err },
		"SeedAccount":   func() error { _, err := s.SeedAccount(ctx, t, hedging.DemoAccounts()["acme"], t0); return err },
		"SetAccount":    func() error { _, err := s.SetAccount(ctx, t, AccountSet{}, t0); return err },
		"Trade":         func() error { _, err := s.Trade(ctx, t, "close", t0, plan); return err },
		"ExecuteOnce":   func() error { _, _, err := s.ExecuteOnce(ctx, t, "k", "h", t0, past, plan, okRender); return err },
	}
	if !t.IsZero() { // the sweep is the one call without a tenant
		calls["SweepIdempotencyKeys"] = func() error { _, err := s.SweepIdempotencyKeys(ctx, t0, 10); return err }
	}
	return calls
}

// The sweep never deletes a record younger than 24 h, whatever it is
// asked: on PostgreSQL the runtime role may call it.
func TestConformanceSweepClamps(t *testing.T) {
	eachStore(t, func(t *testing.T, s subject) {
		ctx := context.Background()
		now := time.Now()
		if _, err := s.SeedAccount(ctx, acme, hedging.DemoAccounts()["acme"], now); err != nil {
			t.Fatal(err)
		}
		for i, at := range []time.Time{now.Add(-time.Hour), now.Add(-23 * time.Hour), now.Add(-25 * time.Hour)} {
			if _, _, err := s.ExecuteOnce(ctx, acme, fmt.Sprintf("k%d", i), "h", at, at.Add(-time.Hour), sellBTC, okRender); err != nil {
				t.Fatal(err)
			}
		}
		if n, err := s.SweepIdempotencyKeys(ctx, now.Add(1000*time.Hour), 100); err != nil || n != 1 {
			t.Errorf("sweep asked for everything: %d %v, want only the 25 h old record", n, err)
		}
		if left := s.count(t, `SELECT count(*) FROM idempotency_keys WHERE tenant_id = $1`, "acme"); left != 2 {
			t.Errorf("%d records left, want 2", left)
		}
	})
}
