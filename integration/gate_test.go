package integration_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

type whoami struct {
	TenantID  string   `json:"tenant_id"`
	UserID    string   `json:"user_id"`
	Roles     []string `json:"roles"`
	RequestID string   `json:"request_id"`
}

func echoThrough(url, token string, headers map[string][]string) (int, echoed) {
	status, _, body := do(http.MethodGet, url, token, headers, "")
	var got echoed
	if status == http.StatusOK {
		Expect(json.Unmarshal(body, &got)).To(Succeed(), string(body))
	}
	return status, got
}

var _ = Describe("the walking skeleton", func() {
	DescribeTable("a valid token reaches the backend's whoami with its tenant",
		func(keyOf func() signingKey) {
			c := env.baseClaims("acme", "ensemble:read")
			status, _, body := do(http.MethodGet, env.gateURL+"/api/v1/whoami", sign(keyOf(), c, nil), nil, "")
			Expect(status).To(Equal(http.StatusOK), string(body))
			var w whoami
			Expect(json.Unmarshal(body, &w)).To(Succeed())
			Expect(w.TenantID).To(Equal("acme"))
			Expect(w.UserID).To(Equal("user-acme"))
			Expect(w.Roles).To(ConsistOf("ensemble:read"))
			Expect(w.RequestID).NotTo(BeEmpty())
		},
		Entry("RS256", func() signingKey { return env.rsaKey }),
		Entry("ES256", func() signingKey { return env.ecKey }),
		Entry("EdDSA", func() signingKey { return env.edKey }),
	)

	It("accepts HS256 from the HMAC issuer", func() {
		c := env.baseClaims("globex")
		c["iss"] = issuerHMAC
		tok := signHMAC(env.hmacSecret, c)
		status, _, body := do(http.MethodGet, env.gateURL+"/api/v1/whoami", tok, nil, "")
		Expect(status).To(Equal(http.StatusOK), string(body))
		Expect(string(body)).To(ContainSubstring(`"tenant_id":"globex"`))
	})

	It("answers 401 problem+json with WWW-Authenticate when no token is sent", func() {
		status, h, body := do(http.MethodGet, env.gateURL+"/api/v1/whoami", "", nil, "")
		Expect(status).To(Equal(http.StatusUnauthorized))
		Expect(h.Get("Content-Type")).To(Equal("application/problem+json"))
		Expect(h.Get("WWW-Authenticate")).To(HavePrefix("Bearer realm="))
		var p map[string]any
		Expect(json.Unmarshal(body, &p)).To(Succeed())
		Expect(p).To(HaveKeyWithValue("status", BeNumerically("==", 401)))
		Expect(p).To(HaveKeyWithValue("reason", "missing_token"))
		Expect(p).To(HaveKey("title"))
		Expect(p).To(HaveKey("detail"))
		Expect(p["request_id"]).NotTo(BeEmpty())
	})

	It("answers 401 invalid_token for a bad signature, without echoing the token", func() {
		tok := sign(env.attackerKey, env.baseClaims("acme"), nil)
		status, h, body := do(http.MethodGet, env.gateURL+"/api/v1/whoami", tok, nil, "")
		Expect(status).To(Equal(http.StatusUnauthorized))
		Expect(h.Get("WWW-Authenticate")).To(ContainSubstring(`error="invalid_token"`))
		Expect(problemReason(body)).To(Equal("bad_signature"))
		Expect(string(body)).NotTo(ContainSubstring(tok[:20]))
		Expect(string(body)).NotTo(ContainSubstring("eyJ"))
	})

	It("answers 403 no_tenant for a valid token without a usable tenant", func() {
		c := env.baseClaims("acme")
		c["tenant_id"] = "../x"
		status, _, body := do(http.MethodGet, env.gateURL+"/api/v1/whoami", sign(env.rsaKey, c, nil), nil, "")
		Expect(status).To(Equal(http.StatusForbidden))
		Expect(problemReason(body)).To(Equal("no_tenant"))
	})

	Describe("identity headers", func() {
		spoofs := map[string]map[string][]string{
			"canonical":        {"X-Tenant-ID": {"globex"}},
			"duplicated":       {"X-Tenant-ID": {"globex", "initech"}},
			"comma-joined":     {"X-Tenant-ID": {"globex, initech"}},
			"lower-case":       {"x-tenant-id": {"globex"}},
			"user and roles":   {"X-User-ID": {"root"}, "X-User-Roles": {"hedging:admin"}},
			"forged assertion": {"X-Tenant-Assertion": {"eyJhbGciOiJub25lIn0.e30."}},
			"connection token": {"Connection": {"X-Tenant-ID, X-Tenant-Assertion"}},
			"request id":       {"X-Request-ID": {"attacker-chosen"}},
			"forwarded uri":    {"X-Forwarded-Uri": {"/public/x"}, "X-Original-URL": {"/public/x"}},
		}
		for name, hdrs := range spoofs {
			It("never lets a spoofed "+name+" header reach the upstream", func() {
				status, got := echoThrough(env.echoURL+"/echo/x", env.token("acme"), hdrs)
				Expect(status).To(Equal(http.StatusOK))
				Expect(got.Header.Values("X-Tenant-Id")).To(Equal([]string{"acme"}))
				Expect(got.Header.Values("X-User-Id")).To(Equal([]string{"user-acme"}))
				Expect(got.Header.Values("X-Tenant-Assertion")).To(HaveLen(1))
				Expect(got.Header.Get("X-Tenant-Assertion")).NotTo(Equal("eyJhbGciOiJub25lIn0.e30."))
				Expect(got.Header.Values("X-Request-Id")).To(HaveLen(1))
				Expect(got.Header.Get("X-Request-Id")).NotTo(Equal("attacker-chosen"))
				Expect(got.Header.Get("Authorization")).To(BeEmpty(), "the end user's token is not forwarded")
			})
		}

		It("strips identity headers on public routes and sets none", func() {
			status, got := echoThrough(env.echoURL+"/public/x", "", map[string][]string{
				"X-Tenant-ID": {"globex"}, "X-User-ID": {"root"}, "X-User-Roles": {"admin"},
				"X-Tenant-Assertion": {"forged"},
			})
			Expect(status).To(Equal(http.StatusOK))
			for _, h := range []string{"X-Tenant-Id", "X-User-Id", "X-User-Roles", "X-Tenant-Assertion"} {
				Expect(got.Header.Values(h)).To(BeEmpty(), h)
			}
		})

		It("does not let X_Tenant_ID or X.Tenant.ID look-alikes through", func() {
			// Sent on a raw connection: Go's client would not send these names as-is.
			for _, name := range []string{"X_Tenant_ID", "X.Tenant.ID", "x_tenant_id"} {
				resp := rawRequest(env.echoURL, "GET /public/x HTTP/1.1\r\nHost: t\r\n"+name+": globex\r\nConnection: close\r\n\r\n")
				Expect(resp).To(HavePrefix("HTTP/1.1 200"))
				Expect(resp).To(ContainSubstring(`"Path":"/public/x"`), "the echo upstream answered")
				lower := strings.ToLower(resp)
				Expect(lower).NotTo(ContainSubstring("globex"), name)
			}
		})
	})

	Describe("the backend", func() {
		It("answers 401 to a direct call carrying X-Tenant-ID", func() {
			status, _, body := do(http.MethodGet, env.backendURL+"/api/v1/whoami", "", map[string][]string{
				"X-Tenant-ID": {"acme"}, "X-User-ID": {"alice"},
			}, "")
			Expect(status).To(Equal(http.StatusUnauthorized))
			Expect(string(body)).NotTo(ContainSubstring("acme"))
		})

		It("answers 401 to an assertion replayed on another path", func() {
			status, got := echoThrough(env.echoURL+"/echo/api/v1/whoami", env.token("acme"), nil)
			Expect(status).To(Equal(http.StatusOK))
			stolen := got.Header.Get("X-Tenant-Assertion")
			Expect(stolen).NotTo(BeEmpty())
			// Issued for GET /echo/api/v1/whoami, replayed on GET /api/v1/whoami.
			status, _, _ = do(http.MethodGet, env.backendURL+"/api/v1/whoami", "", map[string][]string{
				"X-Tenant-Assertion": {stolen},
			}, "")
			Expect(status).To(Equal(http.StatusUnauthorized))
		})
	})

	Describe("keys", Ordered, func() {
		It("answers 503 keys_unavailable while an issuer's JWKS is down since start, then 200 once it is up, without reload", func() {
			c := env.baseClaims("acme")
			c["iss"] = issuerLate
			tok := sign(env.lateKey, c, nil)
			status, h, body := do(http.MethodGet, env.gateURL+"/api/v1/late-issuer", tok, nil, "")
			Expect(status).To(Equal(http.StatusServiceUnavailable))
			Expect(problemReason(body)).To(Equal("keys_unavailable"))
			Expect(h.Get("Retry-After")).NotTo(BeEmpty())

			env.lateJWKS.down.Store(false)
			// The backend has no /api/v1/late-issuer route: 404 from it proves the gate let us through.
			Eventually(func() int {
				s, _, _ := do(http.MethodGet, env.gateURL+"/api/v1/late-issuer", tok, nil, "")
				return s
			}, 30*time.Second, 250*time.Millisecond).Should(Equal(http.StatusNotFound))
		})

		It("keeps the last good keys when a refresh fails", func() {
			env.jwks.down.Store(true)
			defer env.jwks.down.Store(false)
			status, _, _ := do(http.MethodGet, env.gateURL+"/api/v1/whoami", env.token("acme"), nil, "")
			Expect(status).To(Equal(http.StatusOK))
		})

		It("picks up a new kid, and 40 unknown-kid tokens cause at most 2 fetches", func() {
			env.jwks.add(env.rotatedKey.public())
			tok := sign(env.rotatedKey, env.baseClaims("acme"), nil)
			Eventually(func() int {
				s, _, _ := do(http.MethodGet, env.gateURL+"/api/v1/whoami", tok, nil, "")
				return s
			}, 40*time.Second, time.Second).Should(Equal(http.StatusOK))

			unknown := newKey(jwa.ES256, "never-published")
			before := env.jwks.hits.Load()
			var wg sync.WaitGroup
			statuses := make([]int, 40)
			for i := range statuses {
				wg.Add(1)
				go func() {
					defer GinkgoRecover()
					defer wg.Done()
					statuses[i], _, _ = do(http.MethodGet, env.gateURL+"/api/v1/whoami", sign(unknown, env.baseClaims("acme"), nil), nil, "")
				}()
			}
			wg.Wait()
			for _, s := range statuses {
				// 401 after a fetch made for the kid, or 503 Retry-After while
				// the refetch gap holds (the rotation just fetched).
				Expect(s).To(BeElementOf(http.StatusUnauthorized, http.StatusServiceUnavailable))
			}
			Expect(env.jwks.hits.Load() - before).To(BeNumerically("<=", 2))
		})
	})
})
