package integration_test

import (
	"fmt"
	"net/http"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/tenantgate/tenantgate/backend/store/pgtest"
	"github.com/tenantgate/tenantgate/module/assertion"
)

// One use per assertion: whoever sees an assertion between gate and backend
// (on the wire, in a debug log) cannot send it again, with another body and
// another Idempotency-Key, to trade twice. Against the real bin/backend on
// SQLite (the suite's) and on PostgreSQL (one of this spec's own).
var _ = Describe("an assertion works once", Ordered, func() {
	var pgURL string

	BeforeAll(func() {
		db := pgtest.New(GinkgoT())
		addr := freeAddr()
		pgURL = "http://" + addr
		backend := env.spawn(filepath.Join(env.dir, "backend-replay-postgres.log"), filepath.Join(env.binDir, "backend"),
			postgresBackendArgs(db, "--listen", addr, "--db-pool-size", "8", "--seed-demo",
				"--assertion-key", filepath.Join(env.dir, "assertion.pub.pem"))...)
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
		env.waitHTTP(pgURL + "/healthz")
	})

	for _, kind := range []string{"sqlite", "postgres"} {
		base := func() string {
			if kind == "sqlite" {
				return env.backendURL
			}
			return pgURL
		}

		It("accepts one of 50 concurrent executes with one assertion on "+kind, func() {
			raw := mint(env.assertionPriv, nil) // acme, hedging:admin, POST execute
			statuses := make([]int, 50)
			bodies := make([]string, 50)
			var wg sync.WaitGroup
			for i := range statuses {
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer GinkgoRecover()
					status, _, body := do(http.MethodPost, base()+executePath, "", map[string][]string{
						"X-Tenant-Assertion": {raw}, "Idempotency-Key": {fmt.Sprintf("replay-%s-%d-%s", kind, i, randomHex(4))},
					}, fmt.Sprintf(`{"orders":[{"asset":"BTC","side":"sell","quantity":0.00%d1}]}`, i%9)) // a new body each time; any one passes the risk limits
					statuses[i], bodies[i] = status, string(body)
				}()
			}
			wg.Wait()
			ok := 0
			for i, s := range statuses {
				switch s {
				case http.StatusOK:
					ok++
				case http.StatusUnauthorized:
					Expect(bodies[i]).To(ContainSubstring("urn:tenantgate:problem:assertion_replayed"))
				default:
					Fail(fmt.Sprintf("status %d: %s", s, bodies[i]))
				}
			}
			Expect(ok).To(Equal(1), "exactly one acceptance")
		})

		It("refuses the second use of an assertion on a route without a transaction on "+kind, func() {
			raw := mint(env.assertionPriv, func(c *assertion.Claims) { c.Method, c.Path = http.MethodGet, "/api/v1/whoami" })
			h := map[string][]string{"X-Tenant-Assertion": {raw}}
			status, _, body := do(http.MethodGet, base()+"/api/v1/whoami", "", h, "")
			Expect(status).To(Equal(http.StatusOK), string(body))
			status, hdr, body := do(http.MethodGet, base()+"/api/v1/whoami", "", h, "")
			Expect(status).To(Equal(http.StatusUnauthorized), string(body))
			Expect(hdr.Get("Content-Type")).To(Equal("application/problem+json"))
			Expect(string(body)).To(ContainSubstring("assertion_replayed"))
			Expect(string(body)).NotTo(ContainSubstring("tenant_id"))
		})

		It("refuses the replay of a request that failed on "+kind, func() {
			// A 404 (another tenant's id) spends the assertion too.
			raw := mint(env.assertionPriv, func(c *assertion.Claims) {
				c.Method, c.Path, c.Roles = http.MethodGet, "/api/v1/ensemble/ens_nope/weights", []string{"ensemble:read"}
			})
			h := map[string][]string{"X-Tenant-Assertion": {raw}}
			status, _, body := do(http.MethodGet, base()+"/api/v1/ensemble/ens_nope/weights", "", h, "")
			Expect(status).To(Equal(http.StatusNotFound), string(body))
			status, _, body = do(http.MethodGet, base()+"/api/v1/ensemble/ens_nope/weights", "", h, "")
			Expect(status).To(Equal(http.StatusUnauthorized), string(body))
			Expect(string(body)).To(ContainSubstring("assertion_replayed"))
		})
	}
})

// postgresBackendArgs is bin/backend's command line on db: --db logging in
// as the runtime role, --db-migrate-url as the owner, then extra.
func postgresBackendArgs(db *pgtest.DB, extra ...string) []string {
	return append([]string{"--db", db.RuntimeURL(GinkgoT()), "--db-migrate-url", db.URL}, extra...)
}
