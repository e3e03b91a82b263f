package integration_test

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// metricFamilies is one scrape of a Caddy admin /metrics endpoint.
type metricFamilies map[string]*dto.MetricFamily

func scrape(adminURL string) metricFamilies {
	resp, err := http.Get(adminURL + "/metrics")
	Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	Expect(resp.StatusCode).To(Equal(http.StatusOK))
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	Expect(err).NotTo(HaveOccurred())
	return fams
}

func labelsMatch(m *dto.Metric, want map[string]string) bool {
	got := map[string]string{}
	for _, l := range m.GetLabel() {
		got[l.GetName()] = l.GetValue()
	}
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

// sum adds the values (counter, gauge, or histogram sample count) of the
// series of name whose labels include want.
func (f metricFamilies) sum(name string, want map[string]string) float64 {
	fam, ok := f[name]
	if !ok {
		return 0
	}
	var total float64
	for _, m := range fam.GetMetric() {
		if !labelsMatch(m, want) {
			continue
		}
		switch {
		case m.Counter != nil:
			total += m.GetCounter().GetValue()
		case m.Gauge != nil:
			total += m.GetGauge().GetValue()
		case m.Histogram != nil:
			total += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return total
}

// labelValues returns the distinct values of label on name's series.
func (f metricFamilies) labelValues(name, label string) map[string]bool {
	out := map[string]bool{}
	for _, m := range f[name].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == label {
				out[l.GetValue()] = true
			}
		}
	}
	return out
}

func requestsDelta(before, after metricFamilies, labels map[string]string) float64 {
	return after.sum("tenantgate_requests_total", labels) - before.sum("tenantgate_requests_total", labels)
}

// metricsSites is two tenant_gate blocks in one config (they share the
// process's collectors) in front of the echo server, with an issuer whose
// JWKS is down. realm varies between reloads so that `caddy reload` sees a
// changed config.
func metricsSites(addr1, addr2, deadJWKS, realm string) string {
	echo := strings.TrimPrefix(env.echo.URL, "http://")
	return fmt.Sprintf(`
http://%s {
	tenant_gate {
%%[1]s
		issuer %s {
			jwks_url %s
			audience %s
		}
		realm %s
		rule GET /public/** public
		rule *   /echo/**   authenticated
	}
	reverse_proxy %s
}

http://%s {
	tenant_gate {
%%[1]s
		realm %s
		rule *   /echo/**   authenticated
	}
	reverse_proxy %s
}
`, addr1, issuerDownJWKS, deadJWKS, audience, realm, echo, addr2, realm, echo)
}

var _ = Describe("metrics", Ordered, func() {
	var (
		gate             *caddyProc
		url1, url2       string
		addr1, addr2     string
		deadJWKS         string
		sendMix          func() map[string]float64
		expectMixDeltas  func(before, after metricFamilies, want map[string]float64)
		mixRequestsTotal float64
	)

	BeforeAll(func() {
		addr1, addr2 = freeAddr(), freeAddr()
		url1, url2 = "http://"+addr1, "http://"+addr2
		deadJWKS = "http://" + freeAddr() + "/jwks.json"
		gate = env.startCaddy("metrics", metricsSites(addr1, addr2, deadJWKS, "r0"), url1+"/public/ready")
		DeferCleanup(gate.stop)

		// sendMix sends a known mix of requests to both gates concurrently
		// and returns the expected increase per "decision/reason/tenant".
		sendMix = func() map[string]float64 {
			type req struct {
				url, token string
				key        string
			}
			var reqs []req
			add := func(n int, url, token, key string) {
				for i := 0; i < n; i++ {
					reqs = append(reqs, req{url, token, key})
				}
			}
			bad := sign(env.attackerKey, env.baseClaims("acme"), nil)
			add(5, url1+"/echo/x", env.token("acme"), "allow/ok/acme")
			add(3, url1+"/echo/x?status=500", env.token("globex"), "allow/ok/globex")
			add(4, url1+"/echo/x", "", "deny/missing_token/_none")
			add(2, url1+"/nowhere", "", "deny/no_route/_none")
			add(3, url1+"/public/x", "", "public/public/_none")
			add(2, url2+"/echo/x", env.token("acme"), "allow/ok/acme")
			add(1, url2+"/echo/x", bad, "deny/bad_signature/_none")
			want := map[string]float64{}
			var wg sync.WaitGroup
			for _, r := range reqs {
				want[r.key]++
				wg.Add(1)
				go func() {
					defer GinkgoRecover()
					defer wg.Done()
					do(http.MethodGet, r.url, r.token, nil, "")
				}()
			}
			wg.Wait()
			mixRequestsTotal = float64(len(reqs))
			return want
		}
		expectMixDeltas = func(before, after metricFamilies, want map[string]float64) {
			for key, n := range want {
				parts := strings.Split(key, "/")
				Expect(requestsDelta(before, after, map[string]string{"decision": parts[0], "reason": parts[1], "tenant": parts[2]})).
					To(Equal(n), key)
			}
			Expect(requestsDelta(before, after, nil)).To(Equal(mixRequestsTotal), "no other request was counted")
			Expect(after.sum("tenantgate_auth_duration_seconds", nil)-before.sum("tenantgate_auth_duration_seconds", nil)).
				To(Equal(mixRequestsTotal), "one auth duration sample per request")
		}
	})

	It("counts a known mix exactly on the admin /metrics, from two tenant_gate blocks", func() {
		before := scrape(gate.adminURL)
		for _, name := range []string{"tenantgate_requests_total", "tenantgate_auth_duration_seconds",
			"tenantgate_jwks_refresh_total", "tenantgate_jwks_keys", "tenantgate_jwks_last_success_timestamp_seconds"} {
			Expect(before).To(HaveKey(name))
		}
		Expect(before["tenantgate_auth_duration_seconds"].GetType()).To(Equal(dto.MetricType_HISTOGRAM))
		want := sendMix()
		// The counters move when the audit record is written, right after the response.
		Eventually(func() float64 { return requestsDelta(before, scrape(gate.adminURL), nil) }, 5*time.Second, 50*time.Millisecond).
			Should(Equal(mixRequestsTotal))
		expectMixDeltas(before, scrape(gate.adminURL), want)
	})

	It("reports JWKS health per issuer", func() {
		f := scrape(gate.adminURL)
		Expect(f.sum("tenantgate_jwks_refresh_total", map[string]string{"issuer": issuerMain, "result": "success"})).To(BeNumerically(">=", 1),
			"the tenant_gate blocks share the process's key set: one fetch for all")
		Expect(f.sum("tenantgate_jwks_keys", map[string]string{"issuer": issuerMain})).To(BeNumerically(">=", 3))
		last := f.sum("tenantgate_jwks_last_success_timestamp_seconds", map[string]string{"issuer": issuerMain})
		Expect(time.Since(time.Unix(int64(last), 0))).To(BeNumerically("<", 10*time.Minute))
		Expect(f.sum("tenantgate_jwks_refresh_total", map[string]string{"issuer": issuerDownJWKS, "result": "failure"})).To(BeNumerically(">=", 1))
		Expect(f.sum("tenantgate_jwks_refresh_total", map[string]string{"issuer": issuerDownJWKS, "result": "success"})).To(BeZero())
		Expect(f.labelValues("tenantgate_jwks_last_success_timestamp_seconds", "issuer")).NotTo(HaveKey(issuerDownJWKS),
			"never fetched: no timestamp, so time() - metric is not a misleading 0")
	})

	It("caps the tenant label: 1,100 tenants give at most 1,001 values, the rest under _other", func() {
		before := scrape(gate.adminURL)
		const tenants = 1100
		tokens := make(chan string, tenants)
		for i := 0; i < tenants; i++ {
			tokens <- sign(env.edKey, env.baseClaims(fmt.Sprintf("cap-%04d", i)), nil)
		}
		close(tokens)
		var wg sync.WaitGroup
		for w := 0; w < 16; w++ {
			wg.Add(1)
			go func() {
				defer GinkgoRecover()
				defer wg.Done()
				for tok := range tokens {
					status, _, _ := do(http.MethodGet, url1+"/echo/cap", tok, nil, "")
					Expect(status).To(Equal(http.StatusOK))
				}
			}()
		}
		wg.Wait()
		var after metricFamilies
		Eventually(func() float64 {
			after = scrape(gate.adminURL)
			return requestsDelta(before, after, map[string]string{"decision": "allow"})
		}, 5*time.Second, 50*time.Millisecond).Should(Equal(float64(tenants)), "every request counted, capped or not")
		values := after.labelValues("tenantgate_requests_total", "tenant")
		Expect(len(values)).To(BeNumerically("<=", 1001))
		Expect(values).To(HaveKey("_other"))
		Expect(values).To(HaveKey("_none"), "requests without a tenant hold one of the 1,000 slots")
		Expect(values).To(HaveKey("acme"), "tenants seen first keep their series")
		Expect(after.sum("tenantgate_requests_total", map[string]string{"tenant": "_other"})).To(BeNumerically(">=", tenants-1000+3))
	})

	It("keeps the collectors and their counts across two reloads", func() {
		before := scrape(gate.adminURL)
		refreshes := before.sum("tenantgate_jwks_refresh_total", map[string]string{"issuer": issuerMain, "result": "success"})
		for i, realm := range []string{"r1", "r2"} {
			gate.reload(env, metricsSites(addr1, addr2, deadJWKS, realm))
			// The new config answers (its realm shows in WWW-Authenticate).
			Eventually(func() string {
				_, h, _ := do(http.MethodGet, url1+"/echo/x", "", nil, "")
				return h.Get("WWW-Authenticate")
			}, 10*time.Second, 50*time.Millisecond).Should(ContainSubstring(`realm="`+realm+`"`), "reload %d", i+1)
		}
		after := scrape(gate.adminURL)
		for name, fam := range before {
			if !strings.HasPrefix(name, "tenantgate_") {
				continue
			}
			Expect(after).To(HaveKey(name))
			for _, m := range fam.GetMetric() {
				var want map[string]string = map[string]string{}
				for _, l := range m.GetLabel() {
					want[l.GetName()] = l.GetValue()
				}
				if m.Counter != nil {
					Expect(after.sum(name, want)).To(BeNumerically(">=", m.GetCounter().GetValue()),
						"%s%v: counts survive a reload (the collectors live as long as the process)", name, want)
				}
			}
		}
		Expect(after.sum("tenantgate_jwks_refresh_total", map[string]string{"issuer": issuerMain, "result": "success"})).
			To(Equal(refreshes), "keys outlive the config: a reload fetches nothing")
		Expect(after.sum("tenantgate_jwks_keys", map[string]string{"issuer": issuerMain})).To(BeNumerically(">=", 3),
			"the reloaded config starts with the kept keys")

		// Exact counting goes on after the reloads.
		before = scrape(gate.adminURL)
		want := sendMix()
		Eventually(func() float64 { return requestsDelta(before, scrape(gate.adminURL), nil) }, 5*time.Second, 50*time.Millisecond).
			Should(Equal(mixRequestsTotal))
		expectMixDeltas(before, scrape(gate.adminURL), want)

		log, err := os.ReadFile(gate.logPath)
		Expect(err).NotTo(HaveOccurred())
		Expect(string(log)).NotTo(ContainSubstring("tenant_gate metrics"))
		Expect(string(log)).NotTo(ContainSubstring("duplicate metrics collector registration"))
	})
})
