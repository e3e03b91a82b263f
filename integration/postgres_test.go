package integration_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/tenantgate/tenantgate/backend/store/pgtest"
)

// The ensemble and hedging flows through the real gate, with bin/backend on
// PostgreSQL (--db postgres://...) in a database of this spec's own, querying
// as a runtime role under row-level security.
var _ = Describe("a PostgreSQL-backed backend behind the gate", Ordered, func() {
	var (
		db                 *pgtest.DB
		gateURL, directURL string
		backend            *exec.Cmd
	)

	// admin runs a query on the spec's database as the owner, outside RLS.
	count := func(query string, args ...any) int {
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, db.URL)
		Expect(err).NotTo(HaveOccurred())
		defer conn.Close(ctx)
		var n int
		Expect(conn.QueryRow(ctx, query, args...).Scan(&n)).To(Succeed())
		return n
	}
	asJSON := func(body []byte) map[string]any {
		var m map[string]any
		Expect(json.Unmarshal(body, &m)).To(Succeed(), string(body))
		return m
	}

	BeforeAll(func() {
		db = pgtest.New(GinkgoT())
		backendAddr, gateAddr := freeAddr(), freeAddr()
		directURL, gateURL = "http://"+backendAddr, "http://"+gateAddr
		backend = env.spawn(filepath.Join(env.dir, "backend-postgres.log"), filepath.Join(env.binDir, "backend"),
			postgresBackendArgs(db, "--listen", backendAddr, "--db-pool-size", "8",
				"--assertion-key", filepath.Join(env.dir, "assertion.pub.pem"), "--seed-demo")...)
		DeferCleanup(func() {
			_ = backend.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() { _, _ = backend.Process.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				_ = backend.Process.Kill()
			}
		})
		env.waitHTTP(directURL + "/healthz")
		sites := "http://" + gateAddr + " {\n\ttenant_gate {\n%[1]s\n" + shippedRules() + "\t}\n\treverse_proxy " + backendAddr + "\n}\n"
		gate := env.startCaddy("postgres", sites, gateURL+"/healthz")
		DeferCleanup(gate.stop)
	})

	It("says ok and postgres on /healthz, and nothing else", func() {
		status, _, body := do("GET", gateURL+"/healthz", "", nil, "")
		Expect(status).To(Equal(http.StatusOK), string(body))
		Expect(string(body)).To(MatchJSON(`{"status":"ok","store":"postgres"}`))
	})

	It("runs the ensemble flow: create, register, predict, outcomes, performance, weights, optimize, list, rankings", func() {
		tok := env.token("acme", "ensemble:write", "ensemble:read")
		status, _, body := do("POST", gateURL+"/api/v1/ensemble/create", tok, nil,
			`{"name":"pg-flow","method":"weighted_average","agents":[{"agent_id":"bull","agent_type":"momentum","initial_weight":1},{"agent_id":"bear","agent_type":"contrarian","initial_weight":1}]}`)
		Expect(status).To(Equal(http.StatusCreated), string(body))
		id := asJSON(body)["ensemble_id"].(string)
		base := gateURL + "/api/v1/ensemble/" + id
		status, _, body = do("POST", base+"/register-agent", tok, nil, `{"agent_id":"late","agent_type":"t","initial_weight":0.5}`)
		Expect(status).To(Equal(http.StatusCreated), string(body))

		// Five predictions: bull says up, bear says down; the market goes up.
		for i := 0; i < 5; i++ {
			status, _, body = do("POST", base+"/predict", tok, nil,
				`{"symbol":"BTC-USD","signals":[{"agent_id":"bull","signal":0.8,"confidence":0.9},{"agent_id":"bear","signal":-0.6,"confidence":0.9},{"agent_id":"late","signal":0.1,"confidence":0.5}]}`)
			Expect(status).To(Equal(http.StatusCreated), string(body))
			pred := asJSON(body)["prediction_id"].(string)
			status, _, body = do("POST", base+"/outcomes", tok, nil, fmt.Sprintf(`{"prediction_id":%q,"realized_return":0.02}`, pred))
			Expect(status).To(Equal(http.StatusCreated), string(body))
			if i == 0 {
				status, _, body = do("POST", base+"/outcomes", tok, nil, fmt.Sprintf(`{"prediction_id":%q,"realized_return":0.05}`, pred))
				Expect(status).To(Equal(http.StatusConflict), string(body))
			}
		}
		status, _, body = do("GET", base+"/performance", tok, nil, "")
		Expect(status).To(Equal(http.StatusOK), string(body))
		Expect(asJSON(body)["ensemble"].(map[string]any)["scored"]).To(BeEquivalentTo(5))

		status, _, body = do("POST", base+"/optimize-weights", tok, nil, `{"lookback":10}`)
		Expect(status).To(Equal(http.StatusOK), string(body))
		Expect(asJSON(body)["predictions_used"]).To(BeEquivalentTo(5))
		status, _, body = do("GET", base+"/weights", tok, nil, "")
		Expect(status).To(Equal(http.StatusOK), string(body))
		weights := map[string]float64{}
		for _, a := range asJSON(body)["weights"].([]any) {
			m := a.(map[string]any)
			weights[m["agent_id"].(string)] = m["weight"].(float64)
		}
		Expect(weights["bull"]).To(BeNumerically(">", weights["bear"]), string(body))

		status, _, body = do("GET", gateURL+"/api/v1/ensemble/?limit=10", tok, nil, "")
		Expect(status).To(Equal(http.StatusOK), string(body))
		Expect(string(body)).To(ContainSubstring(id))
		status, _, body = do("GET", gateURL+"/api/v1/ensemble/agent-rankings", tok, nil, "")
		Expect(status).To(Equal(http.StatusOK), string(body))
		ranked := []string{}
		for _, a := range asJSON(body)["agents"].([]any) {
			ranked = append(ranked, a.(map[string]any)["agent_id"].(string))
		}
		Expect(ranked).To(ConsistOf("bull", "bear", "late"))
		Expect(ranked).To(HaveLen(3)) // globex's agents are not ranked with acme's

		// Another tenant, every role: 404, and its own list does not hold acme's ensemble.
		other := env.token("globex", "ensemble:write", "ensemble:read")
		for _, path := range []string{"/weights", "/performance"} {
			status, _, body = do("GET", base+path, other, nil, "")
			Expect(status).To(Equal(http.StatusNotFound), string(body))
		}
		status, _, body = do("GET", gateURL+"/api/v1/ensemble/", other, nil, "")
		Expect(status).To(Equal(http.StatusOK), string(body))
		Expect(string(body)).NotTo(ContainSubstring(id))
		Expect(count(`SELECT count(*) FROM predictions WHERE tenant_id = 'acme' AND ensemble_id = $1 AND realized_return IS NOT NULL`, id)).To(Equal(5))
	})

	It("runs the hedging flow: analysis, execute, replay, close, close again", func() {
		tok := env.token("globex", "hedging:read", "hedging:trade", "hedging:admin")
		status, _, body := do("GET", gateURL+"/api/v1/hedging/analysis", tok, nil, "")
		Expect(status).To(Equal(http.StatusOK), string(body))
		Expect(asJSON(body)["adjustments"]).NotTo(BeEmpty())

		key := map[string][]string{"Idempotency-Key": {"pg-hedge-" + randomHex(4)}}
		status, _, first := do("POST", gateURL+"/api/v1/hedging/execute", tok, key, `{}`)
		Expect(status).To(Equal(http.StatusOK), string(first))
		Expect(asJSON(first)["orders"]).NotTo(BeEmpty())
		status, h, again := do("POST", gateURL+"/api/v1/hedging/execute", tok, key, `{}`)
		Expect(status).To(Equal(http.StatusOK), string(again))
		Expect(h.Get("Idempotent-Replayed")).To(Equal("true"))
		Expect(again).To(Equal(first))
		status, _, body = do("POST", gateURL+"/api/v1/hedging/execute", tok, key, `{"target_ratio":0.5}`)
		Expect(status).To(Equal(http.StatusUnprocessableEntity), string(body))

		status, _, body = do("GET", gateURL+"/api/v1/hedging/analysis", tok, nil, "")
		Expect(status).To(Equal(http.StatusOK), string(body))
		Expect(asJSON(body)["adjustments"]).To(BeEmpty())

		status, _, body = do("POST", gateURL+"/api/v1/hedging/close", tok, nil, "")
		Expect(status).To(Equal(http.StatusOK), string(body))
		Expect(asJSON(body)["closed"]).NotTo(BeEmpty())
		status, _, body = do("POST", gateURL+"/api/v1/hedging/close", tok, nil, "")
		Expect(status).To(Equal(http.StatusOK), string(body))
		Expect(asJSON(body)["closed"]).To(BeEmpty())
		Expect(count(`SELECT count(*) FROM perp_positions WHERE tenant_id = 'globex' AND quantity <> 0`)).To(Equal(0))
		// acme's account is untouched by globex's trades.
		Expect(count(`SELECT count(*) FROM orders WHERE tenant_id = 'acme'`)).To(Equal(0))
	})

	It("executes once for 50 concurrent requests with one Idempotency-Key", func() {
		tok := env.token("acme", "hedging:trade")
		key := "pg-race-" + randomHex(4)
		body := `{"orders":[{"asset":"BTC","side":"sell","quantity":0.01}]}`
		const n = 50
		statuses := make([]int, n)
		bodies := make([]string, n)
		var wg sync.WaitGroup
		startLine := make(chan struct{})
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(i int) {
				defer GinkgoRecover()
				defer wg.Done()
				<-startLine
				s, _, b := do("POST", gateURL+"/api/v1/hedging/execute", tok, map[string][]string{"Idempotency-Key": {key}}, body)
				statuses[i], bodies[i] = s, string(b)
			}(i)
		}
		close(startLine)
		wg.Wait()
		for i := range statuses {
			Expect(statuses[i]).To(Equal(http.StatusOK), bodies[i])
			Expect(bodies[i]).To(Equal(bodies[0]))
		}
		executions := count(`SELECT count(DISTINCT execution_id) FROM orders WHERE tenant_id = 'acme' AND kind = 'execute'`)
		orders := count(`SELECT count(*) FROM orders WHERE tenant_id = 'acme' AND kind = 'execute'`)
		keys := count(`SELECT count(*) FROM idempotency_keys WHERE tenant_id = 'acme' AND idempotency_key = $1`, key)
		GinkgoWriter.Printf("postgres: %d concurrent executes with one key -> %d execution(s), %d order(s), %d key row(s)\n", n, executions, orders, keys)
		Expect(executions).To(Equal(1))
		Expect(orders).To(Equal(1))
		Expect(keys).To(Equal(1))
		Expect(count(`SELECT count(*) FROM perp_positions WHERE tenant_id = 'acme' AND asset = 'BTC' AND quantity = -2.41`)).To(Equal(1))
	})
})
