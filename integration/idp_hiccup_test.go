package integration_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"

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
		idp     *hiccupIdP
		keyA    signingKey
		sites   func(extraRule string) string
	)

	BeforeAll(func() {
		keyA = newKey(jwa.RS256, "a1")
		idp = newHiccupIdP()
		DeferCleanup(idp.srv.Close)
		addr := freeAddr()
		gateURL = "http://" + addr
		echo := strings.TrimPrefix(env.echo.URL, "http://")
		sites = func(extraRule string) string {
			return fmt.Sprintf(`
http://%s {
	tenant_gate {
%%[1]s
		issuer %s/realms/{tenant} {
			jwks_url %s/realms/{tenant}/jwks
			audience %s
			tenants *
		}
		rule GET /public/ready public
		%s
		rule *   /echo/**      authenticated
	}
	reverse_proxy %s
}
`, addr, idp.srv.URL, idp.srv.URL, audience, extraRule, echo)
		}
		gate = env.startCaddy("idphiccup", sites(""), gateURL+"/public/ready")
		DeferCleanup(gate.stop)
	})

	token := func(realm string, key signingKey) string {
		c := env.baseClaims(realm)
		c["iss"] = idp.iss(realm)
		delete(c, "tenant_id")
		return sign(key, c, nil)
	}
	get := func(tok string) (int, http.Header, []byte) {
		return do(http.MethodGet, gateURL+"/echo/whoami", tok, nil, "")
	}

	It("answers 429 with 503 and Retry-After, then 200 within seconds of recovery", func() {
		idp.serve("busy", http.StatusTooManyRequests, "2")
		status, h, body := get(token("busy", keyA))
		Expect(status).To(Equal(http.StatusServiceUnavailable), string(body))
		Expect(problemReason(body)).To(Equal("keys_unavailable"))
		Expect(problemDetail(body)).To(ContainSubstring("429"))
		Expect(h.Get("Retry-After")).To(Equal("2"))
		before := idp.fetches("busy")
		status, _, _ = get(token("busy", keyA))
		Expect(status).To(Equal(http.StatusServiceUnavailable))
		Expect(idp.fetches("busy")).To(Equal(before), "a remembered temporary failure fetched again")

		idp.serve("busy", 0, "", keyA)
		Eventually(func() int { s, _, _ := get(token("busy", keyA)); return s }, "8s", "200ms").Should(Equal(http.StatusOK))
		fams := scrape(gate.adminURL)
		Expect(fams.sum("tenantgate_idp_temporary_failures_total", map[string]string{
			"issuer": idp.srv.URL + "/realms/{tenant}", "class": "429"})).To(BeNumerically(">=", 1))
	})

	It("treats a WAF's 403 and a 502 as temporary, and only 404 as unknown", func() {
		idp.serve("waf", http.StatusForbidden, "")
		status, h, body := get(token("waf", keyA))
		Expect(status).To(Equal(http.StatusServiceUnavailable), string(body))
		Expect(problemDetail(body)).To(ContainSubstring("4xx"))
		Expect(h.Get("Retry-After")).NotTo(BeEmpty())

		idp.serve("down", http.StatusBadGateway, "")
		status, _, body = get(token("down", keyA))
		Expect(status).To(Equal(http.StatusServiceUnavailable), string(body))
		Expect(problemDetail(body)).To(ContainSubstring("5xx"))

		status, _, body = get(token("nobody", keyA)) // 404
		Expect(status).To(Equal(http.StatusUnauthorized), string(body))
		Expect(problemReason(body)).To(Equal("unknown_issuer"))
	})

	It("accepts a key published right after a fetch on the first request", func() {
		idp.serve("rot", 0, "", keyA)
		status, _, body := get(token("rot", keyA))
		Expect(status).To(Equal(http.StatusOK), string(body))
		keyB := newKey(jwa.RS256, "b2")
		idp.serve("rot", 0, "", keyA, keyB)
		before := idp.fetches("rot")
		status, _, body = get(token("rot", keyB))
		Expect(status).To(Equal(http.StatusOK), string(body))
		Expect(idp.fetches("rot") - before).To(Equal(1))
	})

	It("lets a held tenant pass right after a reload while 50 made-up tenants flood", func() {
		idp.serve("held", 0, "", keyA)
		status, _, body := get(token("held", keyA))
		Expect(status).To(Equal(http.StatusOK), string(body))
		gate.reload(env, sites("rule GET /public/other public"))
		Eventually(func() int { s, _, _ := do(http.MethodGet, gateURL+"/public/other", "", nil, ""); return s }, "10s", "100ms").
			ShouldNot(Equal(http.StatusUnauthorized), "the reloaded config is live")
		for i := range 50 {
			get(token(fmt.Sprintf("madeup%d", i), keyA)) // 404 each: spends the new-tenant budget
		}
		before := idp.fetches("held")
		status, _, body = get(token("held", keyA))
		Expect(status).To(Equal(http.StatusOK), string(body))
		// Its kept keys served at once; rejoining the process's set may
		// start one refresh in the background, never more.
		Expect(idp.fetches("held") - before).To(BeNumerically("<=", 1))
		madeUp := 0
		for i := range 50 {
			madeUp += idp.fetches(fmt.Sprintf("madeup%d", i))
		}
		GinkgoWriter.Printf("50 made-up tenants after a reload: %d fetches\n", madeUp)
		Expect(madeUp).To(BeNumerically("<=", 10+5), "the budget bounds the flood's fetches")
	})
})
