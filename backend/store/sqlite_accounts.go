package store

import (
	"context"
	"fmt"
	"time"

	"github.com/tenantgate/tenantgate/backend/hedging"
)

// SetAccount provisions or changes a tenant's account (operator command).
func (s *SQLite) SetAccount(ctx context.Context, t TenantID, set AccountSet, at time.Time) (hedging.Account, error) {
	if err := t.check(); err != nil {
		return hedging.Account{}, err
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return hedging.Account{}, fmt.Errorf("store: set account: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, `INSERT INTO accounts (tenant_id, cash_usd, fees_paid_usd, created_at) VALUES (?, 0, 0, ?)
		ON CONFLICT (tenant_id) DO NOTHING`, t.id, nanos(at)); err != nil {
		return hedging.Account{}, fmt.Errorf("store: set account: %w", err)
	}
	if set.CashUSD != nil {
		if _, err := tx.ExecContext(ctx, `UPDATE accounts SET cash_usd = ? WHERE tenant_id = ?`, *set.CashUSD, t.id); err != nil {
			return hedging.Account{}, fmt.Errorf("store: set account: cash: %w", err)
		}
	}
	for asset, q := range set.Spot {
		var err error
		if q == 0 {
			_, err = tx.ExecContext(ctx, `DELETE FROM spot_balances WHERE tenant_id = ? AND asset = ?`, t.id, asset)
		} else {
			_, err = tx.ExecContext(ctx, `INSERT INTO spot_balances (tenant_id, asset, quantity) VALUES (?, ?, ?)
				ON CONFLICT (tenant_id, asset) DO UPDATE SET quantity = excluded.quantity`, t.id, asset, q)
		}
		if err != nil {
			return hedging.Account{}, fmt.Errorf("store: set account: spot %s: %w", asset, err)
		}
	}
	acct, err := loadAccount(ctx, tx, t)
	if err != nil {
		return hedging.Account{}, err
	}
	if err := tx.Commit(); err != nil {
		return hedging.Account{}, fmt.Errorf("store: set account: commit: %w", err)
	}
	return acct, nil
}
