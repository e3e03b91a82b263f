package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// dollarParams turns the ? placeholders of SQL shared with SQLite into
// PostgreSQL's $1, $2, ... in order. The shared SQL holds no ? in literals.
func dollarParams(q string) string {
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// The window SQL of window_sql.go, with $n placeholders.
var (
	pgEnsembleTally = dollarParams(ensembleTallySQL)
	pgAgentTallies  = dollarParams(agentTalliesSQL)
	pgRankings      = dollarParams(rankingsSQL)
)

// Performance aggregates the ensemble's window in SQL, in one read transaction.
func (p *Postgres) Performance(ctx context.Context, t TenantID, ensembleID string, lookback int) (Window, error) {
	w := Window{Lookback: lookback, Agents: []AgentTally{}}
	err := p.readTrip(ctx, t, "performance", func(b *pgx.Batch) {
		b.Queue(`SELECT count(*) FROM ensembles WHERE tenant_id = $1 AND ensemble_id = $2`, t.id, ensembleID)
		b.Queue(pgEnsembleTally, t.id, ensembleID, lookback)
		b.Queue(pgAgentTallies, t.id, ensembleID, lookback, t.id, t.id, ensembleID)
	}, func(br pgx.BatchResults) error {
		var n int
		if err := br.QueryRow().Scan(&n); err != nil {
			return fmt.Errorf("store: find ensemble: %w", err)
		}
		if n == 0 {
			return fmt.Errorf("%w: ensemble %s", ErrNotFound, ensembleID)
		}
		e := &w.Ensemble
		if err := br.QueryRow().Scan(&e.Scored, &e.Directional, &e.Hits, &e.Sum, &e.SumSquares); err != nil {
			return fmt.Errorf("store: performance: %w", err)
		}
		w.Predictions = e.Scored
		rows, err := br.Query()
		if err != nil {
			return fmt.Errorf("store: performance: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			at := AgentTally{EnsembleID: ensembleID}
			var created int64
			tl := &at.Tally
			if err := rows.Scan(&at.ID, &at.Type, &at.Weight, &created, &tl.Scored, &tl.Directional, &tl.Hits, &tl.Sum, &tl.SumSquares); err != nil {
				return fmt.Errorf("store: performance: %w", err)
			}
			at.CreatedAt = fromNanos(created)
			w.Agents = append(w.Agents, at)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("store: performance: %w", err)
		}
		return nil
	})
	if err != nil {
		return Window{}, err
	}
	return w, nil
}

// Rankings aggregates every agent of the tenant over its own ensemble's window.
func (p *Postgres) Rankings(ctx context.Context, t TenantID, lookback int) ([]AgentTally, error) {
	out := []AgentTally{}
	err := p.readTrip(ctx, t, "rankings", func(b *pgx.Batch) {
		b.Queue(pgRankings, t.id, lookback, t.id, t.id)
	}, func(br pgx.BatchResults) error {
		rows, err := br.Query()
		if err != nil {
			return fmt.Errorf("store: rankings: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var at AgentTally
			var created int64
			tl := &at.Tally
			if err := rows.Scan(&at.EnsembleID, &at.ID, &at.Type, &at.Weight, &created, &tl.Scored, &tl.Directional, &tl.Hits, &tl.Sum, &tl.SumSquares); err != nil {
				return fmt.Errorf("store: rankings: %w", err)
			}
			at.CreatedAt = fromNanos(created)
			out = append(out, at)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("store: rankings: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
