package store

import (
	"context"
	"database/sql"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tenantgate/tenantgate/backend/ensemble"
	"github.com/tenantgate/tenantgate/backend/hedging"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

//go:embed migrations/*.sql
var migrations embed.FS

// SQLite is the embedded Store. Writes go through a pool of one connection,
// so write transactions queue in process instead of failing with SQLITE_BUSY;
// reads use their own pool and run concurrently thanks to WAL.
type SQLite struct {
	w *sql.DB
	r *sql.DB
}

var _ Store = (*SQLite)(nil)

// OpenSQLite opens (creating if needed) the database at path, with WAL,
// synchronous=FULL (an acknowledged write survives a crash or SIGKILL),
// busy_timeout and foreign keys, and applies pending migrations.
func OpenSQLite(ctx context.Context, path string) (*SQLite, error) {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("store: create directory for %s: %w", path, err)
		}
	}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "foreign_keys(ON)")
	q.Set("_txlock", "immediate") // take the write lock at BEGIN, not on first write
	dsn := "file:" + path + "?" + q.Encode()
	w, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxIdleTime(0)
	w.SetConnMaxLifetime(0)
	if err := w.PingContext(ctx); err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	if err := migrate(ctx, w, migrations); err != nil {
		_ = w.Close()
		return nil, err
	}
	q.Set("_txlock", "deferred")
	r, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("store: open %s for reading: %w", path, err)
	}
	r.SetMaxOpenConns(8)
	r.SetMaxIdleConns(8)
	return &SQLite{w: w, r: r}, nil
}

// Close closes both pools.
func (s *SQLite) Close() error {
	return errors.Join(s.r.Close(), s.w.Close())
}

// migrate applies the migrations/NNNN_name.sql files of fsys that
// schema_migrations does not list yet, in order, each in its own transaction.
func migrate(ctx context.Context, db *sql.DB, fsys fs.FS) error {
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER NOT NULL PRIMARY KEY,
		name       TEXT    NOT NULL,
		applied_at INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("store: create schema_migrations: %w", err)
	}
	names, err := fs.Glob(fsys, "migrations/*.sql")
	if err != nil {
		return fmt.Errorf("store: list migrations: %w", err)
	}
	type migration struct {
		version int
		name    string
	}
	list := make([]migration, 0, len(names))
	seen := map[int]string{}
	for _, name := range names {
		base := path.Base(name)
		version, err := strconv.Atoi(strings.SplitN(base, "_", 2)[0])
		if err != nil || version <= 0 {
			return fmt.Errorf("store: migration %s: name must start with a positive number (NNNN_name.sql)", base)
		}
		if other, dup := seen[version]; dup {
			return fmt.Errorf("store: migrations %s and %s have the same version %d", other, base, version)
		}
		seen[version] = base
		list = append(list, migration{version, name})
	}
	// By number, not by name: 10_x.sql comes after 9_y.sql.
	sort.Slice(list, func(i, j int) bool { return list[i].version < list[j].version })
	for _, m := range list {
		base := path.Base(m.name)
		body, err := fs.ReadFile(fsys, m.name)
		if err != nil {
			return fmt.Errorf("store: read migration %s: %w", base, err)
		}
		if err := applyMigration(ctx, db, m.version, base, string(body)); err != nil {
			return err
		}
	}
	return nil
}

func applyMigration(ctx context.Context, db *sql.DB, version int, name, body string) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: migration %s: %w", name, err)
	}
	defer func() { _ = tx.Rollback() }()
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, version).Scan(&n); err != nil {
		return fmt.Errorf("store: migration %s: %w", name, err)
	}
	if n > 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, body); err != nil {
		return fmt.Errorf("store: apply migration %s: %w", name, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
		version, name, time.Now().UTC().UnixNano()); err != nil {
		return fmt.Errorf("store: record migration %s: %w", name, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: commit migration %s: %w", name, err)
	}
	return nil
}

func nanos(t time.Time) int64 { return t.UTC().UnixNano() }

func fromNanos(n int64) time.Time { return time.Unix(0, n).UTC() }

// --- ensembles ---

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

// Account returns the tenant's account; ErrNotFound when it has none.
func (s *SQLite) Account(ctx context.Context, t TenantID) (hedging.Account, error) {
	if err := t.check(); err != nil {
		return hedging.Account{}, err
	}
	return loadAccount(ctx, s.r, t)
}

func loadAccount(ctx context.Context, q querier, t TenantID) (hedging.Account, error) {
	acct := hedging.Account{Spot: map[string]float64{}, Perp: map[string]float64{}}
	err := q.QueryRowContext(ctx, `SELECT cash_usd, fees_paid_usd FROM accounts WHERE tenant_id = ?`, t.id).Scan(&acct.CashUSD, &acct.FeesPaidUSD)
	if errors.Is(err, sql.ErrNoRows) {
		return acct, fmt.Errorf("%w: no exchange account for tenant %s", ErrNotFound, t.id)
	}
	if err != nil {
		return acct, fmt.Errorf("store: load account: %w", err)
	}
	for _, tbl := range []struct {
		query string
		into  map[string]float64
	}{
		{`SELECT asset, quantity FROM spot_balances WHERE tenant_id = ?`, acct.Spot},
		{`SELECT asset, quantity FROM perp_positions WHERE tenant_id = ?`, acct.Perp},
	} {
		rows, err := q.QueryContext(ctx, tbl.query, t.id)
		if err != nil {
			return acct, fmt.Errorf("store: load account: %w", err)
		}
		for rows.Next() {
			var asset string
			var qty float64
			if err := rows.Scan(&asset, &qty); err != nil {
				_ = rows.Close()
				return acct, fmt.Errorf("store: load account: %w", err)
			}
			tbl.into[asset] = qty
		}
		err = rows.Err()
		_ = rows.Close()
		if err != nil {
			return acct, fmt.Errorf("store: load account: %w", err)
		}
	}
	return acct, nil
}

// SeedAccount creates the tenant's account unless it already exists.
func (s *SQLite) SeedAccount(ctx context.Context, t TenantID, acct hedging.Account, at time.Time) (bool, error) {
	if err := t.check(); err != nil {
		return false, err
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("store: seed account: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	res, err := tx.ExecContext(ctx, `INSERT INTO accounts (tenant_id, cash_usd, fees_paid_usd, created_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (tenant_id) DO NOTHING`, t.id, acct.CashUSD, acct.FeesPaidUSD, nanos(at))
	if err != nil {
		return false, fmt.Errorf("store: seed account: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return false, nil
	}
	for asset, q := range acct.Spot {
		if _, err := tx.ExecContext(ctx, `INSERT INTO spot_balances (tenant_id, asset, quantity) VALUES (?, ?, ?)`, t.id, asset, q); err != nil {
			return false, fmt.Errorf("store: seed account: %w", err)
		}
	}
	for asset, q := range acct.Perp {
		if _, err := tx.ExecContext(ctx, `INSERT INTO perp_positions (tenant_id, asset, quantity) VALUES (?, ?, ?)`, t.id, asset, q); err != nil {
			return false, fmt.Errorf("store: seed account: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("store: seed account: commit: %w", err)
	}
	return true, nil
}

// Trade runs plan and persists its fills in one transaction.
func (s *SQLite) Trade(ctx context.Context, t TenantID, kind string, at time.Time, plan TradePlan) (Execution, error) {
	if err := t.check(); err != nil {
		return Execution{}, err
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return Execution{}, fmt.Errorf("store: trade: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	ex, err := trade(ctx, tx, t, kind, at, plan)
	if err != nil {
		return Execution{}, err
	}
	if err := tx.Commit(); err != nil {
		return Execution{}, fmt.Errorf("store: trade: commit: %w", err)
	}
	return ex, nil
}

func trade(ctx context.Context, tx *sql.Tx, t TenantID, kind string, at time.Time, plan TradePlan) (Execution, error) {
	before, err := loadAccount(ctx, tx, t)
	if err != nil {
		return Execution{}, err
	}
	fills, after, err := plan(before.Clone())
	if err != nil {
		return Execution{}, err
	}
	ex := Execution{Kind: kind, Before: before, After: after, At: at, Fills: make([]Filled, 0, len(fills))}
	if len(fills) == 0 {
		ex.After = before // nothing traded: nothing changes, and there is no execution to name
		return ex, nil
	}
	ex.ID = NewID("exe")
	if _, err := tx.ExecContext(ctx, `INSERT INTO accounts (tenant_id, cash_usd, fees_paid_usd, created_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (tenant_id) DO UPDATE SET cash_usd = excluded.cash_usd, fees_paid_usd = excluded.fees_paid_usd`,
		t.id, after.CashUSD, after.FeesPaidUSD, nanos(at)); err != nil {
		return Execution{}, fmt.Errorf("store: trade: update account: %w", err)
	}
	for asset, q := range after.Perp {
		if before.Perp[asset] == q {
			continue
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO perp_positions (tenant_id, asset, quantity) VALUES (?, ?, ?)
			ON CONFLICT (tenant_id, asset) DO UPDATE SET quantity = excluded.quantity`, t.id, asset, q); err != nil {
			return Execution{}, fmt.Errorf("store: trade: update position %s: %w", asset, err)
		}
	}
	for _, f := range fills {
		fl := Filled{OrderID: NewID("ord"), Fill: f}
		if _, err := tx.ExecContext(ctx, `INSERT INTO orders (tenant_id, order_id, execution_id, kind, asset, side, quantity, price, notional_usd, fee_usd, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, t.id, fl.OrderID, ex.ID, kind, f.Asset, string(f.Side), f.Quantity, f.Price, f.NotionalUSD, f.FeeUSD, nanos(at)); err != nil {
			return Execution{}, fmt.Errorf("store: trade: insert order: %w", err)
		}
		ex.Fills = append(ex.Fills, fl)
	}
	return ex, nil
}

// ExecuteOnce claims (t, key) and trades in the same transaction. Concurrent
// calls with one key queue on the single write connection (and, across
// processes, on SQLite's write lock), so the later ones find the claimed row
// with the first response in it.
// A key older than expiredBefore is claimed afresh, in the same statement.
func (s *SQLite) ExecuteOnce(ctx context.Context, t TenantID, key, requestHash string, at, expiredBefore time.Time, plan TradePlan, render func(Execution) (Response, error)) (Response, bool, error) {
	if err := t.check(); err != nil {
		return Response{}, false, err
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return Response{}, false, fmt.Errorf("store: execute: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	res, err := tx.ExecContext(ctx, `INSERT INTO idempotency_keys (tenant_id, idempotency_key, request_hash, status, content_type, body, created_at)
		VALUES (?, ?, ?, 0, '', x'', ?) ON CONFLICT (tenant_id, idempotency_key) DO UPDATE
		SET request_hash = excluded.request_hash, status = 0, content_type = '', body = x'', created_at = excluded.created_at
		WHERE idempotency_keys.created_at < ?`, t.id, key, requestHash, nanos(at), nanos(expiredBefore))
	if err != nil {
		return Response{}, false, fmt.Errorf("store: claim idempotency key: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		var stored Response
		var hash string
		if err := tx.QueryRowContext(ctx, `SELECT request_hash, status, content_type, body FROM idempotency_keys
			WHERE tenant_id = ? AND idempotency_key = ?`, t.id, key).Scan(&hash, &stored.Status, &stored.ContentType, &stored.Body); err != nil {
			return Response{}, false, fmt.Errorf("store: read idempotency key: %w", err)
		}
		if hash != requestHash {
			return Response{}, false, ErrIdempotencyMismatch
		}
		return stored, true, nil
	}
	ex, err := trade(ctx, tx, t, "execute", at, plan)
	if err != nil {
		return Response{}, false, err
	}
	resp, err := render(ex)
	if err != nil {
		return Response{}, false, err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE idempotency_keys SET status = ?, content_type = ?, body = ?
		WHERE tenant_id = ? AND idempotency_key = ?`, resp.Status, resp.ContentType, resp.Body, t.id, key); err != nil {
		return Response{}, false, fmt.Errorf("store: store idempotent response: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return Response{}, false, fmt.Errorf("store: execute: commit: %w", err)
	}
	return resp, false, nil
}
