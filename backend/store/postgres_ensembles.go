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

const pgInsertAgentSQL = `INSERT INTO agents (tenant_id, ensemble_id, agent_id, agent_type, weight, created_at)
	VALUES ($1, $2, $3, $4, $5, $6)`

// CreateEnsemble stores e and its initial agents: one round trip, one
// (implicit) transaction.
func (p *Postgres) CreateEnsemble(ctx context.Context, t TenantID, e ensemble.Ensemble) error {
	return p.oneTrip(ctx, t, "create ensemble", func(b *pgx.Batch) {
		b.Queue(`INSERT INTO ensembles (tenant_id, ensemble_id, name, method, threshold, min_agents, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`, t.id, e.ID, e.Name, string(e.Method), e.Config.Threshold, e.Config.MinAgents, nanos(e.CreatedAt))
		for _, a := range e.Agents {
			b.Queue(pgInsertAgentSQL, t.id, e.ID, a.ID, a.Type, a.Weight, nanos(a.CreatedAt))
		}
	}, func(br pgx.BatchResults) error {
		if _, err := br.Exec(); err != nil {
			if pgCode(err) == pgUniqueViolation {
				return fmt.Errorf("%w: ensemble %s", ErrConflict, e.ID)
			}
			return fmt.Errorf("store: create ensemble: %w", err)
		}
		for _, a := range e.Agents {
			if _, err := br.Exec(); err != nil {
				return agentInsertError(err, a, e.ID)
			}
		}
		return nil
	})
}

func agentInsertError(err error, a ensemble.Agent, ensembleID string) error {
	switch pgCode(err) {
	case pgUniqueViolation:
		return fmt.Errorf("%w: agent %q in ensemble %s", ErrConflict, a.ID, ensembleID)
	case pgForeignKeyViolation:
		return fmt.Errorf("%w: ensemble %s", ErrNotFound, ensembleID)
	}
	return fmt.Errorf("store: add agent: %w", err)
}

func pgInsertAgent(ctx context.Context, tx pgx.Tx, t TenantID, ensembleID string, a ensemble.Agent) error {
	if _, err := tx.Exec(ctx, pgInsertAgentSQL, t.id, ensembleID, a.ID, a.Type, a.Weight, nanos(a.CreatedAt)); err != nil {
		return agentInsertError(err, a, ensembleID)
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

// Ensemble returns one ensemble with its agents, in one round trip.
func (p *Postgres) Ensemble(ctx context.Context, t TenantID, ensembleID string) (ensemble.Ensemble, error) {
	var e ensemble.Ensemble
	err := p.readTrip(ctx, t, "load ensemble", func(b *pgx.Batch) {
		b.Queue(`SELECT `+pgEnsembleColumns+` FROM ensembles WHERE tenant_id = $1 AND ensemble_id = $2`, t.id, ensembleID)
		b.Queue(`SELECT agent_id, agent_type, weight, created_at FROM agents
			WHERE tenant_id = $1 AND ensemble_id = $2 ORDER BY created_at, agent_id`, t.id, ensembleID)
	}, func(br pgx.BatchResults) error {
		var err error
		e, err = scanPgEnsemble(br.QueryRow())
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: ensemble %s", ErrNotFound, ensembleID)
		}
		if err != nil {
			return fmt.Errorf("store: load ensemble: %w", err)
		}
		rows, err := br.Query()
		if err != nil {
			return fmt.Errorf("store: load agents: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var a ensemble.Agent
			var created int64
			if err := rows.Scan(&a.ID, &a.Type, &a.Weight, &created); err != nil {
				return fmt.Errorf("store: load agents: %w", err)
			}
			a.CreatedAt = fromNanos(created)
			e.Agents = append(e.Agents, a)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("store: load agents: %w", err)
		}
		return nil
	})
	if err != nil {
		return ensemble.Ensemble{}, err
	}
	return e, nil
}

// ListEnsembles pages through the tenant's ensembles by (created_at, id):
// one query joins the page of ensembles with their agents.
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
	const query = `WITH page AS (
				SELECT ` + pgEnsembleColumns + ` FROM ensembles
				WHERE tenant_id = $1 AND (created_at, ensemble_id) > ($2, $3)
				ORDER BY created_at, ensemble_id LIMIT $4)
			SELECT p.ensemble_id, p.name, p.method, p.threshold, p.min_agents, p.created_at,
				a.agent_id, a.agent_type, a.weight, a.created_at
			FROM page p LEFT JOIN agents a ON a.tenant_id = $1 AND a.ensemble_id = p.ensemble_id
			ORDER BY p.created_at, p.ensemble_id, a.created_at, a.agent_id`
	err := p.readTrip(ctx, t, "list ensembles", func(b *pgx.Batch) {
		b.Queue(query, t.id, after.created, after.id, limit+1)
	}, func(br pgx.BatchResults) error {
		rows, err := br.Query()
		if err != nil {
			return fmt.Errorf("store: list ensembles: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var e ensemble.Ensemble
			var method string
			var created int64
			var agentID, agentType *string
			var weight *float64
			var agentCreated *int64
			if err := rows.Scan(&e.ID, &e.Name, &method, &e.Config.Threshold, &e.Config.MinAgents, &created,
				&agentID, &agentType, &weight, &agentCreated); err != nil {
				return fmt.Errorf("store: list ensembles: %w", err)
			}
			if n := len(out); n == 0 || out[n-1].ID != e.ID {
				e.Method = ensemble.Method(method)
				e.CreatedAt = fromNanos(created)
				e.Agents = []ensemble.Agent{}
				out = append(out, e)
			}
			if agentID != nil && agentType != nil && weight != nil && agentCreated != nil {
				last := &out[len(out)-1]
				last.Agents = append(last.Agents, ensemble.Agent{ID: *agentID, Type: *agentType, Weight: *weight, CreatedAt: fromNanos(*agentCreated)})
			}
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("store: list ensembles: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		last := out[len(out)-1]
		next = encodeCursor(listCursor{created: nanos(last.CreatedAt), id: last.ID})
	}
	return out, next, nil
}

// AddAgent registers a in an existing ensemble that has fewer than
// maxAgents agents. The ensemble row is locked first, so concurrent calls
// count one after another and cannot pass the cap together.
func (p *Postgres) AddAgent(ctx context.Context, t TenantID, ensembleID string, a ensemble.Agent, maxAgents int) error {
	return p.write(ctx, t, "add agent", func(tx pgx.Tx) error {
		if err := pgEnsembleExists(ctx, tx, t, ensembleID, true); err != nil {
			return err
		}
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM agents WHERE tenant_id = $1 AND ensemble_id = $2`, t.id, ensembleID).Scan(&n); err != nil {
			return fmt.Errorf("store: add agent: %w", err)
		}
		if n >= maxAgents {
			return fmt.Errorf("%w: ensemble %s already has %d agents (at most %d)", ErrLimit, ensembleID, n, maxAgents)
		}
		return pgInsertAgent(ctx, tx, t, ensembleID, a)
	})
}

// pgEnsembleExists is ErrNotFound unless t has the ensemble; lock holds its
// row until the transaction ends.
func pgEnsembleExists(ctx context.Context, tx pgx.Tx, t TenantID, ensembleID string, lock bool) error {
	q := `SELECT 1 FROM ensembles WHERE tenant_id = $1 AND ensemble_id = $2`
	if lock {
		q += ` FOR UPDATE`
	}
	var one int
	err := tx.QueryRow(ctx, q, t.id, ensembleID).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%w: ensemble %s", ErrNotFound, ensembleID)
	}
	if err != nil {
		return fmt.Errorf("store: find ensemble: %w", err)
	}
	return nil
}

// SetWeights replaces the weights of the named agents, all or none.
func (p *Postgres) SetWeights(ctx context.Context, t TenantID, ensembleID string, weights map[string]float64) error {
	return p.write(ctx, t, "set weights", func(tx pgx.Tx) error {
		if err := pgEnsembleExists(ctx, tx, t, ensembleID, false); err != nil {
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

// AddPrediction stores pr and one contributions row per agent signal: one
// round trip, one (implicit) transaction.
func (p *Postgres) AddPrediction(ctx context.Context, t TenantID, pr ensemble.Prediction) error {
	contrib, err := json.Marshal(pr.Contributions)
	if err != nil {
		return fmt.Errorf("store: add prediction: %w", err)
	}
	return p.oneTrip(ctx, t, "add prediction", func(b *pgx.Batch) {
		b.Queue(`INSERT INTO predictions (tenant_id, prediction_id, ensemble_id, symbol, signal, action, confidence, contributions, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`, t.id, pr.ID, pr.EnsembleID, pr.Symbol, pr.Signal, string(pr.Action), pr.Confidence, json.RawMessage(contrib), nanos(pr.CreatedAt))
		for _, c := range pr.Contributions {
			b.Queue(`INSERT INTO contributions (tenant_id, prediction_id, agent_id, signal) VALUES ($1, $2, $3, $4)`, t.id, pr.ID, c.AgentID, c.Signal)
		}
	}, func(br pgx.BatchResults) error {
		for i := 0; i <= len(pr.Contributions); i++ {
			_, err := br.Exec()
			switch pgCode(err) {
			case "":
			case pgForeignKeyViolation:
				return fmt.Errorf("%w: ensemble %s", ErrNotFound, pr.EnsembleID)
			case pgUniqueViolation:
				return fmt.Errorf("%w: prediction %s (or an agent twice in its contributions)", ErrConflict, pr.ID)
			}
			if err != nil {
				return fmt.Errorf("store: add prediction: %w", err)
			}
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
