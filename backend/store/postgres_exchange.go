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
		err = readBalances(rows, into)
		rows.Close()
		if err != nil {
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

// SweepIdempotencyKeys deletes up to limit records of any tenant created
// before olderThan. The runtime role cannot see other tenants' rows, so it
// calls sweep_idempotency_keys (migrations 0002 and 0004), a SECURITY
// DEFINER function of the tables' owner that may delete expired records and
// nothing else, and clamps its arguments (never a record younger than 24 h).
func (p *Postgres) SweepIdempotencyKeys(ctx context.Context, olderThan time.Time, limit int) (int, error) {
	var n int
	if err := p.pool.QueryRow(ctx, `SELECT sweep_idempotency_keys($1, $2)`, nanos(olderThan), limit).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: sweep idempotency keys: %w", err)
	}
	return n, nil
}
