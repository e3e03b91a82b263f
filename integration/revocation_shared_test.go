package integration_test

import (
	"fmt"
	"net/http"
	"os"
	"slices"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/tenantgate/tenantgate/module/ratelimit/redistest"
)

// sharedStoreLines are the tenant_gate lines of a gate on a shared store.
func sharedStoreLines(url, prefix string) string {
	return fmt.Sprintf("shared_store %s\n\t\tshared_store_prefix %s", url, prefix)
}

// percentile of sorted durations (nearest rank).
func percentile(sorted []time.Duration, p float64) time.Duration {
	i := int(p*float64(len(sorted))+0.999999) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

var _ = Describe("revocation, two gates on a shared Redis", Ordered, func() {
	var a, b revocationGate
	var redisURL, prefix string
	BeforeAll(func() {
		redisURL = redistest.Redis(GinkgoT())
		prefix = redistest.Prefix(GinkgoT(), redisURL)
		a = startRevocationGate("revocation-shared-a", sharedStoreLines(redisURL, prefix))
		b = startRevocationGate("revocation-shared-b", sharedStoreLines(redisURL, prefix))
	})

	It("refuses at one gate a token revoked at the other, and measures the propagation of 100 revocations", func() {
		const n = 100
		toks := make([]string, n)
		jtis := make([]string, n)
		for i := range toks {
			jtis[i] = fmt.Sprintf("rv-prop-%d-%s", i, randomHex(4))
			toks[i] = tokenWith("rv-prop", func(c claims) { c["jti"] = jtis[i] })
			expectAllowed(b, toks[i]) // cached at b
		}
		took := make([]time.Duration, n)
		for i := range toks {
			start := time.Now()
			status, body := adminRevoke(a.adminURL, fmt.Sprintf(`{"jti":%q}`, jtis[i]))
			Expect(status).To(Equal(http.StatusCreated), fmt.Sprint(body))
			Expect(body["shared"]).To(BeTrue())
			for rlDo("GET", b.url+"/rv/x", toks[i]).status != http.StatusUnauthorized {
				Expect(time.Since(start)).To(BeNumerically("<", 10*time.Second), "revocation %d never reached b", i)
				time.Sleep(time.Millisecond)
			}
			took[i] = time.Since(start)
		}
		slices.Sort(took)
		p50, p99 := percentile(took, .50), percentile(took, .99)
		AddReportEntry("revocation propagation (admin call at a -> refusal at b)", fmt.Sprintf("p50 %s p99 %s max %s over %d", p50, p99, took[n-1], n))
		fmt.Fprintf(GinkgoWriter, "PROPAGATION p50=%s p99=%s max=%s n=%d\n", p50, p99, took[n-1], n)
		expectRevoked(b, toks[0])

		m := scrape(b.adminURL)
		Expect(m.sum("tenantgate_revocation_propagation_seconds", nil)).To(BeNumerically(">=", n))
		Expect(m.sum("tenantgate_revocations", map[string]string{"kind": "jti"})).To(BeNumerically(">=", n))
	})

	It("loads the live entries into a gate started later, before it serves", func() {
		old := tokenWith("rv-late", nil)
		status, _ := adminRevoke(b.adminURL, `{"tenant":"rv-late"}`)
		Expect(status).To(Equal(http.StatusCreated))
		c := startRevocationGate("revocation-shared-c", sharedStoreLines(redisURL, prefix))
		expectRevoked(c, old) // the first request at c
		Expect(len(adminList(c.adminURL))).To(BeNumerically(">=", 101))
	})
})

var _ = Describe("revocation, shared Redis down", Ordered, func() {
	var a, b revocationGate
	var srv *redistest.Server
	BeforeAll(func() {
		srv = redistest.StartServer(GinkgoT())
		prefix := "tenantgate-test:down:"
		a = startRevocationGate("revocation-down-a", sharedStoreLines(srv.URL, prefix))
		b = startRevocationGate("revocation-down-b", sharedStoreLines(srv.URL, prefix))
	})

	It("keeps known revocations, applies new ones where they were made, counts the errors, and never blocks a request", func() {
		known := tokenWith("rv-down", func(c claims) { c["sub"] = "rv-down-known" })
		fresh := tokenWith("rv-down", func(c claims) { c["sub"] = "rv-down-new" })
		expectAllowed(b, fresh)
		status, body := adminRevoke(a.adminURL, `{"sub":"rv-down-known"}`)
		Expect(status).To(Equal(http.StatusCreated))
		Expect(body["shared"]).To(BeTrue())
		Eventually(func() int { return rlDo("GET", b.url+"/rv/x", known).status }, 5*time.Second, 5*time.Millisecond).Should(Equal(http.StatusUnauthorized))

		srv.Stop()
		start := time.Now()
		status, body = adminRevoke(a.adminURL, `{"sub":"rv-down-new"}`)
		adminTook := time.Since(start)
		Expect(status).To(Equal(http.StatusCreated), fmt.Sprint(body))
		Expect(body["shared"]).To(BeFalse(), "the store is down: the entry is local")
		expectRevoked(a, fresh)
		expectRevoked(a, known)
		expectRevoked(b, known)

		// b does not know the new one, and its requests do not wait on Redis.
		var worst time.Duration
		for range 50 {
			r := rlDo("GET", b.url+"/rv/x", fresh)
			Expect(r.status).To(Equal(http.StatusOK))
			worst = max(worst, r.took)
		}
		Eventually(func() float64 { return scrape(a.adminURL).sum("tenantgate_shared_store_errors_total", nil) }, 15*time.Second, 200*time.Millisecond).Should(BeNumerically(">=", 1))
		Eventually(func() float64 { return scrape(b.adminURL).sum("tenantgate_shared_store_errors_total", nil) }, 15*time.Second, 200*time.Millisecond).Should(BeNumerically(">=", 1))
		AddReportEntry("Redis down", fmt.Sprintf("admin revoke answered in %s (local only); slowest of 50 requests at the other gate %s", adminTook, worst))
		fmt.Fprintf(GinkgoWriter, "REDIS-DOWN admin=%s worst-request=%s\n", adminTook, worst)
		Eventually(func() string { return readFile(a.logPath) }, 10*time.Second).Should(ContainSubstring("shared store unavailable"))
	})
})

var _ = Describe("revocation, shared store on a closed port", func() {
	It("starts and serves, with revocations applying locally", func() {
		g := startRevocationGate("revocation-closed", sharedStoreLines(redistest.ClosedURL(GinkgoT()), "p:"))
		tok := tokenWith("rv-closed", nil)
		expectAllowed(g, tok)
		status, body := adminRevoke(g.adminURL, `{"tenant":"rv-closed"}`)
		Expect(status).To(Equal(http.StatusCreated))
		Expect(body["shared"]).To(BeFalse())
		expectRevoked(g, tok)
		Expect(scrape(g.adminURL).sum("tenantgate_shared_store_errors_total", nil)).To(BeNumerically(">=", 1))
	})
})

func readFile(path string) string {
	raw, _ := os.ReadFile(path)
	return string(raw)
}

var _ = Describe("DPoP proofs across two gates on a shared Redis", Ordered, func() {
	var a, b revocationGate
	BeforeAll(func() {
		redisURL := redistest.Redis(GinkgoT())
		prefix := redistest.Prefix(GinkgoT(), redisURL)
		// Both gates judge htu against the same public URL, as replicas
		// behind one load balancer do.
		lines := sharedStoreLines(redisURL, prefix) + "\n\t\tdpop_public_url https://api.example.com"
		a = startRevocationGate("dpop-shared-a", lines)
		b = startRevocationGate("dpop-shared-b", lines)
	})

	It("refuses at one gate a proof already spent at the other", func() {
		client := newDPoPClient(jwa.ES256)
		tok := env.boundToken(issuerMain, map[string]any{"jkt": client.jkt})
		proof := client.proof("GET", "https://api.example.com/rv/x", tok)
		status, _, body := sendDPoP("GET", a.url+"/rv/x", "DPoP", tok, proof)
		Expect(status).To(Equal(http.StatusOK), string(body))
		status, hdr, body := sendDPoP("GET", b.url+"/rv/x", "DPoP", tok, proof)
		Expect(status).To(Equal(http.StatusUnauthorized), string(body))
		Expect(problemReason(body)).To(Equal("bad_dpop_proof"))
		Expect(string(body)).To(ContainSubstring("replay"))
		Expect(hdr.Get("WWW-Authenticate")).To(ContainSubstring(`error="invalid_dpop_proof"`))
		// A fresh proof passes at b: the refusal was the replay alone.
		status, _, body = sendDPoP("GET", b.url+"/rv/x", "DPoP", tok, client.proof("GET", "https://api.example.com/rv/x", tok))
		Expect(status).To(Equal(http.StatusOK), string(body))
		AddReportEntry("DPoP cross-replica", "a proof spent at gate a is refused at gate b (bad_dpop_proof, replayed); a fresh proof passes at b")
	})
})
