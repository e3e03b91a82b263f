package api_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"sort"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/backend/api"
	"github.com/tenantgate/tenantgate/backend/store"
)

// TestScaleFigure measures p50/p99 of predict and execute through the full
// handler on PostgreSQL: on the database scripts/seed-scale.sh filled
// (1,000,000 predictions of 100 tenants) when TENANTGATE_SCALE_DB (the
// runtime role's URL) is set, and on a fresh small database beside it.
// Off by default: it measures, it does not assert timings.
//
//	TENANTGATE_SCALE_DB=postgres://app@host/db go test -count=1 -run TestScaleFigure -v ./backend/api
func TestScaleFigure(t *testing.T) {
	scaleURL := os.Getenv("TENANTGATE_SCALE_DB")
	if scaleURL == "" {
		t.Skip("TENANTGATE_SCALE_DB is not set (see scripts/seed-scale.sh)")
	}
	const n = 400
	ctx := context.Background()
	big, err := store.OpenPostgres(ctx, scaleURL, store.PostgresOptions{MaxConns: 10, StatementTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = big.Close() })
	h := newHarnessWith(t, func(c *api.Config) { c.Store = big })
	measure(t, h, "1,000,000 predictions", "t050", "ens_3", n)

	small := storeHarness(t, "postgres")
	if small == nil {
		return
	}
	id := createEnsemble(t, small, "acme", map[string]any{"name": "small", "method": "confidence_weighted",
		"agents": []map[string]any{{"agent_id": "a0", "agent_type": "t"}, {"agent_id": "a1", "agent_type": "t"}, {"agent_id": "a2", "agent_type": "t"}}})
	measure(t, small, "small database", "acme", id, n)
}

// measure sends n predicts and n executes as tenant and logs p50/p99.
func measure(t *testing.T, h *harness, label, tenant, ensembleID string, n int) {
	t.Helper()
	predict := make([]time.Duration, 0, n)
	execute := make([]time.Duration, 0, n)
	for i := 0; i < n; i++ {
		start := time.Now()
		r := h.do(tenant, "POST", "/api/v1/ensemble/"+ensembleID+"/predict", map[string]any{"symbol": "BTC-USD",
			"signals": []map[string]any{{"agent_id": "a0", "signal": 0.5, "confidence": 0.8}, {"agent_id": "a1", "signal": -0.2, "confidence": 0.5}, {"agent_id": "a2", "signal": 0.9, "confidence": 0.1}}})
		predict = append(predict, time.Since(start))
		expectStatus(t, r, http.StatusCreated)
		side := "sell"
		if i%2 == 1 {
			side = "buy"
		}
		start = time.Now()
		r = h.do(tenant, "POST", "/api/v1/hedging/execute", map[string]any{"orders": []map[string]any{{"asset": "BTC", "side": side, "quantity": 0.001}}},
			"Idempotency-Key", fmt.Sprintf("scale-%d-%d", time.Now().UnixNano(), i))
		execute = append(execute, time.Since(start))
		expectStatus(t, r, http.StatusOK)
	}
	t.Logf("%s: predict p50 %s p99 %s; execute p50 %s p99 %s (n=%d each)", label,
		pct(predict, 50), pct(predict, 99), pct(execute, 50), pct(execute, 99), n)
}

func pct(d []time.Duration, p int) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[(len(s)-1)*p/100].Round(10 * time.Microsecond)
}
