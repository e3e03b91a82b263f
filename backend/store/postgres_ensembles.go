package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

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
func (p *Postgres) ListEnsembles(ctx context.Context, t TenantID, cursor string, limit int) (out []ensemble.Ensemble, next string, err error) {
	if err := t.check(); err != nil {
		return nil, "", err
	}
	args, err := listArgs(t, cursor, limit)
	if err != nil {
		return nil, "", err
	}
	err = p.readTrip(ctx, t, "list ensembles", func(b *pgx.Batch) { b.Queue(pgSQL(listEnsemblesSQL), args...) }, func(br pgx.BatchResults) error {
		rows, err := br.Query()
		if err != nil {
			return fmt.Errorf("store: list ensembles: %w", err)
		}
		defer rows.Close()
		out, err = foldEnsembles(rows)
		return err
	})
	if err != nil {
		return nil, "", err
	}
	out, next = page(out, limit)
	return out, next, nil
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
