package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantgate/tenantgate/backend/ensemble"
)

// CreateEnsemble stores e and its initial agents in one transaction.
func (p *Postgres) CreateEnsemble(ctx context.Context, t TenantID, e ensemble.Ensemble) error {
	return p.write(ctx, t, "create ensemble", func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO ensembles (tenant_id, ensemble_id, name, method, threshold, min_agents, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`, t.id, e.ID, e.Name, string(e.Method), e.Config.Threshold, e.Config.MinAgents, nanos(e.CreatedAt)); err != nil {
			if pgCode(err) == pgUniqueViolation {
				return fmt.Errorf("%w: ensemble %s", ErrConflict, e.ID)
			}
			return fmt.Errorf("store: create ensemble: %w", err)
		}
		for _, a := range e.Agents {
			if err := pgInsertAgent(ctx, tx, t, e.ID, a); err != nil {
				return err
			}
		}
		return nil
	})
}

func pgInsertAgent(ctx context.Context, tx pgx.Tx, t TenantID, ensembleID string, a ensemble.Agent) error {
	if _, err := tx.Exec(ctx, `INSERT INTO agents (tenant_id, ensemble_id, agent_id, agent_type, weight, created_at)
		VALUES ($1, $2, $3, $4, $5, $6)`, t.id, ensembleID, a.ID, a.Type, a.Weight, nanos(a.CreatedAt)); err != nil {
		switch pgCode(err) {
		case pgUniqueViolation:
			return fmt.Errorf("%w: agent %q in ensemble %s", ErrConflict, a.ID, ensembleID)
		case pgForeignKeyViolation:
			return fmt.Errorf("%w: ensemble %s", ErrNotFound, ensembleID)
		}
		return fmt.Errorf("store: add agent: %w", err)
	}
	return nil
}

const pgEnsembleColumns = `ensemble_id, name, method, threshold, min_agents, created_at`

func scanPgEnsemble(row pgx.Row) (ensemble.Ensemble, error) {
	var e ensemble.Ensemble
	var method string
	var created int64
	if err := row.Scan(&e.ID, &e.Name, &method, &e.Config.Threshold, &e.Config.MinAgents, &created); err != nil {
		return e, err
	}
	e.Method = ensemble.Method(method)
	e.CreatedAt = fromNanos(created)
	e.Agents = []ensemble.Agent{}
	return e, nil
}

// Ensemble returns one ensemble with its agents.
func (p *Postgres) Ensemble(ctx context.Context, t TenantID, ensembleID string) (ensemble.Ensemble, error) {
	var e ensemble.Ensemble
	err := p.read(ctx, t, "load ensemble", func(tx pgx.Tx) error {
		var err error
		e, err = scanPgEnsemble(tx.QueryRow(ctx, `SELECT `+pgEnsembleColumns+` FROM ensembles
			WHERE tenant_id = $1 AND ensemble_id = $2`, t.id, ensembleID))
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: ensemble %s", ErrNotFound, ensembleID)
		}
		if err != nil {
			return fmt.Errorf("store: load ensemble: %w", err)
		}
		return pgLoadAgents(ctx, tx, t, []*ensemble.Ensemble{&e})
	})
	if err != nil {
		return ensemble.Ensemble{}, err
	}
	return e, nil
}

// pgLoadAgents fills the agents of es with one query, in registration order.
func pgLoadAgents(ctx context.Context, tx pgx.Tx, t TenantID, es []*ensemble.Ensemble) error {
	if len(es) == 0 {
		return nil
	}
	ids := make([]string, len(es))
	byID := make(map[string]*ensemble.Ensemble, len(es))
	for i, e := range es {
		ids[i] = e.ID
		byID[e.ID] = e
	}
	rows, err := tx.Query(ctx, `SELECT ensemble_id, agent_id, agent_type, weight, created_at FROM agents
		WHERE tenant_id = $1 AND ensemble_id = ANY($2) ORDER BY ensemble_id, created_at, agent_id`, t.id, ids)
	if err != nil {
		return fmt.Errorf("store: load agents: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var ensembleID string
		var a ensemble.Agent
		var created int64
		if err := rows.Scan(&ensembleID, &a.ID, &a.Type, &a.Weight, &created); err != nil {
			return fmt.Errorf("store: load agents: %w", err)
		}
		a.CreatedAt = fromNanos(created)
		if e := byID[ensembleID]; e != nil {
			e.Agents = append(e.Agents, a)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("store: load agents: %w", err)
	}
	return nil
}

// ListEnsembles pages through the tenant's ensembles by (created_at, id).
func (p *Postgres) ListEnsembles(ctx context.Context, t TenantID, cursor string, limit int) ([]ensemble.Ensemble, string, error) {
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
	out := []ensemble.Ensemble{}
	next := ""
	err := p.read(ctx, t, "list ensembles", func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+pgEnsembleColumns+` FROM ensembles
			WHERE tenant_id = $1 AND (created_at, ensemble_id) > ($2, $3)
			ORDER BY created_at, ensemble_id LIMIT $4`, t.id, after.created, after.id, limit+1)
		if err != nil {
			return fmt.Errorf("store: list ensembles: %w", err)
		}
		for rows.Next() {
			e, err := scanPgEnsemble(rows)
			if err != nil {
				rows.Close()
				return fmt.Errorf("store: list ensembles: %w", err)
			}
			out = append(out, e)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("store: list ensembles: %w", err)
		}
		if len(out) > limit {
			out = out[:limit]
			last := out[len(out)-1]
			next = encodeCursor(listCursor{created: nanos(last.CreatedAt), id: last.ID})
		}
		ptrs := make([]*ensemble.Ensemble, len(out))
		for i := range out {
			ptrs[i] = &out[i]
		}
		return pgLoadAgents(ctx, tx, t, ptrs)
	})
	if err != nil {
		return nil, "", err
	}
	return out, next, nil
}

// AddAgent registers a in an existing ensemble.
func (p *Postgres) AddAgent(ctx context.Context, t TenantID, ensembleID string, a ensemble.Agent) error {
	return p.write(ctx, t, "add agent", func(tx pgx.Tx) error {
		if err := pgEnsembleExists(ctx, tx, t, ensembleID); err != nil {
			return err
		}
		return pgInsertAgent(ctx, tx, t, ensembleID, a)
	})
}

func pgEnsembleExists(ctx context.Context, tx pgx.Tx, t TenantID, ensembleID string) error {
	var exists bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM ensembles WHERE tenant_id = $1 AND ensemble_id = $2)`, t.id, ensembleID).Scan(&exists); err != nil {
		return fmt.Errorf("store: find ensemble: %w", err)
	}
	if !exists {
		return fmt.Errorf("%w: ensemble %s", ErrNotFound, ensembleID)
	}
	return nil
}

// SetWeights replaces the weights of the named agents, all or none.
func (p *Postgres) SetWeights(ctx context.Context, t TenantID, ensembleID string, weights map[string]float64) error {
	return p.write(ctx, t, "set weights", func(tx pgx.Tx) error {
		if err := pgEnsembleExists(ctx, tx, t, ensembleID); err != nil {
			return err
		}
		for id, w := range weights {
			tag, err := tx.Exec(ctx, `UPDATE agents SET weight = $1 WHERE tenant_id = $2 AND ensemble_id = $3 AND agent_id = $4`, w, t.id, ensembleID, id)
			if err != nil {
				return fmt.Errorf("store: set weights: %w", err)
			}
			if tag.RowsAffected() == 0 {
				return fmt.Errorf("%w: agent %q in ensemble %s", ErrNotFound, id, ensembleID)
			}
		}
		return nil
	})
}

// AddPrediction stores pr.
func (p *Postgres) AddPrediction(ctx context.Context, t TenantID, pr ensemble.Prediction) error {
	contrib, err := json.Marshal(pr.Contributions)
	if err != nil {
		return fmt.Errorf("store: add prediction: %w", err)
	}
	return p.write(ctx, t, "add prediction", func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO predictions (tenant_id, prediction_id, ensemble_id, symbol, signal, action, confidence, contributions, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`, t.id, pr.ID, pr.EnsembleID, pr.Symbol, pr.Signal, string(pr.Action), pr.Confidence, json.RawMessage(contrib), nanos(pr.CreatedAt))
		switch pgCode(err) {
		case "":
		case pgForeignKeyViolation:
			return fmt.Errorf("%w: ensemble %s", ErrNotFound, pr.EnsembleID)
		case pgUniqueViolation:
			return fmt.Errorf("%w: prediction %s", ErrConflict, pr.ID)
		}
		if err != nil {
			return fmt.Errorf("store: add prediction: %w", err)
		}
		return nil
	})
}

const pgPredictionColumns = `prediction_id, ensemble_id, symbol, signal, action, confidence, contributions, created_at, realized_return, outcome_at`

func scanPgPrediction(row pgx.Row) (ensemble.Prediction, error) {
	var pr ensemble.Prediction
	var action string
	var contrib []byte
	var created int64
	var outcomeAt *int64
	if err := row.Scan(&pr.ID, &pr.EnsembleID, &pr.Symbol, &pr.Signal, &action, &pr.Confidence, &contrib, &created, &pr.RealizedReturn, &outcomeAt); err != nil {
		return pr, err
	}
	pr.Action = ensemble.Action(action)
	pr.CreatedAt = fromNanos(created)
	if err := json.Unmarshal(contrib, &pr.Contributions); err != nil {
		return pr, fmt.Errorf("decode contributions of %s: %w", pr.ID, err)
	}
	if outcomeAt != nil {
		at := fromNanos(*outcomeAt)
		pr.OutcomeAt = &at
	}
	return pr, nil
}

// RecordOutcome sets a prediction's realized return, once. The row is
// locked, so of two concurrent calls exactly one records.
func (p *Postgres) RecordOutcome(ctx context.Context, t TenantID, ensembleID, predictionID string, realized float64, at time.Time) (ensemble.Prediction, error) {
	var pr ensemble.Prediction
	err := p.write(ctx, t, "record outcome", func(tx pgx.Tx) error {
		var err error
		pr, err = scanPgPrediction(tx.QueryRow(ctx, `SELECT `+pgPredictionColumns+` FROM predictions
			WHERE tenant_id = $1 AND ensemble_id = $2 AND prediction_id = $3 FOR UPDATE`, t.id, ensembleID, predictionID))
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: prediction %s in ensemble %s", ErrNotFound, predictionID, ensembleID)
		}
		if err != nil {
			return fmt.Errorf("store: record outcome: %w", err)
		}
		if pr.RealizedReturn != nil {
			return fmt.Errorf("%w: prediction %s already has an outcome", ErrConflict, predictionID)
		}
		if _, err := tx.Exec(ctx, `UPDATE predictions SET realized_return = $1, outcome_at = $2
			WHERE tenant_id = $3 AND prediction_id = $4`, realized, nanos(at), t.id, predictionID); err != nil {
			return fmt.Errorf("store: record outcome: %w", err)
		}
		return nil
	})
	if errors.Is(err, ErrConflict) {
		return pr, err
	}
	if err != nil {
		return ensemble.Prediction{}, err
	}
	at = fromNanos(nanos(at))
	pr.RealizedReturn, pr.OutcomeAt = &realized, &at
	return pr, nil
}

func pgQueryPredictions(ctx context.Context, tx pgx.Tx, query string, args ...any) ([]ensemble.Prediction, error) {
	rows, err := tx.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("store: load predictions: %w", err)
	}
	defer rows.Close()
	out := []ensemble.Prediction{}
	for rows.Next() {
		pr, err := scanPgPrediction(rows)
		if err != nil {
			return nil, fmt.Errorf("store: load predictions: %w", err)
		}
		out = append(out, pr)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: load predictions: %w", err)
	}
	return out, nil
}

// ScoredPredictions returns an ensemble's predictions with outcomes, newest first.
func (p *Postgres) ScoredPredictions(ctx context.Context, t TenantID, ensembleID string, limit int) ([]ensemble.Prediction, error) {
	var lim any // NULL: no limit
	if limit > 0 {
		lim = limit
	}
	var out []ensemble.Prediction
	err := p.read(ctx, t, "scored predictions", func(tx pgx.Tx) error {
		var err error
		out, err = pgQueryPredictions(ctx, tx, `SELECT `+pgPredictionColumns+` FROM predictions
			WHERE tenant_id = $1 AND ensemble_id = $2 AND realized_return IS NOT NULL
			ORDER BY created_at DESC, prediction_id DESC LIMIT $3`, t.id, ensembleID, lim)
		return err
	})
	return out, err
}

// TenantScoredPredictions returns all of the tenant's predictions with outcomes.
func (p *Postgres) TenantScoredPredictions(ctx context.Context, t TenantID) ([]ensemble.Prediction, error) {
	var out []ensemble.Prediction
	err := p.read(ctx, t, "tenant scored predictions", func(tx pgx.Tx) error {
		var err error
		out, err = pgQueryPredictions(ctx, tx, `SELECT `+pgPredictionColumns+` FROM predictions
			WHERE tenant_id = $1 AND realized_return IS NOT NULL ORDER BY created_at, prediction_id`, t.id)
		return err
	})
	return out, err
}

// TenantAgents returns every agent of the tenant with its ensemble.
func (p *Postgres) TenantAgents(ctx context.Context, t TenantID) ([]EnsembleAgent, error) {
	out := []EnsembleAgent{}
	err := p.read(ctx, t, "tenant agents", func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT ensemble_id, agent_id, agent_type, weight, created_at FROM agents
			WHERE tenant_id = $1 ORDER BY ensemble_id, agent_id`, t.id)
		if err != nil {
			return fmt.Errorf("store: tenant agents: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var a EnsembleAgent
			var created int64
			if err := rows.Scan(&a.EnsembleID, &a.ID, &a.Type, &a.Weight, &created); err != nil {
				return fmt.Errorf("store: tenant agents: %w", err)
			}
			a.CreatedAt = fromNanos(created)
			out = append(out, a)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("store: tenant agents: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
