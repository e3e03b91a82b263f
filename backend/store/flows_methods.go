package store

import (
	"context"
	"errors"
	"time"

	"github.com/tenantgate/tenantgate/backend/ensemble"
	"github.com/tenantgate/tenantgate/backend/hedging"
)

// flows gives a store the Store methods that are written once (flows.go,
// flows_ensembles.go); run is the engine's transaction: it scopes to the
// tenant, begins, hands fn its txn and commits.
type flows struct {
	run func(ctx context.Context, t TenantID, op string, fn func(txn) error) error
}

// SeedAccount creates the tenant's account unless it already exists.
func (f flows) SeedAccount(ctx context.Context, t TenantID, acct hedging.Account, at time.Time) (created bool, err error) {
	err = f.run(ctx, t, "seed account", func(tx txn) error {
		created, err = seedAccount(ctx, tx, t, acct, at)
		return err
	})
	return created && err == nil, err
}

// SetAccount provisions or changes a tenant's account (operator command).
func (f flows) SetAccount(ctx context.Context, t TenantID, set AccountSet, at time.Time) (acct hedging.Account, err error) {
	err = f.run(ctx, t, "set account", func(tx txn) error {
		acct, err = setAccount(ctx, tx, t, set, at)
		return err
	})
	if err != nil {
		return hedging.Account{}, err
	}
	return acct, nil
}

// Trade runs plan and persists its fills in one transaction; trades of one
// tenant serialize on its account (PostgreSQL: the locked row; SQLite: the
// one write connection).
func (f flows) Trade(ctx context.Context, t TenantID, kind string, at time.Time, plan TradePlan) (ex Execution, err error) {
	err = f.run(ctx, t, "trade", func(tx txn) error {
		ex, err = trade(ctx, tx, t, kind, at, plan, nil)
		return err
	})
	if err != nil {
		return Execution{}, err
	}
	return ex, nil
}

// ExecuteOnce claims (t, key) and trades in the same transaction (see
// executeOnce).
func (f flows) ExecuteOnce(ctx context.Context, t TenantID, key, requestHash string, at, expiredBefore time.Time, plan TradePlan, render func(Execution) (Response, error)) (resp Response, replayed bool, err error) {
	err = f.run(ctx, t, "execute", func(tx txn) error {
		resp, replayed, err = executeOnce(ctx, tx, t, key, requestHash, at, expiredBefore, plan, render)
		return err
	})
	if err != nil {
		return Response{}, false, err
	}
	return resp, replayed, nil
}

// AddAgent registers a in an existing ensemble that has fewer than
// maxAgents agents (see addAgent).
func (f flows) AddAgent(ctx context.Context, t TenantID, ensembleID string, a ensemble.Agent, maxAgents int) error {
	return f.run(ctx, t, "add agent", func(tx txn) error { return addAgent(ctx, tx, t, ensembleID, a, maxAgents) })
}

// SetWeights replaces the weights of the named agents, all or none.
func (f flows) SetWeights(ctx context.Context, t TenantID, ensembleID string, weights map[string]float64) error {
	return f.run(ctx, t, "set weights", func(tx txn) error { return setWeights(ctx, tx, t, ensembleID, weights) })
}

// RecordOutcome sets a prediction's realized return, once (see
// recordOutcome); on ErrConflict it returns the prediction as stored.
func (f flows) RecordOutcome(ctx context.Context, t TenantID, ensembleID, predictionID string, realized float64, at time.Time) (pr ensemble.Prediction, err error) {
	err = f.run(ctx, t, "record outcome", func(tx txn) error {
		pr, err = recordOutcome(ctx, tx, t, ensembleID, predictionID, realized, at)
		return err
	})
	if err != nil && !errors.Is(err, ErrConflict) {
		return ensemble.Prediction{}, err
	}
	return pr, err
}
