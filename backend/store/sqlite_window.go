package store

import (
	"context"
	"database/sql"
	"fmt"
)

// Performance aggregates the ensemble's window in one read transaction.
func (s *SQLite) Performance(ctx context.Context, t TenantID, ensembleID string, lookback int) (Window, error) {
	if err := t.check(); err != nil {
		return Window{}, err
	}
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return Window{}, fmt.Errorf("store: performance: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if err := ensembleExists(ctx, &sqliteTx{tx: tx}, t, ensembleID, false); err != nil {
		return Window{}, err
	}
	w := Window{Lookback: lookback, Agents: []AgentTally{}}
	e := &w.Ensemble
	if err := tx.QueryRowContext(ctx, ensembleTallySQL, t.id, ensembleID, lookback).Scan(&e.Scored, &e.Directional, &e.Hits, &e.Sum, &e.SumSquares); err != nil {
		return Window{}, fmt.Errorf("store: performance: %w", err)
	}
	w.Predictions = e.Scored
	rows, err := tx.QueryContext(ctx, agentTalliesSQL, t.id, ensembleID, lookback, t.id, t.id, ensembleID)
	if err != nil {
		return Window{}, fmt.Errorf("store: performance: %w", err)
	}
	defer func() { _ = rows.Close() }()
	for rows.Next() {
		at := AgentTally{EnsembleID: ensembleID}
		if err := scanAgentTally(rows, &at); err != nil {
			return Window{}, fmt.Errorf("store: performance: %w", err)
		}
		w.Agents = append(w.Agents, at)
	}
	if err := rows.Err(); err != nil {
		return Window{}, fmt.Errorf("store: performance: %w", err)
	}
	return w, nil
}

func scanAgentTally(rows *sql.Rows, at *AgentTally) error {
	var created int64
	tl := &at.Tally
	if err := rows.Scan(&at.ID, &at.Type, &at.Weight, &created, &tl.Scored, &tl.Directional, &tl.Hits, &tl.Sum, &tl.SumSquares); err != nil {
		return err
	}
	at.CreatedAt = fromNanos(created)
	return nil
}

// Rankings aggregates every ensemble agent of the tenant over its own
// ensemble's window (a row_number() per ensemble picks the window).
func (s *SQLite) Rankings(ctx context.Context, t TenantID, lookback int) ([]AgentTally, error) {
	if err := t.check(); err != nil {
		return nil, err
	}
	rows, err := s.r.QueryContext(ctx, rankingsSQL, t.id, lookback, t.id, t.id)
	if err != nil {
		return nil, fmt.Errorf("store: rankings: %w", err)
	}
	defer func() { _ = rows.Close() }()
	out := []AgentTally{}
	for rows.Next() {
		var at AgentTally
		var created int64
		tl := &at.Tally
		if err := rows.Scan(&at.EnsembleID, &at.ID, &at.Type, &at.Weight, &created, &tl.Scored, &tl.Directional, &tl.Hits, &tl.Sum, &tl.SumSquares); err != nil {
			return nil, fmt.Errorf("store: rankings: %w", err)
		}
		at.CreatedAt = fromNanos(created)
		out = append(out, at)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: rankings: %w", err)
	}
	return out, nil
}
