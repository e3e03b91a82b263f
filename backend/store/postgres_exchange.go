package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantgate/tenantgate/backend/hedging"
)

// Account returns the tenant's account (one round trip); ErrNotFound when it has none.
func (p *Postgres) Account(ctx context.Context, t TenantID) (hedging.Account, error) {
	var acct hedging.Account
	err := p.readTrip(ctx, t, "load account", func(b *pgx.Batch) { queueAccount(b, t, false) }, func(br pgx.BatchResults) error {
		var err error
		acct, err = readAccount(br, t)
		return err
	})
	if err != nil {
		return hedging.Account{}, err
	}
	return acct, nil
}

// queueAccount queues the three reads of an account; forUpdate locks its
// row, so trades of one tenant run one after another while other tenants'
// trades run alongside.
func queueAccount(b *pgx.Batch, t TenantID, forUpdate bool) {
	q := `SELECT cash_usd, fees_paid_usd FROM accounts WHERE tenant_id = $1`
	if forUpdate {
		q += ` FOR UPDATE`
	}
	b.Queue(q, t.id)
	b.Queue(`SELECT asset, quantity FROM spot_balances WHERE tenant_id = $1`, t.id)
	b.Queue(`SELECT asset, quantity FROM perp_positions WHERE tenant_id = $1`, t.id)
}

// readAccount reads the results of queueAccount.
func readAccount(br pgx.BatchResults, t TenantID) (hedging.Account, error) {
	acct := hedging.Account{Spot: map[string]float64{}, Perp: map[string]float64{}}
	err := br.QueryRow().Scan(&acct.CashUSD, &acct.FeesPaidUSD)
	if errors.Is(err, pgx.ErrNoRows) {
		return acct, fmt.Errorf("%w: no exchange account for tenant %s", ErrNotFound, t.id)
	}
	if err != nil {
		return acct, fmt.Errorf("store: load account: %w", err)
	}
	for _, into := range []map[string]float64{acct.Spot, acct.Perp} {
		rows, err := br.Query()
		if err != nil {
			return acct, fmt.Errorf("store: load account: %w", err)
		}
		for rows.Next() {
			var asset string
			var qty float64
			if err := rows.Scan(&asset, &qty); err != nil {
				rows.Close()
				return acct, fmt.Errorf("store: load account: %w", err)
			}
			into[asset] = qty
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return acct, fmt.Errorf("store: load account: %w", err)
		}
	}
	return acct, nil
}

// pgLoadAccount reads the account inside tx, in one round trip.
func pgLoadAccount(ctx context.Context, tx pgx.Tx, t TenantID, forUpdate bool) (hedging.Account, error) {
	b := &pgx.Batch{}
	queueAccount(b, t, forUpdate)
	br := tx.SendBatch(ctx, b)
	acct, err := readAccount(br, t)
	if cerr := br.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("store: load account: %w", cerr)
	}
	return acct, err
}

// SeedAccount creates the tenant's account unless it already exists.
func (p *Postgres) SeedAccount(ctx context.Context, t TenantID, acct hedging.Account, at time.Time) (bool, error) {
	created := false
	err := p.write(ctx, t, "seed account", func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO accounts (tenant_id, cash_usd, fees_paid_usd, created_at) VALUES ($1, $2, $3, $4)
			ON CONFLICT (tenant_id) DO NOTHING`, t.id, acct.CashUSD, acct.FeesPaidUSD, nanos(at))
		if err != nil {
			return fmt.Errorf("store: seed account: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return nil
		}
		for asset, q := range acct.Spot {
			if _, err := tx.Exec(ctx, `INSERT INTO spot_balances (tenant_id, asset, quantity) VALUES ($1, $2, $3)`, t.id, asset, q); err != nil {
				return fmt.Errorf("store: seed account: %w", err)
			}
		}
		for asset, q := range acct.Perp {
			if _, err := tx.Exec(ctx, `INSERT INTO perp_positions (tenant_id, asset, quantity) VALUES ($1, $2, $3)`, t.id, asset, q); err != nil {
				return fmt.Errorf("store: seed account: %w", err)
			}
		}
		created = true
		return nil
	})
	if err != nil {
		return false, err
	}
	return created, nil
}

// Trade runs plan and persists its fills in one transaction.
func (p *Postgres) Trade(ctx context.Context, t TenantID, kind string, at time.Time, plan TradePlan) (Execution, error) {
	var ex Execution
	err := p.write(ctx, t, "trade", func(tx pgx.Tx) error {
		var err error
		ex, err = pgTrade(ctx, tx, t, kind, at, plan, nil)
		return err
	})
	if err != nil {
		return Execution{}, err
	}
	return ex, nil
}

// pgTrade runs plan on the locked account and writes its fills. finish
// (may be nil) sees the execution before anything is written and may queue
// more statements into the same round trip (ExecuteOnce stores its
// response there).
func pgTrade(ctx context.Context, tx pgx.Tx, t TenantID, kind string, at time.Time, plan TradePlan, finish func(Execution, *pgx.Batch) error) (Execution, error) {
	before, err := pgLoadAccount(ctx, tx, t, true)
	if err != nil {
		return Execution{}, err
	}
	fills, after, err := plan(before.Clone())
	if err != nil {
		return Execution{}, err
	}
	ex := Execution{Kind: kind, Before: before, After: after, At: at, Fills: make([]Filled, 0, len(fills))}
	b := &pgx.Batch{}
	if len(fills) == 0 {
		ex.After = before // nothing traded: nothing changes, and there is no execution to name
	} else {
		ex.ID = NewID("exe")
		b.Queue(`INSERT INTO accounts (tenant_id, cash_usd, fees_paid_usd, created_at) VALUES ($1, $2, $3, $4)
			ON CONFLICT (tenant_id) DO UPDATE SET cash_usd = excluded.cash_usd, fees_paid_usd = excluded.fees_paid_usd`,
			t.id, after.CashUSD, after.FeesPaidUSD, nanos(at))
		for asset, q := range after.Perp {
			if before.Perp[asset] == q {
				continue
			}
			b.Queue(`INSERT INTO perp_positions (tenant_id, asset, quantity) VALUES ($1, $2, $3)
				ON CONFLICT (tenant_id, asset) DO UPDATE SET quantity = excluded.quantity`, t.id, asset, q)
		}
		for _, f := range fills {
			fl := Filled{OrderID: NewID("ord"), Fill: f}
			b.Queue(`INSERT INTO orders (tenant_id, order_id, execution_id, kind, asset, side, quantity, price, notional_usd, fee_usd, created_at)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`, t.id, fl.OrderID, ex.ID, kind, f.Asset, string(f.Side), f.Quantity, f.Price, f.NotionalUSD, f.FeeUSD, nanos(at))
			ex.Fills = append(ex.Fills, fl)
		}
	}
	if finish != nil {
		if err := finish(ex, b); err != nil {
			return Execution{}, err
		}
	}
	if b.Len() > 0 {
		// One round trip for the account, the changed positions, the orders
		// and what finish queued.
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return Execution{}, fmt.Errorf("store: trade: write fills: %w", err)
		}
	}
	return ex, nil
}

// ExecuteOnce claims (t, key) and trades in the same transaction. The claim
// is an INSERT against the primary key (tenant_id, idempotency_key), not a
// read-then-write: a concurrent call with the same key blocks on the
// first one's uncommitted row, and once that commits finds the row (and
// replays its response) or, if it rolled back, claims the key itself. A
// key older than expiredBefore is claimed afresh by the same statement.
func (p *Postgres) ExecuteOnce(ctx context.Context, t TenantID, key, requestHash string, at, expiredBefore time.Time, plan TradePlan, render func(Execution) (Response, error)) (Response, bool, error) {
	var resp Response
	replayed := false
	err := p.write(ctx, t, "execute", func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO idempotency_keys (tenant_id, idempotency_key, request_hash, status, content_type, body, created_at)
			VALUES ($1, $2, $3, 0, '', '', $4) ON CONFLICT (tenant_id, idempotency_key) DO UPDATE
			SET request_hash = excluded.request_hash, status = 0, content_type = '', body = '', created_at = excluded.created_at
			WHERE idempotency_keys.created_at < $5`, t.id, key, requestHash, nanos(at), nanos(expiredBefore))
		if err != nil {
			return fmt.Errorf("store: claim idempotency key: %w", err)
		}
		if tag.RowsAffected() == 0 {
			var hash string
			if err := tx.QueryRow(ctx, `SELECT request_hash, status, content_type, body FROM idempotency_keys
				WHERE tenant_id = $1 AND idempotency_key = $2`, t.id, key).Scan(&hash, &resp.Status, &resp.ContentType, &resp.Body); err != nil {
				return fmt.Errorf("store: read idempotency key: %w", err)
			}
			if hash != requestHash {
				return ErrIdempotencyMismatch
			}
			replayed = true
			return nil
		}
		_, err = pgTrade(ctx, tx, t, "execute", at, plan, func(ex Execution, b *pgx.Batch) error {
			var err error
			if resp, err = render(ex); err != nil {
				return err
			}
			b.Queue(`UPDATE idempotency_keys SET status = $1, content_type = $2, body = $3
				WHERE tenant_id = $4 AND idempotency_key = $5`, resp.Status, resp.ContentType, resp.Body, t.id, key)
			return nil
		})
		return err
	})
	if err != nil {
		return Response{}, false, err
	}
	return resp, replayed, nil
}
