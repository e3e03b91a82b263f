package integration_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// endpoint is one of the 11 ensemble and hedging endpoints with the role
// the shipped Caddyfile asks for and a request body that succeeds.
type endpoint struct {
	method, path string // {E} is replaced with an ensemble id
	role         string
	body         func(f *fixture) string
	idempotent   bool // needs an Idempotency-Key
}

type fixture struct {
	ensembleID, predictionID string
}

var endpoints = []endpoint{
	{method: "POST", path: "/api/v1/ensemble/create", role: "ensemble:write", body: func(*fixture) string {
		return `{"name":"e","method":"majority","agents":[{"agent_id":"a1","agent_type":"t","initial_weight":1}]}`
	}},
	{method: "POST", path: "/api/v1/ensemble/{E}/register-agent", role: "ensemble:write", body: func(*fixture) string {
		return fmt.Sprintf(`{"agent_id":"r-%s","agent_type":"t","initial_weight":0.5}`, randomHex(4))
	}},
	{method: "POST", path: "/api/v1/ensemble/{E}/predict", role: "ensemble:read", body: func(*fixture) string {
		return `{"symbol":"BTC-USD","signals":[{"agent_id":"a1","signal":0.5,"confidence":0.9},{"agent_id":"a2","signal":0.1,"confidence":0.5}]}`
	}},
	{method: "POST", path: "/api/v1/ensemble/{E}/outcomes", role: "ensemble:write", body: func(f *fixture) string {
		return fmt.Sprintf(`{"prediction_id":%q,"realized_return":0.01}`, f.predictionID)
	}},
	{method: "GET", path: "/api/v1/ensemble/{E}/performance", role: "ensemble:read"},
	{method: "GET", path: "/api/v1/ensemble/{E}/weights", role: "ensemble:read"},
	{method: "POST", path: "/api/v1/ensemble/{E}/optimize-weights", role: "ensemble:write", body: func(*fixture) string { return `{"lookback":10}` }},
	{method: "GET", path: "/api/v1/ensemble/", role: "ensemble:read"},
	{method: "GET", path: "/api/v1/ensemble/agent-rankings", role: "ensemble:read"},
	{method: "GET", path: "/api/v1/hedging/analysis", role: "hedging:read"},
	{method: "POST", path: "/api/v1/hedging/execute", role: "hedging:trade", idempotent: true, body: func(*fixture) string { return `{}` }},
	{method: "POST", path: "/api/v1/hedging/close", role: "hedging:admin", body: func(*fixture) string { return `{}` }},
}

func (ep endpoint) url(base string, f *fixture) string {
	return base + strings.ReplaceAll(ep.path, "{E}", f.ensembleID)
}

func (ep endpoint) send(base string, f *fixture, token string) (int, http.Header, []byte) {
	body := ""
	if ep.body != nil {
		body = ep.body(f)
	}
	var h map[string][]string
	if ep.idempotent {
		h = map[string][]string{"Idempotency-Key": {"k-" + randomHex(8)}}
	}
	return do(ep.method, ep.url(base, f), token, h, body)
}

// newFixture creates, through the gate, an ensemble with agents a1 and a2
// and one prediction for tenant.
func newFixture(tenant string) *fixture {
	tok := env.token(tenant, "ensemble:write", "ensemble:read")
	status, _, body := do("POST", env.gateURL+"/api/v1/ensemble/create", tok, nil,
		`{"name":"fixture","method":"weighted_average","agents":[{"agent_id":"a1","agent_type":"t","initial_weight":1},{"agent_id":"a2","agent_type":"t","initial_weight":1}]}`)
	Expect(status).To(Equal(http.StatusCreated), string(body))
	var f fixture
	var created struct {
		EnsembleID string `json:"ensemble_id"`
	}
	Expect(json.Unmarshal(body, &created)).To(Succeed())
	f.ensembleID = created.EnsembleID
	status, _, body = do("POST", env.gateURL+"/api/v1/ensemble/"+f.ensembleID+"/predict", tok, nil,
		`{"symbol":"BTC-USD","signals":[{"agent_id":"a1","signal":0.5,"confidence":0.9},{"agent_id":"a2","signal":0.1,"confidence":0.5}]}`)
	Expect(status).To(BeNumerically("<", 300), string(body))
	var p struct {
		PredictionID string `json:"prediction_id"`
	}
	Expect(json.Unmarshal(body, &p)).To(Succeed())
	f.predictionID = p.PredictionID
	return &f
}

func isGateDenial(h http.Header, body []byte) bool {
	return h.Get("Content-Type") == "application/problem+json" && problemReason(body) != ""
}

var _ = Describe("route rules on the 11 endpoints", Ordered, func() {
	var acme *fixture
	BeforeAll(func() { acme = newFixture("acme") })

	for _, ep := range endpoints {
		name := ep.method + " " + ep.path
		It(name+": no token → 401 missing_token", func() {
			status, h, body := ep.send(env.gateURL, acme, "")
			Expect(status).To(Equal(http.StatusUnauthorized))
			Expect(problemReason(body)).To(Equal("missing_token"))
			Expect(h.Get("WWW-Authenticate")).To(HavePrefix("Bearer"))
		})
		It(name+": valid token without the role → 403 missing_role", func() {
			status, _, body := ep.send(env.gateURL, acme, env.token("acme", "ensemble:nothing"))
			Expect(status).To(Equal(http.StatusForbidden))
			Expect(problemReason(body)).To(Equal("missing_role"))
		})
		It(name+": a method no rule names → 403 no_route", func() {
			status, _, body := do(http.MethodDelete, ep.url(env.gateURL, acme), env.token("acme", ep.role, "hedging:admin"), nil, "")
			Expect(status).To(Equal(http.StatusForbidden))
			Expect(problemReason(body)).To(Equal("no_route"))
		})
		It(name+": own tenant with the role → reaches the backend and succeeds", func() {
			status, h, body := ep.send(env.gateURL, acme, env.token("acme", ep.role))
			Expect(isGateDenial(h, body)).To(BeFalse(), string(body))
			Expect(status).To(BeNumerically("<", 300), string(body))
		})
		if strings.Contains(ep.path, "{E}") {
			It(name+": another tenant with every role gets 404 for acme's ensemble", func() {
				status, _, body := ep.send(env.gateURL, acme, env.token("globex", "ensemble:read", "ensemble:write"))
				Expect(status).To(Equal(http.StatusNotFound), string(body))
			})
		}
	}

	It("denies a path no rule covers, whatever the token", func() {
		status, _, body := do("GET", env.gateURL+"/api/v1/admin/debug", env.token("acme", "hedging:admin", "ensemble:write"), nil, "")
		Expect(status).To(Equal(http.StatusForbidden))
		Expect(problemReason(body)).To(Equal("no_route"))
	})

	It("lets HEAD through a GET rule", func() {
		status, _, _ := do("HEAD", env.gateURL+"/api/v1/whoami", env.token("acme"), nil, "")
		Expect(status).NotTo(Equal(http.StatusForbidden))
	})

	It("refuses the case and trailing-slash variants of a rule's path", func() {
		for _, p := range []string{"/API/V1/hedging/analysis", "/api/v1/hedging/analysis/", "/api/v1/ensemble"} {
			status, _, body := do("GET", env.gateURL+p, env.token("acme", "hedging:read", "ensemble:read"), nil, "")
			Expect(status).To(Equal(http.StatusForbidden), p)
			Expect(problemReason(body)).To(Equal("no_route"), p)
		}
	})
})

var _ = Describe("tenant_param", func() {
	It("passes the caller's own tenant in the path", func() {
		status, got := echoThrough(env.echoURL+"/tenants/acme/orders", env.token("acme"), nil)
		Expect(status).To(Equal(http.StatusOK))
		Expect(got.Path).To(Equal("/tenants/acme/orders"))
	})
	It("denies another tenant in the path with 403 tenant_mismatch", func() {
		status, _, body := do("GET", env.echoURL+"/tenants/globex/orders", env.token("acme"), nil, "")
		Expect(status).To(Equal(http.StatusForbidden))
		Expect(problemReason(body)).To(Equal("tenant_mismatch"))
	})
})

var _ = Describe("mode report", func() {
	type shadow struct {
		method, path, token string
		reason              string
	}
	DescribeTable("lets a denied request through and records would_deny",
		func(mk func() shadow) {
			s := mk()
			status, h, body := do(s.method, env.reportURL+s.path, s.token, nil, "")
			Expect(isGateDenial(h, body)).To(BeFalse(), "the gate itself answered %d %s", status, body)
			rec := auditFor(env.auditPath, h.Get("X-Request-ID"))
			Expect(rec.Decision).To(Equal("would_deny"))
			Expect(rec.Reason).To(Equal(s.reason))
			Expect(rec.Status).To(Equal(status))
		},
		Entry("no token", func() shadow { return shadow{"GET", "/api/v1/hedging/analysis", "", "missing_token"} }),
		Entry("missing role", func() shadow {
			return shadow{"GET", "/api/v1/hedging/analysis", env.token("acme", "ensemble:read"), "missing_role"}
		}),
		Entry("no rule", func() shadow { return shadow{"GET", "/api/v1/whoami/extra", env.token("acme"), "no_route"} }),
		Entry("bad signature", func() shadow {
			return shadow{"GET", "/api/v1/whoami", sign(env.attackerKey, env.baseClaims("acme"), nil), "bad_signature"}
		}),
	)

	It("sets the identity only when the token itself was valid", func() {
		status, _, body := do("GET", env.reportURL+"/api/v1/whoami", sign(env.attackerKey, env.baseClaims("acme"), nil), nil, "")
		Expect(status).To(Equal(http.StatusUnauthorized), "the backend refuses: no assertion was set")
		Expect(string(body)).NotTo(ContainSubstring("acme"))

		// A valid token missing the role still gets its identity: the backend answers for acme.
		status, _, body = do("GET", env.reportURL+"/api/v1/whoami", env.token("acme", "hedging:read"), nil, "")
		Expect(status).To(Equal(http.StatusOK), string(body))
		Expect(string(body)).To(ContainSubstring(`"tenant_id":"acme"`))

		// Report mode lets a would_deny request through, but the backend
		// checks the route's roles itself (defence in depth): 403 missing_role
		// from the backend, for acme, with nothing served.
		status, _, body = do("GET", env.reportURL+"/api/v1/ensemble/", env.token("acme", "hedging:read"), nil, "")
		Expect(status).To(Equal(http.StatusForbidden), string(body))
		Expect(string(body)).To(ContainSubstring("missing_role"))
	})

	It("still refuses non-canonical paths with 400 bad_path", func() {
		resp := rawRequest(env.reportURL, "GET /api/v1/../v1/whoami HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
		Expect(resp).To(HavePrefix("HTTP/1.1 400"))
		Expect(resp).To(ContainSubstring("bad_path"))
	})
})
