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
	"time"

	"github.com/tenantgate/tenantgate/backend/ensemble"
)

// CreateEnsemble stores e and its initial agents.
func (s *SQLite) CreateEnsemble(ctx context.Context, t TenantID, e ensemble.Ensemble) error {
	if err := t.check(); err != nil {
		return err
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: create ensemble: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, `INSERT INTO ensembles (tenant_id, ensemble_id, name, method, threshold, min_agents, created_at)
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
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: create ensemble: commit: %w", err)
	}
	return nil
}

func insertAgent(ctx context.Context, tx *sql.Tx, t TenantID, ensembleID string, a ensemble.Agent) error {
	if _, err := tx.ExecContext(ctx, `INSERT INTO agents (tenant_id, ensemble_id, agent_id, agent_type, weight, created_at)
		VALUES (?, ?, ?, ?, ?, ?)`, t.id, ensembleID, a.ID, a.Type, a.Weight, nanos(a.CreatedAt)); err != nil {
		if isUniqueViolation(err) {
			return fmt.Errorf("%w: agent %q in ensemble %s", ErrConflict, a.ID, ensembleID)
		}
		return fmt.Errorf("store: add agent: %w", err)
	}
	return nil
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
	after := listCursor{created: -1 << 63}
	if cursor != "" {
		c, err := decodeCursor(cursor)
		if err != nil {
			return nil, "", err
		}
		after = c
	}
	rows, err := s.r.QueryContext(ctx, `WITH page AS (
			SELECT ensemble_id, name, method, threshold, min_agents, created_at FROM ensembles
			WHERE tenant_id = ? AND (created_at, ensemble_id) > (?, ?)
			ORDER BY created_at, ensemble_id LIMIT ?)
		SELECT p.ensemble_id, p.name, p.method, p.threshold, p.min_agents, p.created_at,
			a.agent_id, a.agent_type, a.weight, a.created_at
		FROM page p LEFT JOIN agents a ON a.tenant_id = ? AND a.ensemble_id = p.ensemble_id
		ORDER BY p.created_at, p.ensemble_id, a.created_at, a.agent_id`, t.id, after.created, after.id, limit+1, t.id)
	if err != nil {
		return nil, "", fmt.Errorf("store: list ensembles: %w", err)
	}
	defer func() { _ = rows.Close() }()
	out := []ensemble.Ensemble{}
	for rows.Next() {
		var e ensemble.Ensemble
		var method string
		var created int64
		var agentID, agentType sql.NullString
		var weight sql.NullFloat64
		var agentCreated sql.NullInt64
		if err := rows.Scan(&e.ID, &e.Name, &method, &e.Config.Threshold, &e.Config.MinAgents, &created,
			&agentID, &agentType, &weight, &agentCreated); err != nil {
			return nil, "", fmt.Errorf("store: list ensembles: %w", err)
		}
		if n := len(out); n == 0 || out[n-1].ID != e.ID {
			e.Method = ensemble.Method(method)
			e.CreatedAt = fromNanos(created)
			e.Agents = []ensemble.Agent{}
			out = append(out, e)
		}
		if agentID.Valid {
			last := &out[len(out)-1]
			last.Agents = append(last.Agents, ensemble.Agent{ID: agentID.String, Type: agentType.String, Weight: weight.Float64, CreatedAt: fromNanos(agentCreated.Int64)})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("store: list ensembles: %w", err)
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		last := out[len(out)-1]
		next = encodeCursor(listCursor{created: nanos(last.CreatedAt), id: last.ID})
	}
	return out, next, nil
}

// AddAgent registers a in an existing ensemble that has fewer than maxAgents.
func (s *SQLite) AddAgent(ctx context.Context, t TenantID, ensembleID string, a ensemble.Agent, maxAgents int) error {
	if err := t.check(); err != nil {
		return err
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: add agent: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if err := ensembleExists(ctx, tx, t, ensembleID); err != nil {
		return err
	}
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM agents WHERE tenant_id = ? AND ensemble_id = ?`, t.id, ensembleID).Scan(&n); err != nil {
		return fmt.Errorf("store: add agent: %w", err)
	}
	if n >= maxAgents {
		return fmt.Errorf("%w: ensemble %s already has %d agents (at most %d)", ErrLimit, ensembleID, n, maxAgents)
	}
	if err := insertAgent(ctx, tx, t, ensembleID, a); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: add agent: commit: %w", err)
	}
	return nil
}

func ensembleExists(ctx context.Context, q querier, t TenantID, ensembleID string) error {
	var n int
	if err := q.QueryRowContext(ctx, `SELECT count(*) FROM ensembles WHERE tenant_id = ? AND ensemble_id = ?`, t.id, ensembleID).Scan(&n); err != nil {
		return fmt.Errorf("store: find ensemble: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("%w: ensemble %s", ErrNotFound, ensembleID)
	}
	return nil
}

// SetWeights replaces the weights of the named agents.
func (s *SQLite) SetWeights(ctx context.Context, t TenantID, ensembleID string, weights map[string]float64) error {
	if err := t.check(); err != nil {
		return err
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: set weights: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if err := ensembleExists(ctx, tx, t, ensembleID); err != nil {
		return err
	}
	for id, w := range weights {
		res, err := tx.ExecContext(ctx, `UPDATE agents SET weight = ? WHERE tenant_id = ? AND ensemble_id = ? AND agent_id = ?`, w, t.id, ensembleID, id)
		if err != nil {
			return fmt.Errorf("store: set weights: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%w: agent %q in ensemble %s", ErrNotFound, id, ensembleID)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: set weights: commit: %w", err)
	}
	return nil
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

const predictionColumns = `prediction_id, ensemble_id, symbol, signal, action, confidence, contributions, created_at, realized_return, outcome_at`

func scanPrediction(sc interface{ Scan(...any) error }) (ensemble.Prediction, error) {
	var p ensemble.Prediction
	var action, contrib string
	var created int64
	var realized sql.NullFloat64
	var outcomeAt sql.NullInt64
	if err := sc.Scan(&p.ID, &p.EnsembleID, &p.Symbol, &p.Signal, &action, &p.Confidence, &contrib, &created, &realized, &outcomeAt); err != nil {
		return p, err
	}
	p.Action = ensemble.Action(action)
	p.CreatedAt = fromNanos(created)
	if err := json.Unmarshal([]byte(contrib), &p.Contributions); err != nil {
		return p, fmt.Errorf("decode contributions of %s: %w", p.ID, err)
	}
	if realized.Valid {
		r := realized.Float64
		p.RealizedReturn = &r
	}
	if outcomeAt.Valid {
		at := fromNanos(outcomeAt.Int64)
		p.OutcomeAt = &at
	}
	return p, nil
}

// RecordOutcome sets a prediction's realized return, once.
func (s *SQLite) RecordOutcome(ctx context.Context, t TenantID, ensembleID, predictionID string, realized float64, at time.Time) (ensemble.Prediction, error) {
	if err := t.check(); err != nil {
		return ensemble.Prediction{}, err
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return ensemble.Prediction{}, fmt.Errorf("store: record outcome: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	p, err := scanPrediction(tx.QueryRowContext(ctx, `SELECT `+predictionColumns+` FROM predictions
		WHERE tenant_id = ? AND ensemble_id = ? AND prediction_id = ?`, t.id, ensembleID, predictionID))
	if errors.Is(err, sql.ErrNoRows) {
		return ensemble.Prediction{}, fmt.Errorf("%w: prediction %s in ensemble %s", ErrNotFound, predictionID, ensembleID)
	}
	if err != nil {
		return ensemble.Prediction{}, fmt.Errorf("store: record outcome: %w", err)
	}
	if p.RealizedReturn != nil {
		return p, fmt.Errorf("%w: prediction %s already has an outcome", ErrConflict, predictionID)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE predictions SET realized_return = ?, outcome_at = ?
		WHERE tenant_id = ? AND prediction_id = ?`, realized, nanos(at), t.id, predictionID); err != nil {
		return ensemble.Prediction{}, fmt.Errorf("store: record outcome: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return ensemble.Prediction{}, fmt.Errorf("store: record outcome: commit: %w", err)
	}
	at = fromNanos(nanos(at))
	p.RealizedReturn, p.OutcomeAt = &realized, &at
	return p, nil
}

// --- paper exchange ---
