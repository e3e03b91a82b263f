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
		err = readBalances(rows, tbl.into)
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
