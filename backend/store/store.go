// Package store persists ensembles, predictions, paper exchange accounts and
// idempotency records. Every method takes the tenant as a required TenantID,
// so a query that is not scoped to one tenant cannot be written through it;
// another tenant's row is simply not found (ErrNotFound, never "forbidden").
//
// Store is the interface the API uses; SQLite (pure Go, modernc.org/sqlite)
// implements it. A PostgreSQL implementation keeps the same schema shape:
// tenant_id leads every key and index.
package store

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"strings"
	"time"

	"github.com/tenantgate/tenantgate/backend/ensemble"
	"github.com/tenantgate/tenantgate/backend/hedging"
)

// Errors the API maps to HTTP statuses.
var (
	ErrNotFound            = errors.New("store: not found")
	ErrConflict            = errors.New("store: already exists")
	ErrBadCursor           = errors.New("store: malformed cursor")
	ErrIdempotencyMismatch = errors.New("store: idempotency key reused with a different request")
)

// Store is the storage the backend needs.
type Store interface {
	// Ensembles and agents.
	CreateEnsemble(ctx context.Context, t TenantID, e ensemble.Ensemble) error
	Ensemble(ctx context.Context, t TenantID, ensembleID string) (ensemble.Ensemble, error)
	// ListEnsembles returns up to limit ensembles after cursor ("" for the
	// first page) in creation order, and the cursor of the next page ("" at
	// the end).
	ListEnsembles(ctx context.Context, t TenantID, cursor string, limit int) ([]ensemble.Ensemble, string, error)
	AddAgent(ctx context.Context, t TenantID, ensembleID string, a ensemble.Agent) error
	SetWeights(ctx context.Context, t TenantID, ensembleID string, weights map[string]float64) error

	// Predictions.
	AddPrediction(ctx context.Context, t TenantID, p ensemble.Prediction) error
	// RecordOutcome sets the realized return once; a second call is ErrConflict.
	RecordOutcome(ctx context.Context, t TenantID, ensembleID, predictionID string, realized float64, at time.Time) (ensemble.Prediction, error)
	// ScoredPredictions returns the newest limit predictions of an ensemble
	// that have an outcome (limit <= 0: all), newest first.
	ScoredPredictions(ctx context.Context, t TenantID, ensembleID string, limit int) ([]ensemble.Prediction, error)
	// TenantScoredPredictions returns every prediction with an outcome of
	// every ensemble of the tenant.
	TenantScoredPredictions(ctx context.Context, t TenantID) ([]ensemble.Prediction, error)
	// TenantAgents returns every agent of every ensemble of the tenant.
	TenantAgents(ctx context.Context, t TenantID) ([]EnsembleAgent, error)

	// Paper exchange.
	Account(ctx context.Context, t TenantID) (hedging.Account, error)
	// SeedAccount creates the tenant's account with acct unless it exists;
	// it reports whether it created it.
	SeedAccount(ctx context.Context, t TenantID, acct hedging.Account, at time.Time) (bool, error)
	// ExecuteOnce runs plan and render in one transaction that first claims
	// (t, key). A later call with the same key and requestHash returns the
	// stored response with replayed=true and trades nothing; with another
	// requestHash it fails with ErrIdempotencyMismatch. If plan or render
	// fails, nothing is stored and nothing is traded.
	ExecuteOnce(ctx context.Context, t TenantID, key, requestHash string, at time.Time, plan TradePlan, render func(Execution) (Response, error)) (resp Response, replayed bool, err error)
	// Trade runs plan in one transaction and persists its fills.
	Trade(ctx context.Context, t TenantID, kind string, at time.Time, plan TradePlan) (Execution, error)

	Close() error
}

// EnsembleAgent is an agent with the ensemble it belongs to.
type EnsembleAgent struct {
	EnsembleID string
	ensemble.Agent
}

// TradePlan turns the current account into fills and the account after them.
type TradePlan func(before hedging.Account) ([]hedging.Fill, hedging.Account, error)

// Execution is a persisted set of fills.
type Execution struct {
	ID     string
	Kind   string // "execute" or "close"
	Fills  []Filled
	Before hedging.Account
	After  hedging.Account
	At     time.Time
}

// Filled is a fill with the order id it was stored under.
type Filled struct {
	OrderID string
	hedging.Fill
}

// Response is an HTTP response stored for idempotent replay.
type Response struct {
	Status      int
	ContentType string
	Body        []byte
}

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewID returns prefix + "_" + 26 random base32 characters (128 bits).
func NewID(prefix string) string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return prefix + "_" + strings.ToLower(idEncoding.EncodeToString(b[:]))
}
