package store

import (
	"fmt"

	"github.com/tenantgate/tenantgate/backend/ensemble"
)

// Reads shared by both engines. The list: one query joins a page of
// ensembles with their agents (each engine runs it its own way), and the
// rows fold into ensembles here; and the account balances.

// listEnsemblesSQL takes (tenant, after.created, after.id, limit+1, tenant).
const listEnsemblesSQL = `WITH page AS (
		SELECT ensemble_id, name, method, threshold, min_agents, created_at FROM ensembles
		WHERE tenant_id = ? AND (created_at, ensemble_id) > (?, ?)
		ORDER BY created_at, ensemble_id LIMIT ?)
	SELECT p.ensemble_id, p.name, p.method, p.threshold, p.min_agents, p.created_at,
		a.agent_id, a.agent_type, a.weight, a.created_at
	FROM page p LEFT JOIN agents a ON a.tenant_id = ? AND a.ensemble_id = p.ensemble_id
	ORDER BY p.created_at, p.ensemble_id, a.created_at, a.agent_id`

// rowIter is what *sql.Rows and pgx.Rows both do.
type rowIter interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// listArgs decodes cursor ("" for the first page) into the query's arguments.
func listArgs(t TenantID, cursor string, limit int) ([]any, error) {
	after := listCursor{created: -1 << 63}
	if cursor != "" {
		c, err := decodeCursor(cursor)
		if err != nil {
			return nil, err
		}
		after = c
	}
	return []any{t.id, after.created, after.id, limit + 1, t.id}, nil
}

// foldEnsembles reads listEnsemblesSQL's rows: one per agent (or one with
// NULL agent columns for an ensemble without agents).
func foldEnsembles(rows rowIter) ([]ensemble.Ensemble, error) {
	out := []ensemble.Ensemble{}
	for rows.Next() {
		var e ensemble.Ensemble
		var method string
		var created int64
		var agentID, agentType *string
		var weight *float64
		var agentCreated *int64
		if err := rows.Scan(&e.ID, &e.Name, &method, &e.Config.Threshold, &e.Config.MinAgents, &created,
			&agentID, &agentType, &weight, &agentCreated); err != nil {
			return nil, fmt.Errorf("store: list ensembles: %w", err)
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
		return nil, fmt.Errorf("store: list ensembles: %w", err)
	}
	return out, nil
}

// page cuts out to limit and returns the next page's cursor ("" at the end).
func page(out []ensemble.Ensemble, limit int) ([]ensemble.Ensemble, string) {
	if len(out) <= limit {
		return out, ""
	}
	out = out[:limit]
	last := out[len(out)-1]
	return out, encodeCursor(listCursor{created: nanos(last.CreatedAt), id: last.ID})
}

// readBalances reads (asset, quantity) rows of an account into into.
func readBalances(rows rowIter, into map[string]float64) error {
	for rows.Next() {
		var asset string
		var qty float64
		if err := rows.Scan(&asset, &qty); err != nil {
			return err
		}
		into[asset] = qty
	}
	return rows.Err()
}
