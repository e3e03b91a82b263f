package integration_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// Keys that outlive a config, rotation, token types, lifetimes, the audit
// record of upgrades and CSRF for cookie tokens, through the real binary.

const (
	issuerLife  = "https://life.test"  // its own JWKS server, counted and slowed here
	issuerTyped = "https://typed.test" // token_type at+jwt
	issuerFlood = "https://flood.test" // its own JWKS server, flooded with made-up kids
)

// lifecycleSites is a gate (site A: default leeway, a websocket upstream
// under /ws/) and a second gate (site B: leeway 0s, the token in a cookie)
// sharing the life issuer's keys. realm changes between reloads.
func lifecycleSites(addrA, addrB, lifeJWKS, floodJWKS, typedJWKS, wsUp, realm string) string {
	echo := strings.TrimPrefix(env.echo.URL, "http://")
	life := fmt.Sprintf(`
		issuer %s {
			jwks_url %s
			audience %s
			refresh_interval 1h
		}`, issuerLife, lifeJWKS, audience)
	return fmt.Sprintf(`
http://%s {
	tenant_gate {
%%[1]s
%s
		issuer %s {
			jwks_file %s
			audience %s
			token_type at+jwt
		}
		issuer %s {
			jwks_url %s
			audience %s
			refresh_interval 1h
		}
		realm %s
		rule GET /ws/**   authenticated
		rule *   /echo/** authenticated
	}
	handle /ws/* {
		reverse_proxy %s
	}
	handle {
		reverse_proxy %s
	}
}

http://%s {
	tenant_gate {
%%[1]s
%s
		leeway 0s
		token_cookie session
		allowed_origins https://app.example.com
		realm %s
		rule * /echo/** authenticated
	}
	reverse_proxy %s
}
`, addrA, life, issuerTyped, typedJWKS, audience, issuerFlood, floodJWKS, audience, realm, wsUp, echo, addrB, life, realm, echo)
}

// wsUpstream answers an upgrade with 101 and keeps the tunnel open until
// the client closes it.
func wsUpstream() *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			http.Error(w, "upgrade expected", http.StatusBadRequest)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		_ = brw.Flush()
		buf := make([]byte, 1)
		_, _ = conn.Read(buf) // until the client closes
	}))
}

// loadResult is what a steady load saw.
type loadResult struct {
	requests, non2xx, errors int64
	statuses                 sync.Map // status -> *atomic.Int64
}

func (l *loadResult) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "requests %d, non-2xx %d, transport errors %d", l.requests, l.non2xx, l.errors)
	l.statuses.Range(func(k, v any) bool {
		fmt.Fprintf(&b, ", %v: %d", k, v.(*atomic.Int64).Load())
		return true
	})
	return b.String()
}

// steadyLoad sends GETs with token from workers goroutines until stop is
// closed, each carrying X-Request-ID prefix-N so the audit file can be
// matched against them.
func steadyLoad(url, token, prefix string, workers int, stop <-chan struct{}) *loadResult {
	res := &loadResult{}
	var wg sync.WaitGroup
	var seq atomic.Int64
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer GinkgoRecover()
			defer wg.Done()
			client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			for {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest(http.MethodGet, url, nil)
				req.Header.Set("Authorization", "Bearer "+token)
				req.Header.Set("X-Request-ID", fmt.Sprintf("%s-%d", prefix, seq.Add(1)))
				resp, err := client.Do(req)
				atomic.AddInt64(&res.requests, 1)
				if err != nil {
					atomic.AddInt64(&res.errors, 1)
					continue
				}
				_ = resp.Body.Close()
				if resp.StatusCode/100 != 2 {
					atomic.AddInt64(&res.non2xx, 1)
				}
				c, _ := res.statuses.LoadOrStore(resp.StatusCode, new(atomic.Int64))
				c.(*atomic.Int64).Add(1)
			}
		}()
	}
	wg.Wait()
	return res
}

// expectReloadClean: every response through the reloads was 2xx, and the
// audit trail has exactly one record per response. Caddy opens new
// listening sockets (SO_REUSEPORT) for each config and closes the old ones,
// so a connection still in the old socket's backlog, or an idle keep-alive
// connection written to as it closes, is reset before any handler sees it:
// such transport errors (no response, no record) must stay rare: a few per
// reload, one per worker connection at most.
func expectReloadClean(res *loadResult, auditPath, prefix string) {
	Expect(res.non2xx).To(BeZero(), res.String())
	Expect(res.errors).To(BeNumerically("<=", 30), "more than 10 transport errors per reload: %s", res)
	Eventually(func() int { return countAudit(auditPath, prefix) }, 10*time.Second, 100*time.Millisecond).
		Should(Equal(int(res.requests-res.errors)), "one audit record per response")
}

func countAudit(path, prefix string) int {
	n := 0
	for _, r := range readAudit(path) {
		if strings.HasPrefix(r.ClientRequestID, prefix+"-") {
			n++
		}
	}
	return n
}

var _ = Describe("keys across reloads, rotation and token checks", Ordered, func() {
	var (
		gate                 *caddyProc
		life, flood          *jwksServer
		lifeKey, typedKey    signingKey
		ws                   *httptest.Server
		addrA, addrB         string
		urlA, urlB           string
		typedJWKS            string
		reloads              int
		reload               func()
		lifeToken, typed     func(mut func(c claims), hdr map[string]any) string
		randomKid, floodKid  func() string
		rotated              signingKey
		publishToFirst200    time.Duration
		reloadLocal, reload3 *loadResult
	)

	BeforeAll(func() {
		lifeKey = newKey(jwa.ES256, "life-1")
		typedKey = newKey(jwa.ES256, "typed-1")
		life = newJWKSServer(lifeKey.public())
		flood = newJWKSServer(newKey(jwa.ES256, "flood-1").public())
		ws = wsUpstream()
		DeferCleanup(func() { life.srv.Close(); flood.srv.Close(); ws.Close() })
		set := jwk.NewSet()
		Expect(set.AddKey(typedKey.public())).To(Succeed())
		b, _ := json.Marshal(set)
		typedJWKS = filepath.Join(env.dir, "typed-jwks.json")
		Expect(os.WriteFile(typedJWKS, b, 0o600)).To(Succeed())

		addrA, addrB = freeAddr(), freeAddr()
		urlA, urlB = "http://"+addrA, "http://"+addrB
		sites := func() string {
			return lifecycleSites(addrA, addrB, life.url(), flood.url(), typedJWKS, strings.TrimPrefix(ws.URL, "http://"), fmt.Sprintf("r%d", reloads))
		}
		gate = env.startCaddy("lifecycle", sites(), urlA+"/healthz")
		DeferCleanup(gate.stop)
		reload = func() {
			reloads++
			gate.reload(env, sites())
		}
		tokenFor := func(key signingKey, iss string, mut func(c claims), hdr map[string]any) string {
			c := env.baseClaims("acme")
			c["iss"] = iss
			c["jti"] = "life-" + randomHex(6)
			if mut != nil {
				mut(c)
			}
			return sign(key, c, hdr)
		}
		lifeToken = func(mut func(c claims), hdr map[string]any) string { return tokenFor(lifeKey, issuerLife, mut, hdr) }
		typed = func(mut func(c claims), hdr map[string]any) string { return tokenFor(typedKey, issuerTyped, mut, hdr) }
		// A token signed by the life key but naming a kid no key has (jwx
		// takes the kid from the key, so the key is cloned with it).
		randomKidOf := func(iss string) string {
			k := lifeKey
			k.kid = "random-" + randomHex(8)
			clone, err := lifeKey.key.Clone()
			Expect(err).NotTo(HaveOccurred())
			Expect(clone.Set(jwk.KeyIDKey, k.kid)).To(Succeed())
			k.key = clone
			return tokenFor(k, iss, nil, nil)
		}
		randomKid = func() string { return randomKidOf(issuerLife) }
		floodKid = func() string { return randomKidOf(issuerFlood) }
		Eventually(func() int {
			s, _, _ := do(http.MethodGet, urlA+"/echo/x", lifeToken(nil, nil), nil, "")
			return s
		}, 20*time.Second, 50*time.Millisecond).Should(Equal(200))
	})

	It("serves through three reloads under steady load with a local IdP: zero non-2xx, one record per request", func() {
		stop := make(chan struct{})
		var res *loadResult
		done := make(chan struct{})
		go func() {
			defer close(done)
			res = steadyLoad(urlA+"/echo/load", lifeToken(nil, nil), "load-local", 8, stop)
		}()
		for i := 0; i < 3; i++ {
			time.Sleep(2500 * time.Millisecond)
			reload()
		}
		time.Sleep(2500 * time.Millisecond)
		close(stop)
		<-done
		reloadLocal = res
		AddReportEntry("reload under load, local IdP", res.String())
		Expect(res.requests).To(BeNumerically(">", 100))
		expectReloadClean(res, gate.auditPath, "load-local")
	})

	It("serves through three reloads under steady load with an IdP answering in 300 ms", func() {
		life.delay.Store(int64(300 * time.Millisecond))
		defer life.delay.Store(0)
		stop := make(chan struct{})
		var res *loadResult
		done := make(chan struct{})
		go func() {
			defer close(done)
			res = steadyLoad(urlA+"/echo/load", lifeToken(nil, nil), "load-300ms", 8, stop)
		}()
		for i := 0; i < 3; i++ {
			time.Sleep(2500 * time.Millisecond)
			reload()
		}
		time.Sleep(2500 * time.Millisecond)
		close(stop)
		<-done
		reload3 = res
		AddReportEntry("reload under load, 300 ms IdP", res.String())
		expectReloadClean(res, gate.auditPath, "load-300ms")
	})

	It("answers 200 on the first request after a reload while the JWKS server is down, and the gauge shows the kept keys", func() {
		life.down.Store(true)
		defer life.down.Store(false)
		reload()
		s, _, body := do(http.MethodGet, urlA+"/echo/x", lifeToken(nil, nil), nil, "")
		Expect(s).To(Equal(200), string(body))
		AddReportEntry("reload during an IdP outage", fmt.Sprintf("first request after the reload: %d", s))
		f := scrape(gate.adminURL)
		Expect(f.sum("tenantgate_jwks_keys", map[string]string{"issuer": issuerLife})).To(Equal(1.0))
		Expect(f.sum("tenantgate_jwks_last_success_timestamp_seconds", map[string]string{"issuer": issuerLife})).To(BeNumerically(">", 0))
	})

	It("never answers 503 for a known key while the JWKS answers in 2 s during a reload", func() {
		life.delay.Store(int64(2 * time.Second))
		defer life.delay.Store(0)
		reload()
		for i := 0; i < 20; i++ {
			s, _, body := do(http.MethodGet, urlA+"/echo/x", lifeToken(nil, nil), nil, "")
			Expect(s).To(Equal(200), "request %d: %s", i, body)
		}
	})

	It("accepts a key published right after a refetch within 5 s, answering 503 with Retry-After meanwhile, never 401", func() {
		lifeClaims := func() claims { c := env.baseClaims("acme"); c["iss"] = issuerLife; return c }
		// A first new key makes the gate refetch (once the gap allows) ...
		first := newKey(jwa.ES256, "life-2")
		life.add(first.public())
		Eventually(func() int {
			s, _, _ := do(http.MethodGet, urlA+"/echo/x", sign(first, lifeClaims(), nil), nil, "")
			return s
		}, 10*time.Second, 100*time.Millisecond).Should(Equal(200))
		// ... and a second one is published right after that refetch.
		rotated = newKey(jwa.ES256, "life-3")
		life.add(rotated.public())
		published := time.Now()
		tok := sign(rotated, lifeClaims(), nil)
		Eventually(func() int {
			s, h, body := do(http.MethodGet, urlA+"/echo/x", tok, nil, "")
			if s != 200 {
				Expect(s).To(Equal(503), "before the key is fetched: %s", body)
				Expect(problemReason(body)).To(Equal("keys_unavailable"))
				Expect(h.Get("Retry-After")).To(MatchRegexp(`^[1-9][0-9]*$`))
			}
			return s
		}, 5*time.Second, 100*time.Millisecond).Should(Equal(200))
		publishToFirst200 = time.Since(published)
		AddReportEntry("rotation: publish to first 200", publishToFirst200.String())
	})

	It("refuses a key the IdP removed once the keys were fetched again", func() {
		tok := sign(rotated, func() claims { c := env.baseClaims("acme"); c["iss"] = issuerLife; return c }(), nil)
		s, _, _ := do(http.MethodGet, urlA+"/echo/x", tok, nil, "")
		Expect(s).To(Equal(200))
		life.mu.Lock()
		life.keys = []jwk.Key{lifeKey.public()}
		life.mu.Unlock()
		// The next fetch (a kid not yet seen starts one once the gap allows)
		// leaves the removed key out; from then on it is unknown_key.
		before := life.hits.Load()
		Eventually(func() int64 {
			do(http.MethodGet, urlA+"/echo/x", randomKid(), nil, "")
			return life.hits.Load() - before
		}, 10*time.Second, 200*time.Millisecond).Should(BeNumerically(">=", 1))
		Eventually(func() string {
			_, _, body := do(http.MethodGet, urlA+"/echo/x", tok, nil, "")
			return problemReason(body)
		}, 5*time.Second, 100*time.Millisecond).Should(Equal("unknown_key"))
		for i := 0; i < 3; i++ {
			s, _, _ := do(http.MethodGet, urlA+"/echo/x", tok, nil, "")
			Expect(s).NotTo(Equal(200), "a removed key verified after a fetch")
		}
	})

	It("costs at most 3 fetches for 5,000 tokens with random kids, then accepts a real rotation within the bound", func() {
		// The flood issuer's keys were fetched once, at start: the first
		// made-up kid may refetch at once.
		toks := make(chan string, 5000)
		for i := 0; i < 5000; i++ {
			toks <- floodKid()
		}
		close(toks)
		before := flood.hits.Load()
		var wg sync.WaitGroup
		var passed atomic.Int64
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func() {
				defer GinkgoRecover()
				defer wg.Done()
				client := &http.Client{Timeout: 10 * time.Second}
				for tok := range toks {
					req, _ := http.NewRequest(http.MethodGet, urlA+"/echo/x", nil)
					req.Header.Set("Authorization", "Bearer "+tok)
					resp, err := client.Do(req)
					Expect(err).NotTo(HaveOccurred())
					_ = resp.Body.Close()
					if resp.StatusCode == 200 {
						passed.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		floodEnd := time.Now()
		fetches := flood.hits.Load() - before
		Expect(passed.Load()).To(BeZero())
		Expect(fetches).To(BeNumerically(">=", 1), "a kid not yet seen refetches")
		Expect(fetches).To(BeNumerically("<=", 3))

		// The flood stops, and the IdP rotates for real. A client that
		// honours Retry-After is accepted within the bound the flood left
		// (the refetch gap, at most 30 s), with one fetch.
		rotatedKey := newKey(jwa.ES256, "flood-2")
		flood.add(rotatedKey.public())
		c := env.baseClaims("acme")
		c["iss"] = issuerFlood
		tok := sign(rotatedKey, c, nil)
		beforeRotation := flood.hits.Load()
		tries, waited := 0, time.Duration(0)
		for {
			tries++
			s, h, body := do(http.MethodGet, urlA+"/echo/x", tok, nil, "")
			if s == 200 {
				break
			}
			Expect(s).To(Equal(503), "a key the IdP published: %s", body)
			retry, err := strconv.Atoi(h.Get("Retry-After"))
			Expect(err).NotTo(HaveOccurred())
			Expect(retry).To(BeNumerically("<=", 30), "Retry-After within the largest refetch gap")
			Expect(tries).To(BeNumerically("<", 4), "a client honouring Retry-After gets in")
			time.Sleep(time.Duration(retry) * time.Second)
			waited += time.Duration(retry) * time.Second
		}
		accepted := time.Since(floodEnd)
		AddReportEntry("5,000 random-kid tokens", fmt.Sprintf("%d fetches; then a real rotation accepted %s after the flood stopped (%d tries, %s of Retry-After honoured, %d fetch)",
			fetches, accepted.Round(time.Millisecond), tries, waited, flood.hits.Load()-beforeRotation))
		Expect(accepted).To(BeNumerically("<=", 33*time.Second))
		Expect(flood.hits.Load() - beforeRotation).To(BeNumerically("<=", 2))
	})

	It("under token_type at+jwt refuses typ JWT and accepts at+jwt", func() {
		s, _, body := do(http.MethodGet, urlA+"/echo/x", typed(nil, nil), nil, "") // sign() sets typ JWT
		Expect(s).To(Equal(401))
		Expect(problemReason(body)).To(Equal("wrong_token_type"))
		s, _, body = do(http.MethodGet, urlA+"/echo/x", typed(nil, map[string]any{"typ": "at+jwt"}), nil, "")
		Expect(s).To(Equal(200), string(body))
	})

	It("gives an assertion that expires no later than the token", func() {
		exp := time.Now().Add(20 * time.Second).Unix()
		tok := typed(func(c claims) { c["exp"] = exp }, map[string]any{"typ": "at+jwt"})
		s, e := echoThrough(urlA+"/echo/exp", tok, nil)
		Expect(s).To(Equal(200))
		a := jwsPayload(e.Header.Get("X-Tenant-Assertion"))
		Expect(a["exp"]).To(BeNumerically("<=", exp))
	})

	It("takes leeway 0s as zero", func() {
		tok := lifeToken(func(c claims) { c["exp"] = time.Now().Add(-3 * time.Second).Unix() }, nil)
		s, _, body := do(http.MethodGet, urlB+"/echo/x", tok, nil, "")
		Expect(s).To(Equal(401))
		Expect(problemReason(body)).To(Equal("token_expired"))
		s, _, _ = do(http.MethodGet, urlA+"/echo/x", tok, nil, "")
		Expect(s).To(Equal(200), "the default leeway (30s) still applies on the other gate")
	})

	It("names the issuer and token in the record of a wrong_audience denial", func() {
		tok := lifeToken(func(c claims) { c["aud"] = "someone-else"; c["jti"] = "aud-jti-1" }, nil)
		s, h, _ := do(http.MethodGet, urlA+"/echo/x", tok, nil, "")
		Expect(s).To(Equal(401))
		rec := auditFor(gate.auditPath, h.Get("X-Request-ID"))
		Expect(rec.Reason).To(Equal("wrong_audience"))
		Expect(rec.Issuer).To(Equal(issuerLife))
		Expect(rec.TokenID).To(Equal("aud-jti-1"))
		Expect(rec.TenantID).To(BeEmpty())
	})

	It("writes a websocket's record when the upgrade is answered, while the socket is open", func() {
		conn, err := net.Dial("tcp", addrA)
		Expect(err).NotTo(HaveOccurred())
		defer conn.Close()
		id := "ws-" + randomHex(6)
		fmt.Fprintf(conn, "GET /ws/chat HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+
			"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nX-Request-ID: %s\r\n\r\n", addrA, lifeToken(nil, nil), id)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		Expect(err).NotTo(HaveOccurred())
		Expect(resp.StatusCode).To(Equal(101))
		var rec auditEntry
		Eventually(func() int {
			n := 0
			for _, r := range readAudit(gate.auditPath) {
				if r.ClientRequestID == id {
					rec = r
					n++
				}
			}
			return n
		}, 5*time.Second, 50*time.Millisecond).Should(Equal(1), "the record is written while the socket is still open")
		Expect(rec.Status).To(Equal(101))
		Expect(rec.Decision).To(Equal("allow"))
		conn.Close()
		Consistently(func() int {
			n := 0
			for _, r := range readAudit(gate.auditPath) {
				if r.ClientRequestID == id {
					n++
				}
			}
			return n
		}, time.Second, 100*time.Millisecond).Should(Equal(1), "closing the socket adds no second record")
	})

	It("refuses a cross-site POST with the cookie token and allows a same-origin one", func() {
		post := func(headers map[string][]string) (int, []byte) {
			req, _ := http.NewRequest(http.MethodPost, urlB+"/echo/close", strings.NewReader(""))
			req.AddCookie(&http.Cookie{Name: "session", Value: lifeToken(nil, nil)})
			for k, v := range headers {
				req.Header[k] = v
			}
			resp, err := http.DefaultClient.Do(req)
			Expect(err).NotTo(HaveOccurred())
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			Expect(err).NotTo(HaveOccurred())
			return resp.StatusCode, b
		}
		s, body := post(map[string][]string{"Sec-Fetch-Site": {"cross-site"}, "Origin": {"https://evil.example"}})
		Expect(s).To(Equal(403))
		Expect(problemReason(body)).To(Equal("csrf_suspected"))
		s, _ = post(nil)
		Expect(s).To(Equal(403), "no Sec-Fetch-Site and no Origin")
		s, body = post(map[string][]string{"Sec-Fetch-Site": {"same-origin"}})
		Expect(s).To(Equal(200), string(body))
		s, body = post(map[string][]string{"Sec-Fetch-Site": {"cross-site"}, "Origin": {"https://app.example.com"}})
		Expect(s).To(Equal(200), string(body))
	})

	It("drops a removed issuer's key gauges at the reload that removes it", func() {
		Expect(scrape(gate.adminURL).labelValues("tenantgate_jwks_keys", "issuer")).To(HaveKey(issuerLife))
		reloads++
		gate.reload(env, strings.Replace(lifecycleSites(addrA, addrB, life.url(), flood.url(), typedJWKS, strings.TrimPrefix(ws.URL, "http://"),
			fmt.Sprintf("r%d", reloads)), "issuer "+issuerLife+" {", "issuer https://life-renamed.test {", -1))
		Eventually(func() map[string]bool {
			return scrape(gate.adminURL).labelValues("tenantgate_jwks_keys", "issuer")
		}, 5*time.Second, 100*time.Millisecond).ShouldNot(HaveKey(issuerLife))
	})

	AfterAll(func() {
		if reloadLocal != nil && reload3 != nil {
			fmt.Fprintf(GinkgoWriter, "reload under load: local %s; 300ms %s; rotation %s\n", reloadLocal, reload3, publishToFirst200)
		}
	})
})
