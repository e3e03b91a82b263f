package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// spendSQL records a spent assertion. Without ON CONFLICT: a second use is a
// unique violation that aborts the transaction it runs in, so a replayed
// request's writes never commit. A concurrent first use holds the key until
// it commits (then this fails) or rolls back (then this succeeds).
const spendSQL = `INSERT INTO spent_assertions (jti, until_ns, spender) VALUES ($1, $2, $3)`

func (p *Postgres) spendsInTransaction() {}

var _ SpendsInTransaction = (*Postgres)(nil)

// asyncCommit makes the transaction it runs in commit without waiting for
// its WAL flush. It is used where the spend is the transaction's only
// write (a read, or a request without a transaction): a durable commit
// would cost such a request a disk flush (about 5 ms here against 0.6 ms
// for the read), while a database crash forgets at most the spends of the
// last few hundred milliseconds (3 x wal_writer_delay), each replayable
// only for what is left of its 60 s. A spend that rides with a write
// commits durably with it.
const asyncCommit = `SELECT set_config('synchronous_commit', 'off', true)`

// queueSpend adds the context's pending spend to b and returns it (nil when
// there is none); readOnly: b writes nothing else, so it commits async.
func queueSpend(ctx context.Context, b *pgx.Batch, readOnly bool) *Spend {
	sp := pendingSpend(ctx)
	if sp != nil {
		if readOnly {
			b.Queue(asyncCommit)
		}
		b.Queue(spendSQL, sp.JTI, nanos(sp.Until), sp.spender())
	}
	return sp
}

// spendStatements is how many statements queueSpend queued.
func spendStatements(readOnly bool) int {
	if readOnly {
		return 2
	}
	return 1
}

// replayed maps the unique violation of spent_assertions to ErrReplayed.
func replayed(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == pgUniqueViolation && pgErr.TableName == "spent_assertions" {
		return ErrReplayed
	}
	return err
}

// SpendAssertion records sp for a request whose transactions did not (it
// ran none, or one that failed and may or may not have committed the
// spend): spend_assertion (migration 0003) accepts a new jti or this same
// request's own earlier spend, and refuses a replay. One round trip.
func (p *Postgres) SpendAssertion(ctx context.Context, sp *Spend) error {
	var ok bool
	b := &pgx.Batch{}
	b.Queue(asyncCommit)
	b.Queue(`SELECT spend_assertion($1, $2, $3)`, sp.JTI, nanos(sp.Until), sp.spender())
	br := p.pool.SendBatch(ctx, b)
	_, err := br.Exec()
	if err == nil {
		err = br.QueryRow().Scan(&ok)
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("store: spend assertion: %w", err)
	}
	if !ok {
		return ErrReplayed
	}
	sp.done.Store(true)
	return nil
}

// SweepSpentAssertions deletes up to limit expired spent assertions
// (migration 0003's owner function; the server's clock decides).
func (p *Postgres) SweepSpentAssertions(ctx context.Context, limit int) (int, error) {
	var n int
	if err := p.pool.QueryRow(ctx, `SELECT sweep_spent_assertions($1)`, limit).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: sweep spent assertions: %w", err)
	}
	return n, nil
}
