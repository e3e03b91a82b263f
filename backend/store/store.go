// Package store persists ensembles, predictions, paper exchange accounts,
// idempotency records and spent assertions. Every method takes the tenant as
// a required TenantID, so a query that is not scoped to one tenant cannot be
// written through it; another tenant's row is simply not found (ErrNotFound,
// never "forbidden").
//
// Store is the interface the API uses, with two implementations that pass
// one conformance suite: SQLite (pure Go, modernc.org/sqlite; one machine)
// and PostgreSQL (pgx; replicas, with forced row-level security under a
// runtime role). The exchange flows are written once (flows.go) over a small
// transaction interface; each engine adds only its SQL dialect and driver
// glue. Migrations live in migrations/{sqlite,postgres} with one lister.
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
	// ErrLimit: the write would pass a cap the caller named (agents per ensemble).
	ErrLimit = errors.New("store: limit reached")
)

// Store is the storage the backend needs. Every implementation (SQLite here,
// PostgreSQL beside it) follows the contracts below exactly; the API relies on
// them and a conformance suite checks them.
type Store interface {
	// --- Ensembles and agents ---

	// CreateEnsemble stores e and its initial agents in one transaction;
	// an existing e.ID is ErrConflict. (The API caps len(e.Agents).)
	CreateEnsemble(ctx context.Context, t TenantID, e ensemble.Ensemble) error
	// Ensemble returns one ensemble with its agents ordered by (created_at,
	// agent_id); ErrNotFound when t has no such ensemble.
	Ensemble(ctx context.Context, t TenantID, ensembleID string) (ensemble.Ensemble, error)
	// ListEnsembles returns up to limit ensembles after cursor ("" for the
	// first page) in (created_at, ensemble_id) order, each with its agents
	// ordered as in Ensemble, and the cursor of the next page ("" at the
	// end). A cursor this store did not issue is ErrBadCursor. It runs ONE
	// query per page (ensembles joined with their agents), never one per
	// ensemble.
	ListEnsembles(ctx context.Context, t TenantID, cursor string, limit int) ([]ensemble.Ensemble, string, error)
	// AddAgent registers a in an existing ensemble (ErrNotFound otherwise).
	// When the ensemble already has maxAgents agents it fails with ErrLimit
	// and stores nothing; the count and the insert are one transaction, so
	// concurrent calls cannot pass the cap. A registered a.ID is ErrConflict.
	AddAgent(ctx context.Context, t TenantID, ensembleID string, a ensemble.Agent, maxAgents int) error
	// SetWeights replaces the weights of the named agents in one
	// transaction; an unknown ensemble or agent is ErrNotFound and changes
	// nothing.
	SetWeights(ctx context.Context, t TenantID, ensembleID string, weights map[string]float64) error

	// --- Predictions ---

	// AddPrediction stores p and one row per contribution (agent_id,
	// signal), which Performance and Rankings aggregate in SQL.
	AddPrediction(ctx context.Context, t TenantID, p ensemble.Prediction) error
	// RecordOutcome sets the realized return once; a second call is ErrConflict.
	RecordOutcome(ctx context.Context, t TenantID, ensembleID, predictionID string, realized float64, at time.Time) (ensemble.Prediction, error)
	// Performance aggregates, with SQL aggregates and never by loading the
	// rows, the WINDOW of an ensemble: its newest `lookback` predictions
	// that have an outcome, newest by (created_at, prediction_id). The
	// ensemble's Tally scores its action (buy +1, sell -1, hold 0) against
	// the realized return r; each agent's Tally scores sign(its signal) over
	// the window predictions it contributed to (see ensemble.Tally for the
	// exact sums). Agents lists every agent of the ensemble in the order of
	// Ensemble, with a zero Tally when it has no call in the window.
	// ErrNotFound when t has no such ensemble.
	Performance(ctx context.Context, t TenantID, ensembleID string, lookback int) (Window, error)
	// Rankings returns every agent of every ensemble of t (ordered by
	// ensemble_id, agent_id) with its Tally over ITS OWN ensemble's window
	// of `lookback` predictions (as in Performance); agents that share an
	// agent_id in two ensembles are two rows. Aggregated in SQL.
	Rankings(ctx context.Context, t TenantID, lookback int) ([]AgentTally, error)

	// --- Paper exchange ---

	// Account returns the tenant's account; ErrNotFound when none was
	// provisioned (SeedAccount or SetAccount).
	Account(ctx context.Context, t TenantID) (hedging.Account, error)
	// SeedAccount creates the tenant's account with acct unless it exists;
	// it reports whether it created it.
	SeedAccount(ctx context.Context, t TenantID, acct hedging.Account, at time.Time) (bool, error)
	// SetAccount is the operator's provisioning call (`backend accounts
	// set`): in one transaction it creates the account when missing (cash
	// 0), sets each listed spot balance (quantity 0 removes it; assets not
	// listed keep theirs), sets cash when set.CashUSD is not nil, leaves
	// perpetual positions and fees alone, and returns the account after.
	SetAccount(ctx context.Context, t TenantID, set AccountSet, at time.Time) (hedging.Account, error)
	// ExecuteOnce runs plan and render in one transaction that first claims
	// (t, key). A later call with the same key and requestHash returns the
	// stored response with replayed=true and trades nothing; with another
	// requestHash it fails with ErrIdempotencyMismatch. A stored key whose
	// created_at is before expiredBefore has expired: it is claimed afresh
	// as if absent (the sweep may also have deleted it). If plan or render
	// fails, nothing is stored and nothing is traded. plan sees ErrNotFound
	// from a missing account as Trade does.
	ExecuteOnce(ctx context.Context, t TenantID, key, requestHash string, at, expiredBefore time.Time, plan TradePlan, render func(Execution) (Response, error)) (resp Response, replayed bool, err error)
	// Trade runs plan in one transaction and persists its fills. A tenant
	// without an account is ErrNotFound (plan is not called). When plan
	// returns no fills nothing is stored and the Execution has ID "".
	Trade(ctx context.Context, t TenantID, kind string, at time.Time, plan TradePlan) (Execution, error)
	// SweepIdempotencyKeys deletes up to limit idempotency records (of any
	// tenant) created before olderThan and returns how many it deleted. It
	// is the one maintenance call that is not scoped to a tenant: the
	// backend runs it on a timer with the retention (24 h by default).
	// It never deletes a record younger than MinSweepAge, whatever
	// olderThan says (on PostgreSQL the database function clamps it, as
	// the runtime role may call it).
	SweepIdempotencyKeys(ctx context.Context, olderThan time.Time, limit int) (int, error)

	// --- Assertions ---

	// SpendAssertion records sp.JTI until sp.Until, or fails with
	// ErrReplayed when a request already spent it (every replica of a
	// shared store sees the same set). The API calls it for a request whose
	// spend no transaction recorded (see SpendsInTransaction).
	SpendAssertion(ctx context.Context, sp *Spend) error

	// Health says whether the database answers, within ctx.
	Health(ctx context.Context) Health

	Close() error
}

// Window is the aggregate of an ensemble's newest scored predictions.
type Window struct {
	Lookback    int            // the lookback asked for
	Predictions int            // scored predictions in the window (<= Lookback)
	Ensemble    ensemble.Tally // the ensemble's own actions
	Agents      []AgentTally   // every agent of the ensemble
}

// AgentTally is one agent of one ensemble with its tally over a window.
type AgentTally struct {
	EnsembleID string
	ensemble.Agent
	Tally ensemble.Tally
}

// AccountSet is what `backend accounts set` changes.
type AccountSet struct {
	Spot    map[string]float64 // asset -> quantity (>= 0); 0 removes the balance
	CashUSD *float64           // nil keeps the cash
}

// TradePlan turns the current account into fills and the account after them.
type TradePlan func(before hedging.Account) ([]hedging.Fill, hedging.Account, error)

// Execution is a persisted set of fills.
type Execution struct {
	ID     string // "" when there were no fills (nothing was stored)
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

// MinSweepAge is the youngest an idempotency record may be and still be
// swept.
const MinSweepAge = 24 * time.Hour

// clampSweep moves olderThan back to now - MinSweepAge if it is later.
func clampSweep(olderThan, now time.Time) time.Time {
	if limit := now.Add(-MinSweepAge); olderThan.After(limit) {
		return limit
	}
	return olderThan
}

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewID returns prefix + "_" + 26 random base32 characters (128 bits).
func NewID(prefix string) string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return prefix + "_" + strings.ToLower(idEncoding.EncodeToString(b[:]))
}
