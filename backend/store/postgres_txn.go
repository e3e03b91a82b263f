package store

import (
	"context"
	"database/sql"
	"errors"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/tenantgate/tenantgate/backend/hedging"
)

// pgTx is txn over pgx: the shared SQL's ? placeholders become $n (cached),
// and queued writes go in one batch, one round trip, at flush.
type pgTx struct {
	tx    pgx.Tx
	batch pgx.Batch
}

// dialect caches dollarParams of each shared statement.
var dialect sync.Map // string -> string

func pgSQL(q string) string {
	if d, ok := dialect.Load(q); ok {
		return d.(string)
	}
	d := dollarParams(q)
	dialect.Store(q, d)
	return d
}

func (p *pgTx) exec(ctx context.Context, q string, args ...any) (int64, error) {
	tag, err := p.tx.Exec(ctx, pgSQL(q), args...)
	return tag.RowsAffected(), err
}

func (p *pgTx) queryRow(ctx context.Context, q string, args ...any) scanner {
	return pgRow{p.tx.QueryRow(ctx, pgSQL(q), args...)}
}

func (p *pgTx) queue(q string, args ...any) { p.batch.Queue(pgSQL(q), args...) }

func (p *pgTx) flush(ctx context.Context) error {
	if p.batch.Len() == 0 {
		return nil
	}
	b := p.batch
	p.batch = pgx.Batch{}
	return p.tx.SendBatch(ctx, &b).Close()
}

func (p *pgTx) account(ctx context.Context, t TenantID, forUpdate bool) (hedging.Account, error) {
	return pgLoadAccount(ctx, p.tx, t, forUpdate)
}

func (p *pgTx) forUpdate() string { return " FOR UPDATE" }

func (p *pgTx) uniqueViolation(err error) bool { return pgCode(err) == pgUniqueViolation }

// pgRow reports pgx's no-row error as database/sql's, which the flows test.
type pgRow struct{ pgx.Row }

func (r pgRow) Scan(dest ...any) error {
	err := r.Row.Scan(dest...)
	if errors.Is(err, pgx.ErrNoRows) {
		return sql.ErrNoRows
	}
	return err
}

// flow runs fn in one write transaction scoped to t.
func (p *Postgres) flow(ctx context.Context, t TenantID, op string, fn func(txn) error) error {
	return p.write(ctx, t, op, func(tx pgx.Tx) error { return fn(&pgTx{tx: tx}) })
}
