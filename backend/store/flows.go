package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/tenantgate/tenantgate/backend/hedging"
)

// The exchange flows (seed, set, trade, execute-once) are written once, here,
// over txn: one write transaction of either engine, spoken in the SQL both
// understand with ? placeholders. Each engine supplies only the driver glue
// (sqliteTx over *sql.Tx, pgTx over pgx.Tx) and how it reads an account.

// txn is one write transaction, scoped to one tenant by the engine.
type txn interface {
	// exec runs q at once and returns how many rows it changed.
	exec(ctx context.Context, q string, args ...any) (int64, error)
	// queryRow runs q at once; its Scan reports no row as sql.ErrNoRows.
	queryRow(ctx context.Context, q string, args ...any) scanner
	// queue adds a write whose result the flow does not need; flush sends
	// everything queued (pgx: in one round trip; database/sql: one by one).
	queue(q string, args ...any)
	flush(ctx context.Context) error
	// account reads the tenant's account; forUpdate locks it until the
	// transaction ends where the engine has row locks.
	account(ctx context.Context, t TenantID, forUpdate bool) (hedging.Account, error)
	// forUpdate is the row-lock clause of a SELECT (" FOR UPDATE"), or ""
	// where the engine serializes writers otherwise.
	forUpdate() string
	// uniqueViolation reports whether err is a unique or primary key violation.
	uniqueViolation(err error) bool
}

type scanner interface{ Scan(dest ...any) error }

// seedAccount creates the tenant's account unless it exists.
func seedAccount(ctx context.Context, tx txn, t TenantID, acct hedging.Account, at time.Time) (bool, error) {
	n, err := tx.exec(ctx, `INSERT INTO accounts (tenant_id, cash_usd, fees_paid_usd, created_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (tenant_id) DO NOTHING`, t.id, acct.CashUSD, acct.FeesPaidUSD, nanos(at))
	if err != nil || n == 0 {
		return false, wrap("seed account", err)
	}
	for asset, q := range acct.Spot {
		tx.queue(`INSERT INTO spot_balances (tenant_id, asset, quantity) VALUES (?, ?, ?)`, t.id, asset, q)
	}
	for asset, q := range acct.Perp {
		tx.queue(`INSERT INTO perp_positions (tenant_id, asset, quantity) VALUES (?, ?, ?)`, t.id, asset, q)
	}
	return true, wrap("seed account", tx.flush(ctx))
}

// setAccount is the operator's provisioning (see Store.SetAccount).
func setAccount(ctx context.Context, tx txn, t TenantID, set AccountSet, at time.Time) (hedging.Account, error) {
	tx.queue(`INSERT INTO accounts (tenant_id, cash_usd, fees_paid_usd, created_at) VALUES (?, 0, 0, ?)
		ON CONFLICT (tenant_id) DO NOTHING`, t.id, nanos(at))
	if set.CashUSD != nil {
		tx.queue(`UPDATE accounts SET cash_usd = ? WHERE tenant_id = ?`, *set.CashUSD, t.id)
	}
	for asset, q := range set.Spot {
		if q == 0 {
			tx.queue(`DELETE FROM spot_balances WHERE tenant_id = ? AND asset = ?`, t.id, asset)
			continue
		}
		tx.queue(`INSERT INTO spot_balances (tenant_id, asset, quantity) VALUES (?, ?, ?)
			ON CONFLICT (tenant_id, asset) DO UPDATE SET quantity = excluded.quantity`, t.id, asset, q)
	}
	if err := tx.flush(ctx); err != nil {
		return hedging.Account{}, wrap("set account", err)
	}
	return tx.account(ctx, t, false)
}

// trade runs plan on the locked account and writes its fills. finish (may
// be nil) sees the execution before anything is written and may queue more
// writes to go with them (execute-once stores its response there).
func trade(ctx context.Context, tx txn, t TenantID, kind string, at time.Time, plan TradePlan, finish func(Execution) error) (Execution, error) {
	before, err := tx.account(ctx, t, true)
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
	} else {
		ex.ID = NewID("exe")
		tx.queue(`INSERT INTO accounts (tenant_id, cash_usd, fees_paid_usd, created_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (tenant_id) DO UPDATE SET cash_usd = excluded.cash_usd, fees_paid_usd = excluded.fees_paid_usd`,
			t.id, after.CashUSD, after.FeesPaidUSD, nanos(at))
		for asset, q := range after.Perp {
			if before.Perp[asset] != q {
				tx.queue(`INSERT INTO perp_positions (tenant_id, asset, quantity) VALUES (?, ?, ?)
					ON CONFLICT (tenant_id, asset) DO UPDATE SET quantity = excluded.quantity`, t.id, asset, q)
			}
		}
		for _, f := range fills {
			fl := Filled{OrderID: NewID("ord"), Fill: f}
			tx.queue(`INSERT INTO orders (tenant_id, order_id, execution_id, kind, asset, side, quantity, price, notional_usd, fee_usd, created_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, t.id, fl.OrderID, ex.ID, kind, f.Asset, string(f.Side), f.Quantity, f.Price, f.NotionalUSD, f.FeeUSD, nanos(at))
			ex.Fills = append(ex.Fills, fl)
		}
	}
	if finish != nil {
		if err := finish(ex); err != nil {
			return Execution{}, err
		}
	}
	// One round trip on pgx for the account, the changed positions, the
	// orders and what finish queued.
	if err := tx.flush(ctx); err != nil {
		return Execution{}, fmt.Errorf("store: trade: write fills: %w", err)
	}
	return ex, nil
}

// executeOnce claims (t, key) and trades in the same transaction. The claim
// is an INSERT against the primary key (tenant_id, idempotency_key), not a
// read-then-write: a concurrent call with the same key waits for the first
// (PostgreSQL: on its uncommitted row; SQLite: on the one write connection
// and the database's write lock), then finds the row and replays its
// response, or claims the key itself if the first rolled back. A key older
// than expiredBefore is claimed afresh by the same statement.
func executeOnce(ctx context.Context, tx txn, t TenantID, key, requestHash string, at, expiredBefore time.Time, plan TradePlan, render func(Execution) (Response, error)) (Response, bool, error) {
	n, err := tx.exec(ctx, `INSERT INTO idempotency_keys (tenant_id, idempotency_key, request_hash, status, content_type, body, created_at)
		VALUES (?, ?, ?, 0, '', ?, ?) ON CONFLICT (tenant_id, idempotency_key) DO UPDATE
		SET request_hash = excluded.request_hash, status = 0, content_type = '', body = excluded.body, created_at = excluded.created_at
		WHERE idempotency_keys.created_at < ?`, t.id, key, requestHash, []byte{}, nanos(at), nanos(expiredBefore))
	if err != nil {
		return Response{}, false, fmt.Errorf("store: claim idempotency key: %w", err)
	}
	var resp Response
	if n == 0 {
		var hash string
		if err := tx.queryRow(ctx, `SELECT request_hash, status, content_type, body FROM idempotency_keys
			WHERE tenant_id = ? AND idempotency_key = ?`, t.id, key).Scan(&hash, &resp.Status, &resp.ContentType, &resp.Body); err != nil {
			return Response{}, false, fmt.Errorf("store: read idempotency key: %w", err)
		}
		if hash != requestHash {
			return Response{}, false, ErrIdempotencyMismatch
		}
		return resp, true, nil
	}
	_, err = trade(ctx, tx, t, "execute", at, plan, func(ex Execution) error {
		var err error
		if resp, err = render(ex); err != nil {
			return err
		}
		tx.queue(`UPDATE idempotency_keys SET status = ?, content_type = ?, body = ? WHERE tenant_id = ? AND idempotency_key = ?`,
			resp.Status, resp.ContentType, resp.Body, t.id, key)
		return nil
	})
	return resp, false, err
}

// wrap prefixes a driver error with the operation; nil stays nil.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("store: %s: %w", op, err)
}

// sqliteTx is txn over database/sql (SQLite): queued writes run in order at
// flush, one statement each.
type sqliteTx struct {
	tx      *sql.Tx
	pending []queued
}

type queued struct {
	q    string
	args []any
}

func (s *sqliteTx) exec(ctx context.Context, q string, args ...any) (int64, error) {
	res, err := s.tx.ExecContext(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (s *sqliteTx) queryRow(ctx context.Context, q string, args ...any) scanner {
	return s.tx.QueryRowContext(ctx, q, args...)
}

func (s *sqliteTx) queue(q string, args ...any) { s.pending = append(s.pending, queued{q, args}) }

func (s *sqliteTx) flush(ctx context.Context) error {
	for _, w := range s.pending {
		if _, err := s.tx.ExecContext(ctx, w.q, w.args...); err != nil {
			s.pending = nil
			return err
		}
	}
	s.pending = nil
	return nil
}

func (s *sqliteTx) forUpdate() string { return "" }

func (s *sqliteTx) uniqueViolation(err error) bool { return isUniqueViolation(err) }

func (s *sqliteTx) account(ctx context.Context, t TenantID, _ bool) (hedging.Account, error) {
	// The one write connection already serializes writers: no row lock.
	return loadAccount(ctx, s.tx, t)
}
