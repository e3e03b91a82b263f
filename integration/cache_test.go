package integration_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/tenantgate/tenantgate/module/assertion"
)

const issuerCache = "https://cache.test" // its JWKS server is the spec's own

// startCaddyRaw is startCaddy for sites that do not use env.issuers():
// the "%.0[1]s" verb consumes the issuers argument and prints nothing.
func (e *testEnv) startCaddyRaw(name, sites, waitURL string) *caddyProc {
	return e.startCaddy(name, strings.ReplaceAll(sites, "%", "%%")+"%.0[1]s", waitURL)
}

func (p *caddyProc) reloadRaw(e *testEnv, sites string) {
	p.reload(e, strings.ReplaceAll(sites, "%", "%%")+"%.0[1]s")
}

var _ = Describe("verified-token cache", Ordered, func() {
	var (
		gate     *caddyProc
		cacheKey signingKey
		jwks     *jwksServer
		addr     string
		url      string
		sites    func(realm string) string
	)
	const size = 20

	BeforeAll(func() {
		cacheKey = newKey(jwa.EdDSA, "cache-ed-1")
		jwks = newJWKSServer(cacheKey.public())
		DeferCleanup(jwks.srv.Close)
		addr = freeAddr()
		url = "http://" + addr
		echo := strings.TrimPrefix(env.echo.URL, "http://")
		sites = func(realm string) string {
			return fmt.Sprintf(`
http://%s {
	bind 127.0.0.1
	tenant_gate {
		issuer %s {
			jwks_url %s
			refresh_interval 1s
			audience %s
		}
		algorithms RS256 EdDSA
		assertion_key %s
		leeway 1s
		token_cache %d
		realm %s
		rule GET /public/** public
		rule GET /echo/admin/** roles admin
		rule *   /echo/**   authenticated
	}
	reverse_proxy %s
}
`, addr, issuerCache, jwks.url(), audience, filepath.Join(env.dir, "assertion.pem"), size, realm, echo)
		}
		gate = env.startCaddyRaw("token-cache", sites("one"), url+"/public/up")
		DeferCleanup(gate.stop)
	})

	cacheToken := func(mutate func(claims)) string {
		c := env.baseClaims("acme", "reader")
		c["iss"] = issuerCache
		c["jti"] = "cache-" + randomHex(8)
		if mutate != nil {
			mutate(c)
		}
		return sign(cacheKey, c, nil)
	}
	counts := func() (hits, misses, entries float64) {
		f := scrape(gate.adminURL)
		return f.sum("tenantgate_token_cache_hits_total", nil), f.sum("tenantgate_token_cache_misses_total", nil),
			f.sum("tenantgate_token_cache_entries", nil)
	}

	It("misses once, then hits, for the same token", func() {
		tok := cacheToken(nil)
		h0, m0, _ := counts()
		status, _, body := do("GET", url+"/echo/a", tok, nil, "")
		Expect(status).To(Equal(200), string(body))
		h1, m1, e1 := counts()
		Expect(m1 - m0).To(Equal(1.0))
		Expect(h1 - h0).To(Equal(0.0))
		Expect(e1).To(BeNumerically(">=", 1))
		for range 3 {
			status, _, _ = do("GET", url+"/echo/a", tok, nil, "")
			Expect(status).To(Equal(200))
		}
		h2, m2, _ := counts()
		Expect(h2 - h1).To(Equal(3.0))
		Expect(m2 - m1).To(Equal(0.0))
	})

	It("still judges the route rule on a hit: a cached token without the role is refused", func() {
		tok := cacheToken(nil)
		status, _, _ := do("GET", url+"/echo/a", tok, nil, "")
		Expect(status).To(Equal(200))
		h0, _, _ := counts()
		status, _, body := do("GET", url+"/echo/admin/x", tok, nil, "")
		Expect(status).To(Equal(403))
		Expect(problemReason(body)).To(Equal("missing_role"))
		h1, _, _ := counts()
		Expect(h1-h0).To(Equal(1.0), "the refusal came from a cache hit")
	})

	It("verifies a token one byte off a cached one afresh, and refuses it", func() {
		tok := cacheToken(nil)
		status, _, _ := do("GET", url+"/echo/a", tok, nil, "")
		Expect(status).To(Equal(200))
		b := []byte(tok)
		i := strings.LastIndexByte(tok, '.') + 5
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		h0, m0, _ := counts()
		status, _, body := do("GET", url+"/echo/a", string(b), nil, "")
		Expect(status).To(Equal(401))
		Expect(problemReason(body)).To(Equal("bad_signature"))
		h1, m1, _ := counts()
		Expect(m1 - m0).To(Equal(1.0))
		Expect(h1 - h0).To(Equal(0.0))
	})

	It("refuses a cached token once it expired (exp + leeway)", func() {
		tok := cacheToken(func(c claims) { c["exp"] = time.Now().Add(2 * time.Second).Unix() })
		for range 2 {
			status, _, body := do("GET", url+"/echo/a", tok, nil, "")
			Expect(status).To(Equal(200), string(body))
		}
		Eventually(func() string {
			status, _, body := do("GET", url+"/echo/a", tok, nil, "")
			if status == 200 {
				return "still accepted"
			}
			return fmt.Sprintf("%d %s", status, problemReason(body))
		}, 10*time.Second, 200*time.Millisecond).Should(Equal("401 token_expired"))
	})

	It("refuses a cached token once its key left the JWKS", func() {
		tok := cacheToken(nil)
		status, _, _ := do("GET", url+"/echo/a", tok, nil, "")
		Expect(status).To(Equal(200))
		rotated := newKey(jwa.EdDSA, "cache-ed-2")
		jwks.mu.Lock()
		jwks.keys = []jwk.Key{rotated.public()}
		jwks.mu.Unlock()
		DeferCleanup(func() {
			jwks.mu.Lock()
			jwks.keys = []jwk.Key{cacheKey.public()}
			jwks.mu.Unlock()
			// The next refresh brings the key back for the specs that follow.
			Eventually(func() int {
				status, _, _ := do("GET", url+"/echo/a", cacheToken(nil), nil, "")
				return status
			}, 15*time.Second, 200*time.Millisecond).Should(Equal(200))
		})
		Eventually(func() string {
			status, _, body := do("GET", url+"/echo/a", tok, nil, "")
			if status == 200 {
				return "still accepted"
			}
			return fmt.Sprintf("%d %s", status, problemReason(body))
		}, 15*time.Second, 200*time.Millisecond).Should(Equal("401 unknown_key"))
		// A token of the new key passes: the refresh did take place.
		status, _, body := do("GET", url+"/echo/a", sign(rotated, cacheClaims(), nil), nil, "")
		Expect(status).To(Equal(200), string(body))
	})

	It("stays within token_cache entries under a flood of unique tokens", func() {
		for i := range 5 * size {
			status, _, _ := do("GET", url+"/echo/a", cacheToken(func(c claims) { c["jti"] = fmt.Sprintf("flood-%d", i) }), nil, "")
			Expect(status).To(Equal(200))
		}
		Eventually(func() float64 { _, _, e := counts(); return e }, 5*time.Second, 100*time.Millisecond).
			Should(And(BeNumerically("<=", size), BeNumerically(">", 0)))
	})

	It("starts a fresh cache on reload", func() {
		tok := cacheToken(nil)
		for range 2 {
			status, _, _ := do("GET", url+"/echo/a", tok, nil, "")
			Expect(status).To(Equal(200))
		}
		gate.reloadRaw(env, sites("two"))
		Eventually(func() string {
			_, h, _ := do("GET", url+"/echo/a", "", nil, "")
			return h.Get("WWW-Authenticate")
		}, 10*time.Second, 50*time.Millisecond).Should(ContainSubstring(`realm="two"`))
		// The old config is cleaned up just after the new one serves.
		Eventually(func() float64 { _, _, e := counts(); return e }, 10*time.Second, 50*time.Millisecond).
			Should(BeZero(), "the old config's entries went with it")
		h0, m0, _ := counts()
		status, _, _ := do("GET", url+"/echo/a", tok, nil, "")
		Expect(status).To(Equal(200))
		h1, m1, _ := counts()
		Expect(m1 - m0).To(Equal(1.0))
		Expect(h1 - h0).To(Equal(0.0))
	})
})

// cacheClaims are valid claims of the cache spec's issuer.
func cacheClaims() claims {
	c := env.baseClaims("acme", "reader")
	c["iss"] = issuerCache
	return c
}

var _ = Describe("HS256 assertion", Ordered, func() {
	var (
		gate       *caddyProc
		backendURL string
		url        string
		secret     string
	)

	BeforeAll(func() {
		secret = randomHex(32)
		secretPath := filepath.Join(env.dir, "hs256-assertion.secret")
		Expect(os.WriteFile(secretPath, []byte(secret+"\n"), 0o600)).To(Succeed())
		backendAddr := freeAddr()
		backendURL = "http://" + backendAddr
		backend := env.spawn(filepath.Join(env.dir, "backend-hs256.log"), filepath.Join(env.binDir, "backend"),
			"--listen", backendAddr, "--db", filepath.Join(env.dir, "backend-hs256.db"),
			"--assertion-secret-file", secretPath, "--seed-demo")
		DeferCleanup(func() { stopCmd(backend) })
		env.waitHTTP(backendURL + "/healthz")

		addr := freeAddr()
		url = "http://" + addr
		gate = env.startCaddyRaw("hs256-assertion", fmt.Sprintf(`
http://%s {
	bind 127.0.0.1
	tenant_gate {
		issuer %s {
			jwks_url %s
			audience %s
		}
		assertion_alg HS256
		assertion_secret {file.%s}
		rule GET /healthz public
		rule GET /api/v1/whoami authenticated
	}
	reverse_proxy %s
}
`, addr, issuerMain, env.jwks.url(), audience, secretPath, backendAddr), url+"/healthz")
		DeferCleanup(gate.stop)
	})

	It("carries the identity from the gate to the backend", func() {
		status, _, body := do("GET", url+"/api/v1/whoami", env.token("acme", "ensemble:read"), nil, "")
		Expect(status).To(Equal(200), string(body))
		var who struct {
			TenantID string   `json:"tenant_id"`
			UserID   string   `json:"user_id"`
			Roles    []string `json:"roles"`
		}
		Expect(json.Unmarshal(body, &who)).To(Succeed())
		Expect(who.TenantID).To(Equal("acme"))
		Expect(who.UserID).To(Equal("user-acme"))
		Expect(who.Roles).To(Equal([]string{"ensemble:read"}))
	})

	It("is refused by the backend when signed with another secret, or with the gate's Ed25519 key", func() {
		other, err := assertion.NewHMACSigner([]byte(randomHex(32)))
		Expect(err).NotTo(HaveOccurred())
		ed, err := assertion.NewEd25519Signer(env.assertionPriv)
		Expect(err).NotTo(HaveOccurred())
		right, err := assertion.NewHMACSigner([]byte(secret))
		Expect(err).NotTo(HaveOccurred())
		for name, s := range map[string]*assertion.Signer{"other secret": other, "Ed25519": ed, "right secret": right} {
			raw, err := s.Sign(assertion.Claims{Issuer: assertion.DefaultIssuer, Audience: assertion.DefaultAudience,
				Tenant: "acme", Subject: "mallory", Method: "GET", Path: "/api/v1/whoami", ID: "x-" + name})
			Expect(err).NotTo(HaveOccurred())
			status, _, body := do("GET", backendURL+"/api/v1/whoami", "", map[string][]string{assertion.Header: {raw}}, "")
			want := 401
			if name == "right secret" {
				want = 200 // the control: the same request with the real secret passes
			}
			Expect(status).To(Equal(want), "%s: %s", name, body)
		}
	})
})

func stopCmd(c *exec.Cmd) {
	if c == nil || c.Process == nil {
		return
	}
	_ = c.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _, _ = c.Process.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = c.Process.Kill()
	}
}
