package store

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/tenantgate/tenantgate/backend/ensemble"
)

// CreateEnsemble stores e and its initial agents in one transaction.
func (s *SQLite) CreateEnsemble(ctx context.Context, t TenantID, e ensemble.Ensemble) error {
	return s.flow(ctx, t, "create ensemble", func(tx txn) error {
		if _, err := tx.exec(ctx, `INSERT INTO ensembles (tenant_id, ensemble_id, name, method, threshold, min_agents, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, t.id, e.ID, e.Name, string(e.Method), e.Config.Threshold, e.Config.MinAgents, nanos(e.CreatedAt)); err != nil {
			if isUniqueViolation(err) {
				return fmt.Errorf("%w: ensemble %s", ErrConflict, e.ID)
			}
			return fmt.Errorf("store: create ensemble: %w", err)
		}
		for _, a := range e.Agents {
			if err := insertAgent(ctx, tx, t, e.ID, a); err != nil {
				return err
			}
		}
		return nil
	})
}

func isUniqueViolation(err error) bool {
	// modernc reports "constraint failed: UNIQUE constraint failed: ..." (2067)
	// or a PRIMARY KEY violation (1555); matching the text avoids importing
	// the driver's internal error codes.
	msg := err.Error()
	return strings.Contains(msg, "UNIQUE constraint failed") || strings.Contains(msg, "PRIMARY KEY")
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Ensemble returns one ensemble with its agents.
func (s *SQLite) Ensemble(ctx context.Context, t TenantID, ensembleID string) (ensemble.Ensemble, error) {
	if err := t.check(); err != nil {
		return ensemble.Ensemble{}, err
	}
	return loadEnsemble(ctx, s.r, t, ensembleID)
}

func loadEnsemble(ctx context.Context, q querier, t TenantID, ensembleID string) (ensemble.Ensemble, error) {
	var e ensemble.Ensemble
	var method string
	var created int64
	err := q.QueryRowContext(ctx, `SELECT ensemble_id, name, method, threshold, min_agents, created_at
		FROM ensembles WHERE tenant_id = ? AND ensemble_id = ?`, t.id, ensembleID).
		Scan(&e.ID, &e.Name, &method, &e.Config.Threshold, &e.Config.MinAgents, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return ensemble.Ensemble{}, fmt.Errorf("%w: ensemble %s", ErrNotFound, ensembleID)
	}
	if err != nil {
		return ensemble.Ensemble{}, fmt.Errorf("store: load ensemble: %w", err)
	}
	e.Method = ensemble.Method(method)
	e.CreatedAt = fromNanos(created)
	if e.Agents, err = loadAgents(ctx, q, t, ensembleID); err != nil {
		return ensemble.Ensemble{}, err
	}
	return e, nil
}

func loadAgents(ctx context.Context, q querier, t TenantID, ensembleID string) ([]ensemble.Agent, error) {
	rows, err := q.QueryContext(ctx, `SELECT agent_id, agent_type, weight, created_at FROM agents
		WHERE tenant_id = ? AND ensemble_id = ? ORDER BY created_at, agent_id`, t.id, ensembleID)
	if err != nil {
		return nil, fmt.Errorf("store: load agents: %w", err)
	}
	defer func() { _ = rows.Close() }()
	agents := []ensemble.Agent{}
	for rows.Next() {
		var a ensemble.Agent
		var created int64
		if err := rows.Scan(&a.ID, &a.Type, &a.Weight, &created); err != nil {
			return nil, fmt.Errorf("store: load agents: %w", err)
		}
		a.CreatedAt = fromNanos(created)
		agents = append(agents, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: load agents: %w", err)
	}
	return agents, nil
}

type listCursor struct {
	created int64
	id      string
}

func encodeCursor(c listCursor) string {
	return base64.RawURLEncoding.EncodeToString([]byte("v1:" + strconv.FormatInt(c.created, 10) + ":" + c.id))
}

func decodeCursor(s string) (listCursor, error) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return listCursor{}, ErrBadCursor
	}
	parts := strings.SplitN(string(raw), ":", 3)
	if len(parts) != 3 || parts[0] != "v1" {
		return listCursor{}, ErrBadCursor
	}
	n, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil {
		return listCursor{}, ErrBadCursor
	}
	return listCursor{created: n, id: parts[2]}, nil
}

// ListEnsembles pages through the tenant's ensembles by (created_at, id):
// one query joins the page of ensembles with their agents.
func (s *SQLite) ListEnsembles(ctx context.Context, t TenantID, cursor string, limit int) ([]ensemble.Ensemble, string, error) {
	if err := t.check(); err != nil {
		return nil, "", err
	}
	args, err := listArgs(t, cursor, limit)
	if err != nil {
		return nil, "", err
	}
	rows, err := s.r.QueryContext(ctx, listEnsemblesSQL, args...)
	if err != nil {
		return nil, "", fmt.Errorf("store: list ensembles: %w", err)
	}
	defer func() { _ = rows.Close() }()
	out, err := foldEnsembles(rows)
	if err != nil {
		return nil, "", err
	}
	out, next := page(out, limit)
	return out, next, nil
}

// --- predictions ---

// AddPrediction stores p and its contributions in one transaction.
func (s *SQLite) AddPrediction(ctx context.Context, t TenantID, p ensemble.Prediction) error {
	if err := t.check(); err != nil {
		return err
	}
	contrib, err := json.Marshal(p.Contributions)
	if err != nil {
		return fmt.Errorf("store: add prediction: %w", err)
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: add prediction: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	_, err = tx.ExecContext(ctx, `INSERT INTO predictions (tenant_id, prediction_id, ensemble_id, symbol, signal, action, confidence, contributions, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, t.id, p.ID, p.EnsembleID, p.Symbol, p.Signal, string(p.Action), p.Confidence, string(contrib), nanos(p.CreatedAt))
	if err != nil {
		if strings.Contains(err.Error(), "FOREIGN KEY") {
			return fmt.Errorf("%w: ensemble %s", ErrNotFound, p.EnsembleID)
		}
		return fmt.Errorf("store: add prediction: %w", err)
	}
	for _, c := range p.Contributions {
		if _, err := tx.ExecContext(ctx, `INSERT INTO contributions (tenant_id, prediction_id, agent_id, signal) VALUES (?, ?, ?, ?)`,
			t.id, p.ID, c.AgentID, c.Signal); err != nil {
			return fmt.Errorf("store: add prediction: contribution of %q: %w", c.AgentID, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: add prediction: commit: %w", err)
	}
	return nil
}

// --- paper exchange ---
