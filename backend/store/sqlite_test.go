package store

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/backend/ensemble"
	"github.com/tenantgate/tenantgate/backend/hedging"
)

func open(t *testing.T) (*SQLite, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "nested", "backend.db")
	s, err := OpenSQLite(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, path
}

func TestParseTenantID(t *testing.T) {
	for _, ok := range []string{"acme", "a", "A.b_c-9", strings.Repeat("x", 64)} {
		if _, err := ParseTenantID(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", strings.Repeat("x", 65), "a b", "a/b", "ä", "a\x00"} {
		if _, err := ParseTenantID(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// Every table but schema_migrations carries tenant_id, and every index
// (primary keys included) starts with it.
func TestSchemaIsTenantScoped(t *testing.T) {
	s, _ := open(t)
	ctx := context.Background()
	rows, err := s.r.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name != 'schema_migrations'`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		_ = rows.Scan(&n)
		tables = append(tables, n)
	}
	_ = rows.Close()
	if len(tables) < 7 {
		t.Fatalf("tables = %v", tables)
	}
	for _, tbl := range tables {
		var first string
		if err := s.r.QueryRowContext(ctx, `SELECT name FROM pragma_table_info(?) WHERE cid = 0`, tbl).Scan(&first); err != nil {
			t.Fatal(err)
		}
		if first != "tenant_id" {
			t.Errorf("table %s: first column %q, want tenant_id", tbl, first)
		}
		irows, err := s.r.QueryContext(ctx, `SELECT name FROM pragma_index_list(?)`, tbl)
		if err != nil {
			t.Fatal(err)
		}
		var indexes []string
		for irows.Next() {
			var n string
			_ = irows.Scan(&n)
			indexes = append(indexes, n)
		}
		_ = irows.Close()
		if len(indexes) == 0 {
			t.Errorf("table %s has no index", tbl)
		}
		for _, idx := range indexes {
			var col string
			if err := s.r.QueryRowContext(ctx, `SELECT name FROM pragma_index_info(?) WHERE seqno = 0`, idx).Scan(&col); err != nil {
				t.Fatal(err)
			}
			if col != "tenant_id" {
				t.Errorf("index %s on %s starts with %q, want tenant_id", idx, tbl, col)
			}
		}
	}
}

func TestPragmasAndMigrations(t *testing.T) {
	s, path := open(t)
	ctx := context.Background()
	for pragma, want := range map[string]string{"journal_mode": "wal", "synchronous": "2", "foreign_keys": "1", "busy_timeout": "10000"} {
		var got string
		if err := s.w.QueryRowContext(ctx, "PRAGMA "+pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("writer %s = %s, want %s", pragma, got, want)
		}
		if err := s.r.QueryRowContext(ctx, "PRAGMA "+pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("reader %s = %s, want %s", pragma, got, want)
		}
	}
	// Reopening applies nothing twice.
	_ = s.Close()
	s2, err := OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s2.Close() }()
	var n int
	if err := s2.r.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil || n != 2 {
		t.Errorf("schema_migrations rows = %d, %v (want one per migration file)", n, err)
	}
}

func TestZeroTenantIsRefused(t *testing.T) {
	s, _ := open(t)
	ctx := context.Background()
	var zero TenantID
	if _, err := s.Ensemble(ctx, zero, "x"); !errors.Is(err, ErrNoTenant) {
		t.Errorf("Ensemble: %v", err)
	}
	if _, _, err := s.ListEnsembles(ctx, zero, "", 10); !errors.Is(err, ErrNoTenant) {
		t.Errorf("ListEnsembles: %v", err)
	}
	if _, err := s.Account(ctx, zero); !errors.Is(err, ErrNoTenant) {
		t.Errorf("Account: %v", err)
	}
}

func TestStoreScoping(t *testing.T) {
	s, _ := open(t)
	ctx := context.Background()
	acme, globex := MustTenantID("acme"), MustTenantID("globex")
	now := time.Now()
	e := ensemble.Ensemble{ID: "ens_1", Name: "n", Method: ensemble.Majority, Config: ensemble.Config{Threshold: 0.1, MinAgents: 1}, CreatedAt: now,
		Agents: []ensemble.Agent{{ID: "a", Type: "t", Weight: 1, CreatedAt: now}}}
	if err := s.CreateEnsemble(ctx, acme, e); err != nil {
		t.Fatal(err)
	}
	// The same id in another tenant is another row.
	if err := s.CreateEnsemble(ctx, globex, e); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateEnsemble(ctx, acme, e); !errors.Is(err, ErrConflict) {
		t.Errorf("duplicate: %v", err)
	}
	if err := s.AddAgent(ctx, acme, "ens_1", e.Agents[0], 100); !errors.Is(err, ErrConflict) {
		t.Errorf("duplicate agent: %v", err)
	}
	if err := s.AddAgent(ctx, globex, "ens_nope", e.Agents[0], 100); !errors.Is(err, ErrNotFound) {
		t.Errorf("agent in missing ensemble: %v", err)
	}
	p := ensemble.Prediction{ID: "prd_1", EnsembleID: "ens_1", Symbol: "BTC", Combined: ensemble.Combined{Signal: 1, Action: ensemble.Buy}, CreatedAt: now}
	if err := s.AddPrediction(ctx, acme, p); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RecordOutcome(ctx, globex, "ens_1", "prd_1", 0.1, now); !errors.Is(err, ErrNotFound) {
		t.Errorf("globex outcome on acme prediction: %v", err)
	}
	if _, err := s.RecordOutcome(ctx, acme, "ens_1", "prd_1", 0.1, now); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RecordOutcome(ctx, acme, "ens_1", "prd_1", 0.2, now); !errors.Is(err, ErrConflict) {
		t.Errorf("second outcome: %v", err)
	}
	// globex's own ens_1 has no scored prediction: acme's outcome is not in it.
	if got, _ := s.Rankings(ctx, globex, 50); len(got) != 1 || got[0].Tally.Scored != 0 {
		t.Errorf("globex rankings = %+v", got)
	}
	if got, _ := s.Performance(ctx, globex, "ens_1", 50); got.Predictions != 0 || got.Agents[0].Tally.Scored != 0 {
		t.Errorf("globex window = %+v", got)
	}
	if got, _ := s.Performance(ctx, acme, "ens_1", 50); got.Predictions != 1 || got.Ensemble.Sum != 0.1 {
		t.Errorf("acme window = %+v", got)
	}
	// Seeding is idempotent and keeps traded state.
	acct := hedging.DemoAccounts()["acme"]
	if created, err := s.SeedAccount(ctx, acme, acct, now); err != nil || !created {
		t.Fatal(created, err)
	}
	if _, err := s.Trade(ctx, acme, "close", now, func(b hedging.Account) ([]hedging.Fill, hedging.Account, error) {
		return hedging.Apply(b, hedging.DemoPrices, hedging.CloseOrders(b))
	}); err != nil {
		t.Fatal(err)
	}
	if created, err := s.SeedAccount(ctx, acme, acct, now); err != nil || created {
		t.Fatal(created, err)
	}
	got, _ := s.Account(ctx, acme)
	if got.Perp["BTC"] != 0 || got.Spot["BTC"] != 2.5 {
		t.Errorf("after reseed: %+v", got)
	}
}
