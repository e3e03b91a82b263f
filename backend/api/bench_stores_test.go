package api_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/backend/api"
	"github.com/tenantgate/tenantgate/backend/hedging"
	"github.com/tenantgate/tenantgate/backend/store"
	"github.com/tenantgate/tenantgate/backend/store/pgtest"
	"github.com/tenantgate/tenantgate/module/assertion"
)

// BenchmarkStores runs predict and execute through the full handler (trust
// middleware, JSON, the store's transaction) on SQLite and on PostgreSQL in
// one run, so the ratio between the two is measured on the same machine at
// the same moment. PostgreSQL is the shared server at
// TENANTGATE_TEST_POSTGRES over loopback, as the runtime role under
// row-level security; SQLite is a file with synchronous=FULL.
//
//	go test -run '^$' -bench BenchmarkStores -benchmem ./backend/api
func BenchmarkStores(b *testing.B) {
	for _, kind := range []string{"sqlite", "postgres"} {
		ops := storeOps(b, kind)
		for _, name := range []string{"predict", "execute"} {
			op := ops[name]
			if op == nil {
				continue // skipped: PostgreSQL did not answer
			}
			b.Run(name+"/"+kind, func(b *testing.B) {
				b.ReportAllocs()
				for i := 0; i < b.N; i++ {
					op(b)
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
			})
			b.Run(name+"-parallel/"+kind, func(b *testing.B) {
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						op(b)
					}
				})
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
			})
		}
	}
}

// The benchmark's requests succeed on both stores (so `make test`, which
// runs no benchmarks, still notices when they break).
func TestStoreBenchmarkRequests(t *testing.T) {
	for _, kind := range []string{"sqlite", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			ops := storeOps(t, kind)
			for i := 0; i < 3; i++ {
				ops["predict"](t)
				ops["execute"](t)
			}
		})
	}
}

// storeOps returns one predict and one execute request through the full
// handler on the named store; nil ones when PostgreSQL is wanted but skipped.
func storeOps(tb testing.TB, kind string) map[string]func(testing.TB) {
	h := storeHarness(tb, kind)
	if h == nil {
		return map[string]func(testing.TB){}
	}
	id := createEnsemble(tb, h, "acme", map[string]any{"name": "bench", "method": "confidence_weighted",
		"agents": []map[string]any{{"agent_id": "a", "agent_type": "t"}, {"agent_id": "b", "agent_type": "t"}, {"agent_id": "c", "agent_type": "t"}}})
	predictPath := "/api/v1/ensemble/" + id + "/predict"
	predictBody := []byte(`{"symbol":"BTC-USD","signals":[{"agent_id":"a","signal":0.5,"confidence":0.8},{"agent_id":"b","signal":-0.2,"confidence":0.5},{"agent_id":"c","signal":0.9,"confidence":0.1}]}`)
	const executePath = "/api/v1/hedging/execute"
	var seq atomic.Int64
	return map[string]func(testing.TB){
		"predict": func(tb testing.TB) {
			req := httptest.NewRequest("POST", predictPath, bytes.NewReader(predictBody))
			req.Header.Set(assertion.Header, h.sign(h.claims("acme", "POST", predictPath))) // one use each
			req.Header.Set("Content-Type", "application/json")
			rec := httptest.NewRecorder()
			h.handler.ServeHTTP(rec, req)
			if rec.Code != http.StatusCreated {
				tb.Errorf("predict on %s: status %d: %s", kind, rec.Code, rec.Body)
			}
		},
		// Each call is a new key and one fill: sell 0.001 BTC of hedge,
		// then buy it back, so the position stays where it was.
		"execute": func(tb testing.TB) {
			n := seq.Add(1)
			side := "sell"
			if n%2 == 0 {
				side = "buy"
			}
			body := fmt.Sprintf(`{"orders":[{"asset":"BTC","side":%q,"quantity":0.001}]}`, side)
			req := httptest.NewRequest("POST", executePath, bytes.NewReader([]byte(body)))
			req.Header.Set(assertion.Header, h.sign(h.claims("acme", "POST", executePath)))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set(api.IdempotencyKeyHeader, fmt.Sprintf("bench-%s-%d-%d", kind, time.Now().UnixNano(), n))
			rec := httptest.NewRecorder()
			h.handler.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK || !bytes.Contains(rec.Body.Bytes(), []byte(`"execution_id":"exe_`)) {
				tb.Errorf("execute on %s: status %d: %s", kind, rec.Code, rec.Body)
			}
		},
	}
}

// storeHarness is the test harness on the named store, with the demo
// accounts seeded; nil when PostgreSQL is wanted but skipped.
func storeHarness(b testing.TB, kind string) *harness {
	if kind == "sqlite" {
		return newHarness(b)
	}
	db := pgtest.New(b)
	if db == nil {
		return nil
	}
	ctx := context.Background()
	pg, err := store.OpenPostgres(ctx, db.RuntimeURL(b), store.PostgresOptions{MigrateURL: db.URL, MaxConns: 10, StatementTimeout: 10 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = pg.Close() })
	for name, acct := range hedging.DemoAccounts() {
		if _, err := pg.SeedAccount(ctx, store.MustTenantID(name), acct, time.Now()); err != nil {
			b.Fatal(err)
		}
	}
	return newHarnessWith(b, func(c *api.Config) { c.Store = pg })
}
