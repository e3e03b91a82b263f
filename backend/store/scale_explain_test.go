package store

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestScaleExplain runs EXPLAIN on the store's tenant queries against the
// database scripts/seed-scale.sh filled (1,000,000 predictions of 100
// tenants), as the runtime role with one tenant set, and requires every
// scan of a tenant table to use an index (the tenant-leading keys and
// indexes), never a sequential scan (with sequential scans priced out, as
// a one-page table would otherwise rightly be read whole). Off unless TENANTGATE_SCALE_DB (the
// runtime role's URL) is set.
func TestScaleExplain(t *testing.T) {
	url := os.Getenv("TENANTGATE_SCALE_DB")
	if url == "" {
		t.Skip("TENANTGATE_SCALE_DB is not set (see scripts/seed-scale.sh)")
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close(ctx) }()
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, setTenant, "t050"); err != nil {
		t.Fatal(err)
	}
	// Tiny tables (accounts: 100 rows, one page) are rightly read whole
	// by the planner; with sequential scans priced out, the plan shows
	// whether a tenant-leading index serves the query at all.
	if _, err := tx.Exec(ctx, `SET LOCAL enable_seqscan = off`); err != nil {
		t.Fatal(err)
	}
	for name, q := range map[string]struct {
		sql  string
		args []any
	}{
		"performance (ensemble)": {pgEnsembleTally, []any{"t050", "ens_3", 50}},
		"performance (agents)":   {pgAgentTallies, []any{"t050", "ens_3", 50, "t050", "t050", "ens_3"}},
		"rankings":               {pgRankings, []any{"t050", 50, "t050", "t050"}},
		"list ensembles":         {pgSQL(listEnsemblesSQL), []any{"t050", int64(0), "", 21, "t050"}},
		"account":                {`SELECT cash_usd, fees_paid_usd FROM accounts WHERE tenant_id = $1 FOR UPDATE`, []any{"t050"}},
		"ensemble exists":        {pgSQL(`SELECT 1 FROM ensembles WHERE tenant_id = ? AND ensemble_id = ? FOR UPDATE`), []any{"t050", "ens_3"}},
		"outcome":                {pgSQL(`SELECT ` + predictionColumns + ` FROM predictions WHERE tenant_id = ? AND ensemble_id = ? AND prediction_id = ? FOR UPDATE`), []any{"t050", "ens_3", "p_42"}},
		"idempotency replay":     {`SELECT request_hash, status, content_type, body FROM idempotency_keys WHERE tenant_id = $1 AND idempotency_key = $2`, []any{"t050", "k"}},
	} {
		rows, err := tx.Query(ctx, "EXPLAIN "+q.sql, q.args...)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var plan []string
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, line)
		}
		rows.Close()
		text := strings.Join(plan, "\n")
		if strings.Contains(text, "Seq Scan") || !strings.Contains(text, "Index") {
			t.Errorf("%s: not an index plan:\n%s", name, text)
		}
		t.Logf("%s:\n%s", name, text)
	}
}
