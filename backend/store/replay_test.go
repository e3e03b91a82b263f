package store

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/backend/ensemble"
	"github.com/tenantgate/tenantgate/backend/hedging"
	"github.com/tenantgate/tenantgate/backend/store/pgtest"
)

func newSpend(jti string) *Spend { return &Spend{JTI: jti, Until: time.Now().Add(time.Minute)} }

func TestMemoryLedger(t *testing.T) {
	l := NewMemoryLedger(2)
	now := time.Unix(1000, 0)
	l.now = func() time.Time { return now }
	spend := func(jti string, ttl time.Duration) error {
		return l.Spend(&Spend{JTI: jti, Until: now.Add(ttl)})
	}
	if err := spend("a", time.Second); err != nil {
		t.Fatal(err)
	}
	if err := spend("a", time.Second); !errors.Is(err, ErrReplayed) {
		t.Fatalf("second use: %v, want ErrReplayed", err)
	}
	if err := spend("b", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := spend("c", time.Minute); !errors.Is(err, ErrLedgerFull) {
		t.Fatalf("third live entry in a ledger of 2: %v, want ErrLedgerFull", err)
	}
	now = now.Add(2 * time.Second) // "a" has expired: its slot is free again
	if err := spend("c", time.Minute); err != nil {
		t.Fatalf("after a's expiry: %v", err)
	}
	if l.Len() != 2 {
		t.Errorf("len %d, want 2 (b, c)", l.Len())
	}
	if err := spend("b", time.Minute); !errors.Is(err, ErrReplayed) {
		t.Errorf("b again: %v", err)
	}
	if NewMemoryLedger(0).max != DefaultLedgerSize {
		t.Error("default size")
	}
}

// Of 50 concurrent spends of one jti exactly one succeeds, on both stores.
func TestConformanceSpendAssertionOnce(t *testing.T) {
	eachStore(t, func(t *testing.T, s subject) {
		var wg sync.WaitGroup
		errs := make([]error, 50)
		for i := range errs {
			wg.Add(1)
			go func() { defer wg.Done(); errs[i] = s.SpendAssertion(context.Background(), newSpend("jti-concurrent")) }()
		}
		wg.Wait()
		ok := 0
		for _, err := range errs {
			switch {
			case err == nil:
				ok++
			case !errors.Is(err, ErrReplayed):
				t.Errorf("unexpected error %v", err)
			}
		}
		if ok != 1 {
			t.Errorf("%d of 50 spends succeeded, want 1", ok)
		}
	})
}

// On PostgreSQL a request's spend rides in its own transaction: recorded
// with a read, rolled back with a failed write, refused for a replay before
// any write commits, and a request can re-spend its own ambiguous spend.
func TestPostgresSpendInTransaction(t *testing.T) {
	p, db := openPostgres(t)
	ctx := context.Background()
	acme := MustTenantID("acme")
	if _, err := p.SeedAccount(ctx, acme, hedging.Account{CashUSD: 100}, time.Now()); err != nil {
		t.Fatal(err)
	}
	first := newSpend("jti-read")
	if _, err := p.Account(WithSpend(ctx, first), acme); err != nil || !first.Done() {
		t.Fatalf("read with a spend: %v done=%v", err, first.Done())
	}
	if _, err := p.Account(WithSpend(ctx, newSpend("jti-read")), acme); !errors.Is(err, ErrReplayed) {
		t.Fatalf("replayed read: %v", err)
	}
	// A write with a replayed jti stores nothing.
	e := ensemble.Ensemble{ID: "ens_r", Name: "r", Method: ensemble.Majority, CreatedAt: time.Now()}
	if err := p.CreateEnsemble(WithSpend(ctx, newSpend("jti-read")), acme, e); !errors.Is(err, ErrReplayed) {
		t.Fatalf("replayed create: %v", err)
	}
	if n := adminCount(t, db, `SELECT count(*) FROM ensembles`); n != 0 {
		t.Errorf("a replayed create stored %d ensembles", n)
	}
	// A transaction that fails rolls its spend back: the request spends it
	// afterwards, and only it may.
	failed := newSpend("jti-failed")
	if err := p.SetWeights(WithSpend(ctx, failed), acme, "ens_missing", map[string]float64{"a": 1}); !errors.Is(err, ErrNotFound) || failed.Done() {
		t.Fatalf("failed write: %v done=%v", err, failed.Done())
	}
	if err := p.SpendAssertion(ctx, failed); err != nil {
		t.Fatalf("own spend after a rollback: %v", err)
	}
	if err := p.SpendAssertion(ctx, failed); err != nil {
		t.Fatalf("own spend again (same request): %v", err)
	}
	if err := p.SpendAssertion(ctx, newSpend("jti-failed")); !errors.Is(err, ErrReplayed) {
		t.Fatalf("another request's spend: %v", err)
	}
	// A oneTrip read that fails in Go (no account) after its batch
	// committed: the request's own later spend is accepted.
	notFound := newSpend("jti-notfound")
	if _, err := p.Account(WithSpend(ctx, notFound), MustTenantID("nobody")); !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
	if err := p.SpendAssertion(ctx, notFound); err != nil {
		t.Fatalf("own spend after a committed read: %v", err)
	}
	// The sweep deletes expired rows only.
	adminExec(t, db, `INSERT INTO spent_assertions (jti, until_ns, spender) VALUES ('old', 1, 'x')`)
	n, err := p.SweepSpentAssertions(ctx, 100)
	if err != nil || n != 1 {
		t.Fatalf("sweep: %d %v", n, err)
	}
	if left := adminCount(t, db, `SELECT count(*) FROM spent_assertions`); left != 3 {
		t.Errorf("%d rows left, want 3 live ones", left)
	}
	// The runtime role may insert, not read or delete.
	conn := connectAs(t, db, "")
	if _, err := conn.Exec(ctx, `SET ROLE `+db.Role); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `DELETE FROM spent_assertions`); err == nil {
		t.Error("the runtime role deleted spent assertions")
	}
	if _, err := conn.Exec(ctx, `SELECT jti FROM spent_assertions`); err == nil {
		t.Error("the runtime role read spent assertions")
	}
}

// BenchmarkSpend measures what one use per assertion adds to a request:
// on SQLite a map insert under a mutex; on PostgreSQL one more statement in
// a batch the request sends anyway (in-transaction), or one round trip of
// its own for a request without a transaction (standalone).
func BenchmarkSpend(b *testing.B) {
	ctx := context.Background()
	b.Run("sqlite", func(b *testing.B) {
		s, err := OpenSQLite(ctx, filepath.Join(b.TempDir(), "b.db"))
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		for i := 0; b.Loop(); i++ {
			if err := s.SpendAssertion(ctx, newSpend(NewID("req"))); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("postgres", func(b *testing.B) {
		db := pgtest.New(b)
		p, err := OpenPostgres(ctx, db.RuntimeURL(b), PostgresOptions{MigrateURL: db.URL})
		if err != nil {
			b.Fatal(err)
		}
		defer p.Close()
		acme := MustTenantID("acme")
		if _, err := p.SeedAccount(ctx, acme, hedging.Account{CashUSD: 100}, time.Now()); err != nil {
			b.Fatal(err)
		}
		b.Run("read-without-spend", func(b *testing.B) {
			for b.Loop() {
				if _, err := p.Account(ctx, acme); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("read-with-spend-in-transaction", func(b *testing.B) {
			for b.Loop() {
				if _, err := p.Account(WithSpend(ctx, newSpend(NewID("req"))), acme); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("standalone", func(b *testing.B) {
			for b.Loop() {
				if err := p.SpendAssertion(ctx, newSpend(NewID("req"))); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}
