package integration_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/tenantgate/tenantgate/module/ratelimit/redistest"
)

// rateLimitSite is a gate in front of the echo server with the issuers of
// the suite and a tenant_rate_limit block (its lines given).
func rateLimitSite(addr, limitBlock string) string {
	echo := strings.TrimPrefix(env.echo.URL, "http://")
	return fmt.Sprintf(`
http://%s {
	bind 127.0.0.1
	tenant_gate {
%%[1]s
		rule GET /public/** public
		rule *   /rl/**     authenticated
	}
	tenant_rate_limit {
%s
	}
	# The flood of made-up tenants needs no upstream round trip.
	handle /rl/flood {
		respond 204
	}
	reverse_proxy %s
}
`, addr, limitBlock, echo)
}

// rlClient keeps connections alive across the many requests of a spec.
var rlClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}, Timeout: 30 * time.Second}

type rlResponse struct {
	status int
	header http.Header
	body   []byte
	took   time.Duration
}

func rlDo(method, url, token string) rlResponse {
	req, err := http.NewRequest(method, url, nil)
	Expect(err).NotTo(HaveOccurred())
	req.Header.Set("Authorization", "Bearer "+token)
	start := time.Now()
	resp, err := rlClient.Do(req)
	Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	Expect(err).NotTo(HaveOccurred())
	return rlResponse{resp.StatusCode, resp.Header, body, time.Since(start)}
}

// expectOneRecord finds the single audit record of the response's request id.
func expectOneRecord(p *caddyProc, r rlResponse) auditEntry {
	id := r.header.Get("X-Request-ID")
	Expect(id).NotTo(BeEmpty())
	rec := auditFor(p.auditPath, id)
	n := 0
	for _, e := range readAudit(p.auditPath) {
		if e.RequestID == id {
			n++
		}
	}
	Expect(n).To(Equal(1), "exactly one audit record for request %s", id)
	return rec
}

var _ = Describe("tenant_rate_limit, memory store", Ordered, func() {
	var (
		gate *caddyProc
		url  string
	)
	BeforeAll(func() {
		addr := freeAddr()
		url = "http://" + addr
		gate = env.startCaddy("ratelimit-memory", rateLimitSite(addr, `
		limit *    /rl/**          1000/s burst 1000
		limit POST /rl/execute     6/m    burst 3
		limit GET  /rl/short       60/m   burst 1
		max_tenants 1000`), url+"/public/ready")
		DeferCleanup(gate.stop)
	})

	It("answers a burst over the limit with 429, Retry-After and the RateLimit headers, and records deny rate_limited 429", func() {
		tok := env.token("rl-acme")
		before := scrape(gate.adminURL)
		for i := 0; i < 3; i++ {
			r := rlDo("POST", url+"/rl/execute", tok)
			Expect(r.status).To(Equal(http.StatusOK))
			Expect(r.header.Get("RateLimit-Policy")).To(Equal(`"* /rl/**";q=1000;w=1, "POST /rl/execute";q=3;w=30`))
			Expect(r.header.Get("RateLimit")).To(MatchRegexp(`^"\* /rl/\*\*";r=\d+;t=\d+, "POST /rl/execute";r=%d;t=\d+$`, 2-i),
				"successful responses carry RateLimit too")
			Expect(expectOneRecord(gate, r).Decision).To(Equal("allow"))
		}
		r := rlDo("POST", url+"/rl/execute", tok)
		Expect(r.status).To(Equal(http.StatusTooManyRequests))
		Expect(r.header.Get("Content-Type")).To(Equal("application/problem+json"))
		Expect(problemReason(r.body)).To(Equal("rate_limited"))
		retry, err := strconv.Atoi(r.header.Get("Retry-After"))
		Expect(err).NotTo(HaveOccurred())
		Expect(retry).To(BeNumerically(">=", 1))
		Expect(retry).To(BeNumerically("<=", 10))
		Expect(r.header.Get("RateLimit")).To(MatchRegexp(`"POST /rl/execute";r=0;t=%d$`, retry))
		Expect(r.header.Get("RateLimit-Policy")).To(ContainSubstring(`"POST /rl/execute";q=3;w=30`))

		rec := expectOneRecord(gate, r)
		Expect(rec.Decision).To(Equal("deny"))
		Expect(rec.Reason).To(Equal("rate_limited"))
		Expect(rec.Status).To(Equal(429))
		Expect(rec.UpstreamStatus).To(Equal(0), "the upstream was not called")
		Expect(rec.TenantID).To(Equal("rl-acme"))

		Eventually(func() float64 {
			return scrape(gate.adminURL).sum("tenantgate_rate_limited_total", map[string]string{"tenant": "rl-acme"}) -
				before.sum("tenantgate_rate_limited_total", map[string]string{"tenant": "rl-acme"})
		}, 5*time.Second, 50*time.Millisecond).Should(Equal(1.0))
		after := scrape(gate.adminURL)
		Expect(requestsDelta(before, after, map[string]string{"decision": "deny", "reason": "rate_limited", "tenant": "rl-acme"})).To(Equal(1.0))
	})

	It("leaves another tenant unaffected", func() {
		tok := env.token("rl-globex")
		for i := 0; i < 3; i++ {
			Expect(rlDo("POST", url+"/rl/execute", tok).status).To(Equal(http.StatusOK))
		}
		Expect(rlDo("POST", url+"/rl/execute", env.token("rl-acme")).status).To(Equal(http.StatusTooManyRequests),
			"rl-acme is still limited")
	})

	It("lets requests pass again after Retry-After", func() {
		tok := env.token("rl-initech")
		Expect(rlDo("GET", url+"/rl/short", tok).status).To(Equal(http.StatusOK))
		r := rlDo("GET", url+"/rl/short", tok)
		Expect(r.status).To(Equal(http.StatusTooManyRequests))
		retry, err := strconv.Atoi(r.header.Get("Retry-After"))
		Expect(err).NotTo(HaveOccurred())
		Expect(retry).To(Equal(1), "60/m burst 1: one request a second")
		time.Sleep(time.Duration(retry) * time.Second)
		Expect(rlDo("GET", url+"/rl/short", tok).status).To(Equal(http.StatusOK))
	})

	It("passes requests without a tenant untouched", func() {
		status, h, _ := do("GET", url+"/public/x", "", nil, "")
		Expect(status).To(Equal(http.StatusOK))
		Expect(h.Get("RateLimit")).To(BeEmpty())
	})

	// 20 times max_tenants through the real binary (about 10 s here); the
	// unit tests of module/ratelimit send 100,000 through the handler itself.
	It("holds at most max_tenants tenants under 20,000 made-up tenants", func() {
		const tenants, workers = 20_000, 8
		jobs := make(chan int, workers)
		var failures atomic.Int64
		var wg sync.WaitGroup
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer GinkgoRecover()
				defer wg.Done()
				for i := range jobs {
					c := env.baseClaims(fmt.Sprintf("made-up-%06d", i))
					c["iss"] = issuerHMAC
					if r := rlDo("GET", url+"/rl/flood", signHMAC(env.hmacSecret, c)); r.status != http.StatusNoContent {
						failures.Add(1)
					}
				}
			}()
		}
		for i := 0; i < tenants; i++ {
			jobs <- i
		}
		close(jobs)
		wg.Wait()
		Expect(failures.Load()).To(BeZero(), "a fresh tenant is never limited")
		Eventually(func() float64 {
			return scrape(gate.adminURL).sum("tenantgate_rate_limit_tenants", nil)
		}, 10*time.Second, 100*time.Millisecond).Should(BeNumerically("<=", 1000))
		f := scrape(gate.adminURL)
		Expect(f.sum("tenantgate_rate_limit_tenants", nil)).To(BeNumerically(">", 0))
		Expect(len(f.labelValues("tenantgate_requests_total", "tenant"))).To(BeNumerically("<=", 1001))
	})
})

var _ = Describe("tenant_rate_limit, Redis store", Ordered, func() {
	It("holds the limit across two gate processes sharing Redis", func() {
		redisURL := redistest.Redis(GinkgoT())
		prefix := redistest.Prefix(GinkgoT(), redisURL)
		// 60/m burst 20: at most 20 at once, then one a second.
		// deny and a generous timeout: a store failure shows as a 503 and
		// fails the spec instead of passing a request uncounted (allow).
		block := fmt.Sprintf("\t\tstore %s\n\t\tkey_prefix %s\n\t\tlimit * /rl/** 60/m burst 20\n\t\ton_store_error deny\n\t\ttimeout 2s", redisURL, prefix)
		addrA, addrB := freeAddr(), freeAddr()
		a := env.startCaddy("ratelimit-redis-a", rateLimitSite(addrA, block), "http://"+addrA+"/public/ready")
		DeferCleanup(a.stop)
		b := env.startCaddy("ratelimit-redis-b", rateLimitSite(addrB, block), "http://"+addrB+"/public/ready")
		DeferCleanup(b.stop)

		tok := env.token("rl-shared")
		// For 3 s (at most 3,000 requests), 8 clients alternate between the
		// two gates: the burst, then the refill, both seen across replicas.
		const window, maxRequests, workers = 3 * time.Second, 3000, 8
		var sent, allowed, limited, other atomic.Int64
		start := time.Now()
		var wg sync.WaitGroup
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer GinkgoRecover()
				defer wg.Done()
				for time.Since(start) < window {
					n := sent.Add(1)
					if n > maxRequests {
						return
					}
					base := "http://" + addrA
					if n%2 == 0 {
						base = "http://" + addrB
					}
					switch rlDo("GET", base+"/rl/x", tok).status {
					case http.StatusOK:
						allowed.Add(1)
					case http.StatusTooManyRequests:
						limited.Add(1)
					default:
						other.Add(1)
					}
					time.Sleep(10 * time.Millisecond) // about 800 requests a second in all
				}
			}()
		}
		wg.Wait()
		requests := allowed.Load() + limited.Load() + other.Load()
		elapsed := time.Since(start)
		// GCRA allows the burst plus one request per second elapsed; +1 for
		// the second that was starting when the window ended.
		limit := 20 + int64(elapsed/time.Second) + 1
		fmt.Fprintf(GinkgoWriter, "cross-replica: %d allowed, %d limited of %d in %s over two gates; limit %d (burst 20 + 1/s)\n",
			allowed.Load(), limited.Load(), requests, elapsed, limit)
		AddReportEntry("cross-replica accuracy", fmt.Sprintf("%d allowed of %d sent in %s; burst 20 + 1/s allows at most %d",
			allowed.Load(), requests, elapsed.Round(time.Millisecond), limit))
		Expect(other.Load()).To(BeZero(), "no store failures (they would answer 503)")
		Expect(allowed.Load()).To(BeNumerically(">=", 20), "the burst passes")
		Expect(allowed.Load()).To(BeNumerically("<=", limit), "the two replicas share one counter")
	})

	It("lets requests pass when Redis stops (allow), counting store errors; answers 503 with deny", func() {
		srv := redistest.StartServer(GinkgoT())
		addr := freeAddr()
		url := "http://" + addr
		addrDeny := freeAddr()
		urlDeny := "http://" + addrDeny
		block := "\t\tstore " + srv.URL + "\n\t\tlimit * /rl/** 100/s burst 100\n\t\ttimeout 100ms"
		sites := rateLimitSite(addr, block+"\n\t\ton_store_error allow") + rateLimitSite(addrDeny, block+"\n\t\ton_store_error deny")
		gate := env.startCaddy("ratelimit-redis-down", sites, url+"/public/ready")
		DeferCleanup(gate.stop)
		tok := env.token("rl-down")
		r := rlDo("GET", url+"/rl/x", tok)
		Expect(r.status).To(Equal(http.StatusOK))
		Expect(r.header.Get("RateLimit")).NotTo(BeEmpty(), "counted in Redis while it runs")

		srv.Stop()
		before := scrape(gate.adminURL)
		for i := 0; i < 5; i++ {
			r := rlDo("GET", url+"/rl/x", tok)
			Expect(r.status).To(Equal(http.StatusOK), "on_store_error allow")
			Expect(r.header.Get("RateLimit")).To(BeEmpty(), "not counted: no RateLimit header")
		}
		after := scrape(gate.adminURL)
		Expect(after.sum("tenantgate_rate_limit_store_errors_total", nil) -
			before.sum("tenantgate_rate_limit_store_errors_total", nil)).To(Equal(5.0))

		d := rlDo("GET", urlDeny+"/rl/x", tok)
		Expect(d.status).To(Equal(http.StatusServiceUnavailable))
		Expect(problemReason(d.body)).To(Equal("rate_limit_unavailable"))
		Expect(d.header.Get("Retry-After")).NotTo(BeEmpty())
		rec := expectOneRecord(gate, d)
		Expect(rec.Decision).To(Equal("deny"))
		Expect(rec.Reason).To(Equal("rate_limit_unavailable"))
		Expect(rec.Status).To(Equal(503))
	})

	It("does not hold requests longer than the timeout when Redis is slow", func() {
		redisURL := redistest.Redis(GinkgoT())
		prefix := redistest.Prefix(GinkgoT(), redisURL)
		const delay = 2 * time.Second
		slow := redistest.SlowProxy(GinkgoT(), redisURL, delay)
		addr := freeAddr()
		url := "http://" + addr
		gate := env.startCaddy("ratelimit-redis-slow", rateLimitSite(addr, fmt.Sprintf(
			"\t\tstore %s\n\t\tkey_prefix %s\n\t\tlimit * /rl/** 100/s\n\t\ttimeout 50ms", slow, prefix)), url+"/public/ready")
		DeferCleanup(gate.stop)
		tok := env.token("rl-slow")
		for i := 0; i < 3; i++ {
			r := rlDo("GET", url+"/rl/x", tok)
			Expect(r.status).To(Equal(http.StatusOK))
			Expect(r.took).To(BeNumerically("<", delay), "the request waited for the slow Redis")
			rec := expectOneRecord(gate, r)
			Expect(rec.DurationMS).To(BeNumerically("<", float64(delay.Milliseconds())))
		}
	})
})

var _ = Describe("tenant_rate_limit, caddy validate", func() {
	validate := func(block string) (string, error) {
		cf := filepath.Join(GinkgoT().TempDir(), "Caddyfile")
		site := fmt.Sprintf(rateLimitSite(freeAddr(), block), env.issuers())
		Expect(os.WriteFile(cf, []byte(site), 0o600)).To(Succeed())
		cmd := exec.Command(filepath.Join(env.binDir, "caddy"), "validate", "--config", cf, "--adapter", "caddyfile")
		cmd.Env = append(os.Environ(), "TG_TEST_HMAC="+string(env.hmacSecret))
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	It("accepts the shipped limits", func() {
		out, err := validate("\t\tlimit * /api/** 100/s burst 200\n\t\tlimit POST /api/v1/hedging/execute 10/m burst 2\n\t\tstore redis://127.0.0.1:6379/0")
		Expect(err).NotTo(HaveOccurred(), out)
	})
	DescribeTable("refuses a broken block and says what to fix",
		func(block, want string) {
			out, err := validate(block)
			Expect(err).To(HaveOccurred(), out)
			Expect(out).To(MatchRegexp(want))
			Expect(out).NotTo(ContainSubstring("hunter2"), "a store password never shows")
		},
		Entry("a bad rate", "\t\tlimit * /** 10/x", `limit 1 \(line \d+\): bad rate \\"10/x\\": want N/s, N/m, N/h or N/d`),
		Entry("a burst below 1", "\t\tlimit * /** 10/s burst 0", `limit 1 \(line \d+\): burst \\"0\\": want an integer of at least 1`),
		Entry("a pattern that does not parse", "\t\tlimit GET /api/**/x 10/s", `bad pattern \\"/api/\*\*/x\\": \\"\*\*\\" must be the last segment`),
		Entry("a store URL that does not parse", "\t\tstore http://:hunter2@127.0.0.1:6379\n\t\tlimit * /** 1/s", `store http://:xxxxx@127.0.0.1:6379: .*want redis://`),
		Entry("a store URL with a bad database", "\t\tstore redis://127.0.0.1:6379/zero\n\t\tlimit * /** 1/s", `store redis://127.0.0.1:6379/zero: .*want redis://`),
		Entry("on_store_error other than allow or deny", "\t\tlimit * /** 1/s\n\t\ton_store_error ignore", `on_store_error \\"ignore\\": want allow or deny`),
	)
})
