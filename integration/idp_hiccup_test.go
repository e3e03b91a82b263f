package integration_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// hiccupIdP is a loopback IdP whose realms can answer any status (with a
// Retry-After) instead of their keys, and counts JWKS fetches per realm.
type hiccupIdP struct {
	srv   *httptest.Server
	mu    sync.Mutex
	keys  map[string][]jwk.Key
	codes map[string]int
	retry map[string]string
	hits  map[string]int
}

func newHiccupIdP() *hiccupIdP {
	p := &hiccupIdP{keys: map[string][]jwk.Key{}, codes: map[string]int{}, retry: map[string]string{}, hits: map[string]int{}}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		realm := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/realms/"), "/jwks")
		p.mu.Lock()
		p.hits[realm]++
		keys, code, ra := p.keys[realm], p.codes[realm], p.retry[realm]
		p.mu.Unlock()
		if ra != "" {
			w.Header().Set("Retry-After", ra)
		}
		if code != 0 {
			w.WriteHeader(code)
			return
		}
		if keys == nil {
			http.NotFound(w, r)
			return
		}
		set := jwk.NewSet()
		for _, k := range keys {
			_ = set.AddKey(k)
		}
		_ = jsonEncode(w, set)
	}))
	return p
}

func (p *hiccupIdP) iss(realm string) string { return p.srv.URL + "/realms/" + realm }

func (p *hiccupIdP) serve(realm string, code int, retryAfter string, keys ...signingKey) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.codes[realm], p.retry[realm] = code, retryAfter
	p.keys[realm] = nil
	for _, k := range keys {
		p.keys[realm] = append(p.keys[realm], k.public())
	}
}

func (p *hiccupIdP) fetches(realm string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.hits[realm]
}

func problemDetail(body []byte) string {
	var p struct {
		Detail string `json:"detail"`
	}
	_ = json.Unmarshal(body, &p)
	return p.Detail
}

var _ = Describe("IdP hiccups and key rotation (keys at scale)", Ordered, func() {
	var (
		gate    *caddyProc
		gateURL string
		// idp backs `tenants *`; crowd backs another `tenants *` block
		// with a budget of its own, for the client-address spec; listed
		// backs a block listing 30 tenants with max_tenants 2.
		idp, crowd, listed *hiccupIdP
		keyA               signingKey
		sites              func(extraRule string) string
	)
	const listedTenants = 30

	BeforeAll(func() {
		keyA = newKey(jwa.RS256, "a1")
		idp, crowd, listed = newHiccupIdP(), newHiccupIdP(), newHiccupIdP()
		DeferCleanup(func() { idp.srv.Close(); crowd.srv.Close(); listed.srv.Close() })
		var names []string
		for i := range listedTenants {
			names = append(names, fmt.Sprintf("l%d", i))
			listed.serve(names[i], 0, "", keyA)
		}
		addr := freeAddr()
		gateURL = "http://" + addr
		echo := strings.TrimPrefix(env.echo.URL, "http://")
		sites = func(extraRule string) string {
			return fmt.Sprintf(`
http://%[1]s {
	tenant_gate {
%%[1]s
		issuer %[2]s/realms/{tenant} {
			jwks_url %[2]s/realms/{tenant}/jwks
			audience %[3]s
			tenants *
		}
		issuer %[4]s/realms/{tenant} {
			jwks_url %[4]s/realms/{tenant}/jwks
			audience %[3]s
			tenants *
		}
		issuer %[5]s/realms/{tenant} {
			jwks_url %[5]s/realms/{tenant}/jwks
			audience %[3]s
			tenants %[6]s
			max_tenants 2
		}
		rule GET /public/ready public
		%[7]s
		rule *   /echo/**      authenticated
	}
	reverse_proxy %[8]s
}
`, addr, idp.srv.URL, audience, crowd.srv.URL, listed.srv.URL, strings.Join(names, " "), extraRule, echo)
		}
		gate = env.startCaddy("idphiccup", sites(""), gateURL+"/public/ready")
		DeferCleanup(gate.stop)
	})

	tokenOf := func(p *hiccupIdP, realm string, key signingKey) string {
		c := env.baseClaims(realm)
		c["iss"] = p.iss(realm)
		delete(c, "tenant_id")
		return sign(key, c, nil)
	}
	token := func(realm string, key signingKey) string { return tokenOf(idp, realm, key) }
	ask := func(tok string) (int, http.Header, []byte) {
		return do(http.MethodGet, gateURL+"/echo/whoami", tok, nil, "")
	}

	It("answers 429 with 503 and Retry-After, then 200 within seconds of recovery", func() {
		idp.serve("busy", http.StatusTooManyRequests, "2")
		status, h, body := ask(token("busy", keyA))
		Expect(status).To(Equal(http.StatusServiceUnavailable), string(body))
		Expect(problemReason(body)).To(Equal("keys_unavailable"))
		Expect(problemDetail(body)).To(ContainSubstring("429"))
		Expect(h.Get("Retry-After")).To(Equal("2"))
		before := idp.fetches("busy")
		status, _, _ = ask(token("busy", keyA))
		Expect(status).To(Equal(http.StatusServiceUnavailable))
		Expect(idp.fetches("busy")).To(Equal(before), "a remembered temporary failure fetched again")

		idp.serve("busy", 0, "", keyA)
		Eventually(func() int { s, _, _ := ask(token("busy", keyA)); return s }, "8s", "200ms").Should(Equal(http.StatusOK))
		fams := scrape(gate.adminURL)
		Expect(fams.sum("tenantgate_idp_temporary_failures_total", map[string]string{
			"issuer": idp.srv.URL + "/realms/{tenant}", "class": "429"})).To(BeNumerically(">=", 1))
	})

	It("treats a WAF's 403 and a 502 as temporary, and only 404 as unknown", func() {
		idp.serve("waf", http.StatusForbidden, "")
		status, h, body := ask(token("waf", keyA))
		Expect(status).To(Equal(http.StatusServiceUnavailable), string(body))
		Expect(problemDetail(body)).To(ContainSubstring("4xx"))
		Expect(h.Get("Retry-After")).NotTo(BeEmpty())

		idp.serve("down", http.StatusBadGateway, "")
		status, _, body = ask(token("down", keyA))
		Expect(status).To(Equal(http.StatusServiceUnavailable), string(body))
		Expect(problemDetail(body)).To(ContainSubstring("5xx"))

		status, _, body = ask(token("nobody", keyA)) // 404
		Expect(status).To(Equal(http.StatusUnauthorized), string(body))
		Expect(problemReason(body)).To(Equal("unknown_issuer"))
	})

	It("accepts a key published right after a fetch on the first request", func() {
		idp.serve("rot", 0, "", keyA)
		status, _, body := ask(token("rot", keyA))
		Expect(status).To(Equal(http.StatusOK), string(body))
		keyB := newKey(jwa.RS256, "b2")
		idp.serve("rot", 0, "", keyA, keyB)
		before := idp.fetches("rot")
		status, _, body = ask(token("rot", keyB))
		Expect(status).To(Equal(http.StatusOK), string(body))
		Expect(idp.fetches("rot") - before).To(Equal(1))
	})

	It("lets a held tenant pass right after a reload while 50 made-up tenants flood", func() {
		idp.serve("held", 0, "", keyA)
		status, _, body := ask(token("held", keyA))
		Expect(status).To(Equal(http.StatusOK), string(body))
		reloadStart := time.Now()
		gate.reload(env, sites("rule GET /public/other public"))
		reloadTook := time.Since(reloadStart)
		Eventually(func() int { s, _, _ := do(http.MethodGet, gateURL+"/public/other", "", nil, ""); return s }, "10s", "100ms").
			ShouldNot(Equal(http.StatusUnauthorized), "the reloaded config is live")
		live := time.Since(reloadStart)
		floodStart := time.Now()
		refused := 0
		for i := range 50 {
			// 404 each, or refused by the budget: made-up tenants.
			if s, _, b := ask(token(fmt.Sprintf("madeup%d", i), keyA)); s == http.StatusServiceUnavailable {
				Expect(problemDetail(b)).To(ContainSubstring("new-tenant budget"))
				refused++
			}
		}
		flood := time.Since(floodStart)
		before := idp.fetches("held")
		passStart := time.Now()
		status, _, body = ask(token("held", keyA))
		Expect(status).To(Equal(http.StatusOK), string(body))
		pass := time.Since(passStart)
		// The held set belongs to the process: the new config holds the
		// tenant already, and neither the reload nor the flood fetched it.
		Expect(idp.fetches("held") - before).To(BeZero())
		madeUp := 0
		for i := range 50 {
			madeUp += idp.fetches(fmt.Sprintf("madeup%d", i))
		}
		AddReportEntry("reload, then 50 made-up tenants", fmt.Sprintf("reload command %s, config live after %s; flood %s: %d fetches, %d refused; held tenant answered 200 in %s with 0 fetches",
			reloadTook.Round(time.Millisecond), live.Round(time.Millisecond), flood.Round(time.Millisecond), madeUp, refused, pass.Round(time.Microsecond)))
		Expect(madeUp).To(BeNumerically("<=", 10+5), "the budget bounds the flood's fetches")
		Expect(scrape(gate.adminURL).sum("tenantgate_tenant_budget_refusals_total", map[string]string{"issuer": idp.srv.URL + "/realms/{tenant}"})).
			To(BeNumerically(">=", refused))
	})

	It("costs at most the budget's fetches when tokens cycle through listed tenants past max_tenants", func() {
		start := time.Now()
		passed, refused := 0, 0
		for range 3 {
			for i := range listedTenants {
				s, _, b := ask(tokenOf(listed, fmt.Sprintf("l%d", i), keyA))
				switch s {
				case http.StatusOK:
					passed++
				case http.StatusServiceUnavailable:
					Expect(problemDetail(b)).To(ContainSubstring("new-tenant budget"))
					refused++
				default:
					Fail(fmt.Sprintf("l%d: %d %s", i, s, b))
				}
			}
		}
		elapsed := time.Since(start)
		fetches := 0
		for i := range listedTenants {
			fetches += listed.fetches(fmt.Sprintf("l%d", i))
		}
		bound := 10 + int(elapsed/time.Second) + 1 // README: 10 at once, then 1 per second, per issuer
		AddReportEntry("listed tenants cycling", fmt.Sprintf("%d requests over %d listed tenants (max_tenants 2) in %s: %d fetches (budget bound %d), %d passed, %d refused",
			3*listedTenants, listedTenants, elapsed.Round(time.Millisecond), fetches, bound, passed, refused))
		Expect(fetches).To(BeNumerically(">=", 1))
		Expect(fetches).To(BeNumerically("<=", bound))
		// Every tenant fetched once passes on each return, from its kept
		// keys, though max_tenants 2 evicted it meanwhile.
		Expect(passed).To(BeNumerically(">=", 3*fetches-2))
	})

	It("lets another client's new tenant in while one client address floods made-up tenants", func() {
		crowd.serve("newcomer", 0, "", keyA)
		flooder, other := fromSource("127.0.0.2"), fromSource("127.0.0.3")
		url := gateURL + "/echo/whoami"
		var sent, mine atomic.Int64
		stop, done := make(chan struct{}), make(chan struct{})
		go func() {
			defer GinkgoRecover()
			defer close(done)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				s, _, b := get(flooder, url, tokenOf(crowd, fmt.Sprintf("flood%d", i), keyA), nil)
				sent.Add(1)
				if s == http.StatusServiceUnavailable && strings.Contains(problemDetail(b), "by this client address") {
					mine.Add(1)
				}
			}
		}()
		Eventually(mine.Load, "10s", "20ms").Should(BeNumerically(">=", 20), "the flooder spends its own share")
		// During the flood, from another address: a tenant never seen.
		s, _, b := get(other, url, tokenOf(crowd, "newcomer", keyA), nil)
		close(stop)
		<-done
		Expect(s).To(Equal(http.StatusOK), string(b))
		// A forged X-Forwarded-For from a peer that is no trusted proxy
		// buys no fresh share: the address is the one Caddy resolved.
		forged := 0
		for i := range 10 {
			s, _, b := get(flooder, url, tokenOf(crowd, fmt.Sprintf("forged%d", i), keyA), map[string]string{"X-Forwarded-For": fmt.Sprintf("203.0.113.%d", i)})
			if s == http.StatusServiceUnavailable && strings.Contains(problemDetail(b), "by this client address") {
				forged++
			}
		}
		Expect(forged).To(BeNumerically(">=", 9))
		fetches := 0
		for i := range int(sent.Load()) {
			fetches += crowd.fetches(fmt.Sprintf("flood%d", i))
		}
		AddReportEntry("one client's flood", fmt.Sprintf("%d made-up tenants from 127.0.0.2: %d fetches, %d refused for its share; a new tenant from 127.0.0.3 answered 200; 10 forged X-Forwarded-For: %d refused",
			sent.Load(), fetches, mine.Load(), forged))
		Expect(scrape(gate.adminURL).sum("tenantgate_tenant_budget_refusals_total", map[string]string{"issuer": crowd.srv.URL + "/realms/{tenant}"})).
			To(BeNumerically(">=", mine.Load()+int64(forged)))
	})
})
