package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/tenantgate/tenantgate/backend/ensemble"
)

// The ensemble write flows, written once over txn (see flows.go).

// insertAgent adds a to an ensemble; a registered agent id is ErrConflict.
func insertAgent(ctx context.Context, tx txn, t TenantID, ensembleID string, a ensemble.Agent) error {
	if _, err := tx.exec(ctx, `INSERT INTO agents (tenant_id, ensemble_id, agent_id, agent_type, weight, created_at)
		VALUES (?, ?, ?, ?, ?, ?)`, t.id, ensembleID, a.ID, a.Type, a.Weight, nanos(a.CreatedAt)); err != nil {
		if tx.uniqueViolation(err) {
			return fmt.Errorf("%w: agent %q in ensemble %s", ErrConflict, a.ID, ensembleID)
		}
		return fmt.Errorf("store: add agent: %w", err)
	}
	return nil
}

// ensembleExists is ErrNotFound unless t has the ensemble; lock holds its
// row until the transaction ends (where the engine has row locks).
func ensembleExists(ctx context.Context, tx txn, t TenantID, ensembleID string, lock bool) error {
	q := `SELECT 1 FROM ensembles WHERE tenant_id = ? AND ensemble_id = ?`
	if lock {
		q += tx.forUpdate()
	}
	var one int
	err := tx.queryRow(ctx, q, t.id, ensembleID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w: ensemble %s", ErrNotFound, ensembleID)
	}
	if err != nil {
		return fmt.Errorf("store: find ensemble: %w", err)
	}
	return nil
}

// addAgent registers a in an existing ensemble that has fewer than
// maxAgents agents. The ensemble row is locked first (SQLite: the one write
// connection), so concurrent calls count one after another.
func addAgent(ctx context.Context, tx txn, t TenantID, ensembleID string, a ensemble.Agent, maxAgents int) error {
	if err := ensembleExists(ctx, tx, t, ensembleID, true); err != nil {
		return err
	}
	var n int
	if err := tx.queryRow(ctx, `SELECT count(*) FROM agents WHERE tenant_id = ? AND ensemble_id = ?`, t.id, ensembleID).Scan(&n); err != nil {
		return fmt.Errorf("store: add agent: %w", err)
	}
	if n >= maxAgents {
		return fmt.Errorf("%w: ensemble %s already has %d agents (at most %d)", ErrLimit, ensembleID, n, maxAgents)
	}
	return insertAgent(ctx, tx, t, ensembleID, a)
}

// setWeights replaces the weights of the named agents, all or none.
func setWeights(ctx context.Context, tx txn, t TenantID, ensembleID string, weights map[string]float64) error {
	if err := ensembleExists(ctx, tx, t, ensembleID, false); err != nil {
		return err
	}
	for id, w := range weights {
		n, err := tx.exec(ctx, `UPDATE agents SET weight = ? WHERE tenant_id = ? AND ensemble_id = ? AND agent_id = ?`, w, t.id, ensembleID, id)
		if err != nil {
			return fmt.Errorf("store: set weights: %w", err)
		}
		if n == 0 {
			return fmt.Errorf("%w: agent %q in ensemble %s", ErrNotFound, id, ensembleID)
		}
	}
	return nil
}

const predictionColumns = `prediction_id, ensemble_id, symbol, signal, action, confidence, contributions, created_at, realized_return, outcome_at`

// scanPrediction reads predictionColumns (contributions as JSON text or
// JSONB, both into bytes).
func scanPrediction(sc scanner) (ensemble.Prediction, error) {
	var pr ensemble.Prediction
	var action string
	var contrib []byte
	var created int64
	var outcomeAt *int64
	if err := sc.Scan(&pr.ID, &pr.EnsembleID, &pr.Symbol, &pr.Signal, &action, &pr.Confidence, &contrib, &created, &pr.RealizedReturn, &outcomeAt); err != nil {
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

// recordOutcome sets a prediction's realized return, once. The row is
// locked (SQLite: the one write connection), so of two concurrent calls
// exactly one records.
func recordOutcome(ctx context.Context, tx txn, t TenantID, ensembleID, predictionID string, realized float64, at time.Time) (ensemble.Prediction, error) {
	pr, err := scanPrediction(tx.queryRow(ctx, `SELECT `+predictionColumns+` FROM predictions
		WHERE tenant_id = ? AND ensemble_id = ? AND prediction_id = ?`+tx.forUpdate(), t.id, ensembleID, predictionID))
	if errors.Is(err, sql.ErrNoRows) {
		return ensemble.Prediction{}, fmt.Errorf("%w: prediction %s in ensemble %s", ErrNotFound, predictionID, ensembleID)
	}
	if err != nil {
		return ensemble.Prediction{}, fmt.Errorf("store: record outcome: %w", err)
	}
	if pr.RealizedReturn != nil {
		return pr, fmt.Errorf("%w: prediction %s already has an outcome", ErrConflict, predictionID)
	}
	if _, err := tx.exec(ctx, `UPDATE predictions SET realized_return = ?, outcome_at = ?
		WHERE tenant_id = ? AND prediction_id = ?`, realized, nanos(at), t.id, predictionID); err != nil {
		return ensemble.Prediction{}, fmt.Errorf("store: record outcome: %w", err)
	}
	at = fromNanos(nanos(at))
	pr.RealizedReturn, pr.OutcomeAt = &realized, &at
	return pr, nil
}
