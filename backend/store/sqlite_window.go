package store

import (
	"context"
	"database/sql"
	"fmt"
)

// The tally columns of a window joined with contributions (wc: agent_id,
// signal, r) grouped per agent; d = sign(signal). Written in SQL that
// SQLite and PostgreSQL both run.
const agentTallyColumns = `count(wc.agent_id),
	coalesce(sum(CASE WHEN wc.signal <> 0 THEN 1 ELSE 0 END), 0),
	coalesce(sum(CASE WHEN wc.signal * wc.r > 0 THEN 1 ELSE 0 END), 0),
	coalesce(sum(CASE WHEN wc.signal > 0 THEN wc.r WHEN wc.signal < 0 THEN -wc.r ELSE 0 END), 0),
	coalesce(sum(CASE WHEN wc.signal <> 0 THEN wc.r * wc.r ELSE 0 END), 0)`

// ensembleWindow selects the newest `lookback` scored predictions of one
// ensemble (args: tenant, ensemble, lookback); the partial index
// predictions_scored serves it.
const ensembleWindow = `win AS (
	SELECT prediction_id, action, realized_return AS r FROM predictions
	WHERE tenant_id = ? AND ensemble_id = ? AND realized_return IS NOT NULL
	ORDER BY created_at DESC, prediction_id DESC LIMIT ?)`

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
	if err := tx.QueryRowContext(ctx, `WITH `+ensembleWindow+`
		SELECT count(*),
			coalesce(sum(CASE WHEN action IN ('buy', 'sell') THEN 1 ELSE 0 END), 0),
			coalesce(sum(CASE WHEN (action = 'buy' AND r > 0) OR (action = 'sell' AND r < 0) THEN 1 ELSE 0 END), 0),
			coalesce(sum(CASE action WHEN 'buy' THEN r WHEN 'sell' THEN -r ELSE 0 END), 0),
			coalesce(sum(CASE WHEN action IN ('buy', 'sell') THEN r * r ELSE 0 END), 0)
		FROM win`, t.id, ensembleID, lookback).Scan(&e.Scored, &e.Directional, &e.Hits, &e.Sum, &e.SumSquares); err != nil {
		return Window{}, fmt.Errorf("store: performance: %w", err)
	}
	w.Predictions = e.Scored
	rows, err := tx.QueryContext(ctx, `WITH `+ensembleWindow+`,
		wc AS (SELECT c.agent_id, c.signal, win.r FROM win JOIN contributions c ON c.tenant_id = ? AND c.prediction_id = win.prediction_id)
		SELECT a.agent_id, a.agent_type, a.weight, a.created_at, `+agentTallyColumns+`
		FROM agents a LEFT JOIN wc ON wc.agent_id = a.agent_id
		WHERE a.tenant_id = ? AND a.ensemble_id = ?
		GROUP BY a.agent_id, a.agent_type, a.weight, a.created_at
		ORDER BY a.created_at, a.agent_id`, t.id, ensembleID, lookback, t.id, t.id, ensembleID)
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
	rows, err := s.r.QueryContext(ctx, `WITH win AS (
			SELECT ensemble_id, prediction_id, r FROM (
				SELECT ensemble_id, prediction_id, realized_return AS r,
					row_number() OVER (PARTITION BY ensemble_id ORDER BY created_at DESC, prediction_id DESC) AS rn
				FROM predictions WHERE tenant_id = ? AND realized_return IS NOT NULL) ranked
			WHERE rn <= ?),
		wc AS (SELECT win.ensemble_id, c.agent_id, c.signal, win.r FROM win JOIN contributions c ON c.tenant_id = ? AND c.prediction_id = win.prediction_id)
		SELECT a.ensemble_id, a.agent_id, a.agent_type, a.weight, a.created_at, `+agentTallyColumns+`
		FROM agents a LEFT JOIN wc ON wc.ensemble_id = a.ensemble_id AND wc.agent_id = a.agent_id
		WHERE a.tenant_id = ?
		GROUP BY a.ensemble_id, a.agent_id, a.agent_type, a.weight, a.created_at
		ORDER BY a.ensemble_id, a.agent_id`, t.id, lookback, t.id, t.id)
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
