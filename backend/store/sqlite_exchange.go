package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/tenantgate/tenantgate/backend/hedging"
)

// Account returns the tenant's account; ErrNotFound when it has none.
func (s *SQLite) Account(ctx context.Context, t TenantID) (hedging.Account, error) {
	if err := t.check(); err != nil {
		return hedging.Account{}, err
	}
	return loadAccount(ctx, s.r, t)
}

func loadAccount(ctx context.Context, q querier, t TenantID) (hedging.Account, error) {
	acct := hedging.Account{Spot: map[string]float64{}, Perp: map[string]float64{}}
	err := q.QueryRowContext(ctx, `SELECT cash_usd, fees_paid_usd FROM accounts WHERE tenant_id = ?`, t.id).Scan(&acct.CashUSD, &acct.FeesPaidUSD)
	if errors.Is(err, sql.ErrNoRows) {
		return acct, fmt.Errorf("%w: no exchange account for tenant %s", ErrNotFound, t.id)
	}
	if err != nil {
		return acct, fmt.Errorf("store: load account: %w", err)
	}
	for _, tbl := range []struct {
		query string
		into  map[string]float64
	}{
		{`SELECT asset, quantity FROM spot_balances WHERE tenant_id = ?`, acct.Spot},
		{`SELECT asset, quantity FROM perp_positions WHERE tenant_id = ?`, acct.Perp},
	} {
		rows, err := q.QueryContext(ctx, tbl.query, t.id)
		if err != nil {
			return acct, fmt.Errorf("store: load account: %w", err)
		}
		for rows.Next() {
			var asset string
			var qty float64
			if err := rows.Scan(&asset, &qty); err != nil {
				_ = rows.Close()
				return acct, fmt.Errorf("store: load account: %w", err)
			}
			tbl.into[asset] = qty
		}
		err = rows.Err()
		_ = rows.Close()
		if err != nil {
			return acct, fmt.Errorf("store: load account: %w", err)
		}
	}
	return acct, nil
}

// flow runs fn in one write transaction on the single write connection.
func (s *SQLite) flow(ctx context.Context, t TenantID, op string, fn func(txn) error) error {
	if err := t.check(); err != nil {
		return err
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: %s: %w", op, err)
	}
	defer func() { _ = tx.Rollback() }()
	if err := fn(&sqliteTx{tx: tx}); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: %s: commit: %w", op, err)
	}
	return nil
}

// SeedAccount creates the tenant's account unless it already exists.
func (s *SQLite) SeedAccount(ctx context.Context, t TenantID, acct hedging.Account, at time.Time) (created bool, err error) {
	err = s.flow(ctx, t, "seed account", func(tx txn) error {
		created, err = seedAccount(ctx, tx, t, acct, at)
		return err
	})
	return created && err == nil, err
}

// SetAccount provisions or changes a tenant's account (operator command).
func (s *SQLite) SetAccount(ctx context.Context, t TenantID, set AccountSet, at time.Time) (acct hedging.Account, err error) {
	err = s.flow(ctx, t, "set account", func(tx txn) error {
		acct, err = setAccount(ctx, tx, t, set, at)
		return err
	})
	if err != nil {
		return hedging.Account{}, err
	}
	return acct, nil
}

// Trade runs plan and persists its fills in one transaction.
func (s *SQLite) Trade(ctx context.Context, t TenantID, kind string, at time.Time, plan TradePlan) (ex Execution, err error) {
	err = s.flow(ctx, t, "trade", func(tx txn) error {
		ex, err = trade(ctx, tx, t, kind, at, plan, nil)
		return err
	})
	if err != nil {
		return Execution{}, err
	}
	return ex, nil
}

// ExecuteOnce claims (t, key) and trades in the same transaction (see
// executeOnce). Concurrent calls with one key queue on the single write
// connection (and, across processes, on SQLite's write lock).
func (s *SQLite) ExecuteOnce(ctx context.Context, t TenantID, key, requestHash string, at, expiredBefore time.Time, plan TradePlan, render func(Execution) (Response, error)) (resp Response, replayed bool, err error) {
	err = s.flow(ctx, t, "execute", func(tx txn) error {
		resp, replayed, err = executeOnce(ctx, tx, t, key, requestHash, at, expiredBefore, plan, render)
		return err
	})
	if err != nil {
		return Response{}, false, err
	}
	return resp, replayed, nil
}

// SweepIdempotencyKeys deletes up to limit records created before olderThan.
func (s *SQLite) SweepIdempotencyKeys(ctx context.Context, olderThan time.Time, limit int) (int, error) {
	olderThan = clampSweep(olderThan, time.Now())
	res, err := s.w.ExecContext(ctx, `DELETE FROM idempotency_keys WHERE rowid IN (
		SELECT rowid FROM idempotency_keys WHERE created_at < ? LIMIT ?)`, nanos(olderThan), limit)
	if err != nil {
		return 0, fmt.Errorf("store: sweep idempotency keys: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("store: sweep idempotency keys: %w", err)
	}
	return int(n), nil
}
