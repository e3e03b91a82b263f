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

// SeedAccount creates the tenant's account unless it already exists.
func (s *SQLite) SeedAccount(ctx context.Context, t TenantID, acct hedging.Account, at time.Time) (bool, error) {
	if err := t.check(); err != nil {
		return false, err
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("store: seed account: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	res, err := tx.ExecContext(ctx, `INSERT INTO accounts (tenant_id, cash_usd, fees_paid_usd, created_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (tenant_id) DO NOTHING`, t.id, acct.CashUSD, acct.FeesPaidUSD, nanos(at))
	if err != nil {
		return false, fmt.Errorf("store: seed account: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return false, nil
	}
	for asset, q := range acct.Spot {
		if _, err := tx.ExecContext(ctx, `INSERT INTO spot_balances (tenant_id, asset, quantity) VALUES (?, ?, ?)`, t.id, asset, q); err != nil {
			return false, fmt.Errorf("store: seed account: %w", err)
		}
	}
	for asset, q := range acct.Perp {
		if _, err := tx.ExecContext(ctx, `INSERT INTO perp_positions (tenant_id, asset, quantity) VALUES (?, ?, ?)`, t.id, asset, q); err != nil {
			return false, fmt.Errorf("store: seed account: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("store: seed account: commit: %w", err)
	}
	return true, nil
}

// Trade runs plan and persists its fills in one transaction.
func (s *SQLite) Trade(ctx context.Context, t TenantID, kind string, at time.Time, plan TradePlan) (Execution, error) {
	if err := t.check(); err != nil {
		return Execution{}, err
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return Execution{}, fmt.Errorf("store: trade: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	ex, err := trade(ctx, tx, t, kind, at, plan)
	if err != nil {
		return Execution{}, err
	}
	if err := tx.Commit(); err != nil {
		return Execution{}, fmt.Errorf("store: trade: commit: %w", err)
	}
	return ex, nil
}

func trade(ctx context.Context, tx *sql.Tx, t TenantID, kind string, at time.Time, plan TradePlan) (Execution, error) {
	before, err := loadAccount(ctx, tx, t)
	if err != nil {
		return Execution{}, err
	}
	fills, after, err := plan(before.Clone())
	if err != nil {
		return Execution{}, err
	}
	ex := Execution{Kind: kind, Before: before, After: after, At: at, Fills: make([]Filled, 0, len(fills))}
	if len(fills) == 0 {
		ex.After = before // nothing traded: nothing changes, and there is no execution to name
		return ex, nil
	}
	ex.ID = NewID("exe")
	if _, err := tx.ExecContext(ctx, `INSERT INTO accounts (tenant_id, cash_usd, fees_paid_usd, created_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (tenant_id) DO UPDATE SET cash_usd = excluded.cash_usd, fees_paid_usd = excluded.fees_paid_usd`,
		t.id, after.CashUSD, after.FeesPaidUSD, nanos(at)); err != nil {
		return Execution{}, fmt.Errorf("store: trade: update account: %w", err)
	}
	for asset, q := range after.Perp {
		if before.Perp[asset] == q {
			continue
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO perp_positions (tenant_id, asset, quantity) VALUES (?, ?, ?)
			ON CONFLICT (tenant_id, asset) DO UPDATE SET quantity = excluded.quantity`, t.id, asset, q); err != nil {
			return Execution{}, fmt.Errorf("store: trade: update position %s: %w", asset, err)
		}
	}
	for _, f := range fills {
		fl := Filled{OrderID: NewID("ord"), Fill: f}
		if _, err := tx.ExecContext(ctx, `INSERT INTO orders (tenant_id, order_id, execution_id, kind, asset, side, quantity, price, notional_usd, fee_usd, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, t.id, fl.OrderID, ex.ID, kind, f.Asset, string(f.Side), f.Quantity, f.Price, f.NotionalUSD, f.FeeUSD, nanos(at)); err != nil {
			return Execution{}, fmt.Errorf("store: trade: insert order: %w", err)
		}
		ex.Fills = append(ex.Fills, fl)
	}
	return ex, nil
}

// ExecuteOnce claims (t, key) and trades in the same transaction. Concurrent
// calls with one key queue on the single write connection (and, across
// processes, on SQLite's write lock), so the later ones find the claimed row
// with the first response in it.
// A key older than expiredBefore is claimed afresh, in the same statement.
func (s *SQLite) ExecuteOnce(ctx context.Context, t TenantID, key, requestHash string, at, expiredBefore time.Time, plan TradePlan, render func(Execution) (Response, error)) (Response, bool, error) {
	if err := t.check(); err != nil {
		return Response{}, false, err
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return Response{}, false, fmt.Errorf("store: execute: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	res, err := tx.ExecContext(ctx, `INSERT INTO idempotency_keys (tenant_id, idempotency_key, request_hash, status, content_type, body, created_at)
		VALUES (?, ?, ?, 0, '', x'', ?) ON CONFLICT (tenant_id, idempotency_key) DO UPDATE
		SET request_hash = excluded.request_hash, status = 0, content_type = '', body = x'', created_at = excluded.created_at
		WHERE idempotency_keys.created_at < ?`, t.id, key, requestHash, nanos(at), nanos(expiredBefore))
	if err != nil {
		return Response{}, false, fmt.Errorf("store: claim idempotency key: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		var stored Response
		var hash string
		if err := tx.QueryRowContext(ctx, `SELECT request_hash, status, content_type, body FROM idempotency_keys
			WHERE tenant_id = ? AND idempotency_key = ?`, t.id, key).Scan(&hash, &stored.Status, &stored.ContentType, &stored.Body); err != nil {
			return Response{}, false, fmt.Errorf("store: read idempotency key: %w", err)
		}
		if hash != requestHash {
			return Response{}, false, ErrIdempotencyMismatch
		}
		return stored, true, nil
	}
	ex, err := trade(ctx, tx, t, "execute", at, plan)
	if err != nil {
		return Response{}, false, err
	}
	resp, err := render(ex)
	if err != nil {
		return Response{}, false, err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE idempotency_keys SET status = ?, content_type = ?, body = ?
		WHERE tenant_id = ? AND idempotency_key = ?`, resp.Status, resp.ContentType, resp.Body, t.id, key); err != nil {
		return Response{}, false, fmt.Errorf("store: store idempotent response: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return Response{}, false, fmt.Errorf("store: execute: commit: %w", err)
	}
	return resp, false, nil
}
