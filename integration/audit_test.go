package integration_test

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

const issuerDownJWKS = "https://down.test" // its JWKS URL never answers

// auditFieldSet is the documented field set every record carries.
var auditFieldSet = []string{"ts", "request_id", "tenant_id", "user_id", "issuer", "token_id", "method",
	"path", "route", "decision", "reason", "status", "upstream_status", "duration_ms", "remote_ip"}

// readAudit parses every line of an audit file; each must be a JSON object
// with the documented fields.
func readAuditStrict(path string) []auditEntry {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	Expect(err).NotTo(HaveOccurred())
	defer f.Close()
	var out []auditEntry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var raw map[string]any
		Expect(json.Unmarshal(sc.Bytes(), &raw)).To(Succeed(), sc.Text())
		for _, k := range auditFieldSet {
			Expect(raw).To(HaveKey(k), sc.Text())
		}
		var r auditEntry
		Expect(json.Unmarshal(sc.Bytes(), &r)).To(Succeed())
		out = append(out, r)
	}
	Expect(sc.Err()).NotTo(HaveOccurred())
	return out
}

// entriesByClientID returns the records whose client_request_id starts
// with prefix, keyed by client_request_id.
func entriesByClientID(path, prefix string) map[string][]auditEntry {
	out := map[string][]auditEntry{}
	for _, r := range readAuditStrict(path) {
		if strings.HasPrefix(r.ClientRequestID, prefix) {
			out[r.ClientRequestID] = append(out[r.ClientRequestID], r)
		}
	}
	return out
}

// slowStreamHandler answers 200 and then streams a line every 50 ms for 10 s, so
// a client can hang up mid-body.
func slowStreamHandler(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	for i := 0; i < 200; i++ {
		if _, err := fmt.Fprintf(w, "data: chunk %d\n\n", i); err != nil {
			return
		}
		http.NewResponseController(w).Flush()
		select {
		case <-r.Context().Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// auditSpecSites is a gate in front of the echo server (and a slow streaming
// upstream under /slow/), with an extra issuer whose JWKS is down, and a
// gate in front of the real backend. %%[1]s stays for startCaddy's issuers.
func auditSpecSites(echoAddr, backendAddr, echoUp, slowUp, deadJWKS string) string {
	return fmt.Sprintf(`
http://%s {
	tenant_gate {
%%[1]s
		issuer %s {
			jwks_url %s
			audience %s
		}
		rule GET      /public/**           public
		rule *        /tenants/{tenant}/** tenant_param tenant
		rule GET,POST /admin/**            roles admin
		rule GET      /slow/**             authenticated
		rule *        /echo/**             authenticated
	}
	handle /slow/* {
		reverse_proxy %s
	}
	handle {
		reverse_proxy %s
	}
}

http://%s {
	tenant_gate {
%%[1]s
		rule GET /healthz        public
		rule GET /api/v1/whoami  authenticated
	}
	reverse_proxy %s
}
`, echoAddr, issuerDownJWKS, deadJWKS, audience, slowUp, echoUp,
		backendAddr, strings.TrimPrefix(env.backendURL, "http://"))
}

// auditMixCase is one kind of request of the audit mix and what its record must say.
type auditMixCase struct {
	name, method, path string
	token              func() string
	status             int
	decision, reason   string
	upstream           int
	tenant             string
}

var _ = Describe("audit trail", Ordered, func() {
	var (
		gate                    *caddyProc
		echoURL, backendGateURL string
		slow                    *httptest.Server
	)

	BeforeAll(func() {
		slow = httptest.NewServer(http.HandlerFunc(slowStreamHandler))
		DeferCleanup(slow.Close)
		echoAddr, backendAddr := freeAddr(), freeAddr()
		echoURL, backendGateURL = "http://"+echoAddr, "http://"+backendAddr
		gate = env.startCaddy("audit", auditSpecSites(echoAddr, backendAddr,
			strings.TrimPrefix(env.echo.URL, "http://"), strings.TrimPrefix(slow.URL, "http://"),
			"http://"+freeAddr()+"/jwks.json"), echoURL+"/public/ready")
		DeferCleanup(gate.stop)
		env.waitHTTP(backendGateURL + "/healthz")
	})

	tok := func(mutate func(c claims)) func() string {
		return func() string {
			c := env.baseClaims("acme", "reader")
			if mutate != nil {
				mutate(c)
			}
			return sign(env.rsaKey, c, nil)
		}
	}
	noToken := func() string { return "" }

	mix := []auditMixCase{
		{name: "allow", method: "GET", path: "/echo/x", token: tok(nil), status: 200, decision: "allow", reason: "ok", upstream: 200, tenant: "acme"},
		{name: "allow_tenant_path", method: "POST", path: "/tenants/acme/orders", token: tok(nil), status: 200, decision: "allow", reason: "ok", upstream: 200, tenant: "acme"},
		{name: "upstream_500", method: "GET", path: "/echo/x?status=500", token: tok(nil), status: 500, decision: "allow", reason: "ok", upstream: 500, tenant: "acme"},
		{name: "public", method: "GET", path: "/public/x", token: noToken, status: 200, decision: "public", reason: "public", upstream: 200},
		{name: "missing_token", method: "GET", path: "/echo/x", token: noToken, status: 401, decision: "deny", reason: "missing_token"},
		{name: "bad_signature", method: "GET", path: "/echo/x", token: func() string { return sign(env.attackerKey, env.baseClaims("acme"), nil) },
			status: 401, decision: "deny", reason: "bad_signature"},
		{name: "token_expired", method: "GET", path: "/echo/x", token: tok(func(c claims) {
			past := time.Now().Add(-time.Hour).Unix()
			c["iat"], c["nbf"], c["exp"] = past-60, past-60, past
		}), status: 401, decision: "deny", reason: "token_expired"},
		{name: "wrong_audience", method: "GET", path: "/echo/x", token: tok(func(c claims) { c["aud"] = "someone-else" }),
			status: 401, decision: "deny", reason: "wrong_audience"},
		{name: "unknown_issuer", method: "GET", path: "/echo/x", token: tok(func(c claims) { c["iss"] = "https://evil.test" }),
			status: 401, decision: "deny", reason: "unknown_issuer"},
		{name: "no_tenant", method: "GET", path: "/echo/x", token: tok(func(c claims) { delete(c, "tenant_id") }),
			status: 403, decision: "deny", reason: "no_tenant"},
		{name: "missing_role", method: "GET", path: "/admin/x", token: tok(nil), status: 403, decision: "deny", reason: "missing_role", tenant: "acme"},
		{name: "tenant_mismatch", method: "GET", path: "/tenants/globex/orders", token: tok(nil), status: 403, decision: "deny", reason: "tenant_mismatch", tenant: "acme"},
		{name: "no_route", method: "DELETE", path: "/nowhere", token: tok(nil), status: 403, decision: "deny", reason: "no_route"},
		{name: "bad_path", method: "GET", path: "/echo/a/%2e%2e/x", token: tok(nil), status: 400, decision: "deny", reason: "bad_path"},
		{name: "keys_unavailable", method: "GET", path: "/echo/x", token: tok(func(c claims) { c["iss"] = issuerDownJWKS }),
			status: 503, decision: "deny", reason: "keys_unavailable"},
	}

	It("writes exactly one record per request, with the decision, reason and statuses the client saw", func() {
		before := len(readAuditStrict(gate.auditPath)) // the readiness probes of BeforeAll
		const copies = 4                               // every case 4 times, all concurrently: 60 requests
		type sent struct {
			c      auditMixCase
			status int
			respID string
		}
		results := make(map[string]*sent)
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, c := range mix {
			for i := 0; i < copies; i++ {
				id := fmt.Sprintf("mix-%s-%d", c.name, i)
				token := c.token()
				wg.Add(1)
				go func() {
					defer GinkgoRecover()
					defer wg.Done()
					status, h, _ := do(c.method, echoURL+c.path, token, map[string][]string{"X-Request-ID": {id}}, "")
					mu.Lock()
					results[id] = &sent{c: c, status: status, respID: h.Get("X-Request-Id")}
					mu.Unlock()
				}()
			}
		}
		wg.Wait()
		n := len(mix) * copies
		Expect(results).To(HaveLen(n))

		var recs map[string][]auditEntry
		Eventually(func() int {
			recs = entriesByClientID(gate.auditPath, "mix-")
			return len(recs)
		}, 10*time.Second, 100*time.Millisecond).Should(Equal(n))
		Consistently(func() int { return len(readAuditStrict(gate.auditPath)) }, 300*time.Millisecond).Should(Equal(before+n),
			"exactly one record per request: nothing else in the file")

		requestIDs := map[string]bool{}
		for id, s := range results {
			Expect(recs[id]).To(HaveLen(1), id)
			r := recs[id][0]
			c := s.c
			Expect(s.status).To(Equal(c.status), id)
			Expect(r.Logger).To(Equal("http.handlers.tenant_gate.audit"))
			Expect(r.Decision).To(Equal(c.decision), id)
			Expect(r.Reason).To(Equal(c.reason), id)
			Expect(r.Status).To(Equal(c.status), id)
			Expect(r.UpstreamStatus).To(Equal(c.upstream), id)
			Expect(r.TenantID).To(Equal(c.tenant), id)
			Expect(r.Method).To(Equal(c.method), id)
			Expect(r.Path).To(Equal(strings.SplitN(c.path, "?", 2)[0]), "%s: the path, never the query", id)
			Expect(r.RemoteIP).To(Equal("127.0.0.1"), id)
			Expect(r.DurationMS).To(BeNumerically(">", 0), id)
			Expect(r.RequestID).NotTo(BeEmpty(), id)
			Expect(r.RequestID).To(Equal(s.respID), "%s: the client is told the record's request id", id)
			Expect(requestIDs).NotTo(HaveKey(r.RequestID), "request ids are unique")
			requestIDs[r.RequestID] = true
			if c.tenant != "" {
				Expect(r.UserID).To(Equal("user-acme"), id)
				Expect(r.Issuer).To(Equal(issuerMain), id)
				Expect(r.TokenID).To(HavePrefix("t-"), id)
			}
			if c.decision == "deny" {
				Expect(r.UpstreamStatus).To(BeZero(), "%s: a denied request never reaches the upstream", id)
			}
		}
	})

	It("still writes the record, with status 499, when the client hangs up mid-body", func() {
		req, err := http.NewRequest(http.MethodGet, echoURL+"/slow/stream", nil)
		Expect(err).NotTo(HaveOccurred())
		req.Header.Set("Authorization", "Bearer "+env.token("acme"))
		req.Header.Set("X-Request-ID", "abandon-1")
		resp, err := http.DefaultClient.Do(req)
		Expect(err).NotTo(HaveOccurred())
		Expect(resp.StatusCode).To(Equal(http.StatusOK))
		buf := make([]byte, 16)
		_, err = io.ReadFull(resp.Body, buf)
		Expect(err).NotTo(HaveOccurred())
		Expect(string(buf)).To(HavePrefix("data: chunk 0"))
		start := time.Now()
		Expect(resp.Body.Close()).To(Succeed()) // unread body: the connection is closed

		var recs map[string][]auditEntry
		Eventually(func() int {
			recs = entriesByClientID(gate.auditPath, "abandon-")
			return len(recs["abandon-1"])
		}, 8*time.Second, 50*time.Millisecond).Should(Equal(1))
		Expect(time.Since(start)).To(BeNumerically("<", 5*time.Second), "written when the client left, not when the stream ended")
		r := recs["abandon-1"][0]
		Expect(r.Decision).To(Equal("allow"))
		Expect(r.Status).To(Equal(499), "client closed request")
		Expect(r.UpstreamStatus).To(Equal(200), "what the upstream had answered")
		Expect(r.TenantID).To(Equal("acme"))

		// The gate keeps serving.
		status, _, _ := do(http.MethodGet, echoURL+"/public/after", "", nil, "")
		Expect(status).To(Equal(http.StatusOK))
	})

	It("carries one request id through the response, the problem body, the assertion's jti, the upstream and the backend log", func() {
		// Toward an upstream: X-Request-ID and the assertion's jti.
		status, h, body := do(http.MethodGet, echoURL+"/echo/rid", env.token("acme"), map[string][]string{"X-Request-ID": {"rid-echo"}}, "")
		Expect(status).To(Equal(http.StatusOK))
		var got echoed
		Expect(json.Unmarshal(body, &got)).To(Succeed())
		id := h.Get("X-Request-Id")
		Expect(h.Values("X-Request-Id")).To(HaveLen(1))
		Expect(got.Header.Values("X-Request-Id")).To(Equal([]string{id}))
		Expect(jwsPayload(got.Header.Get("X-Tenant-Assertion"))).To(HaveKeyWithValue("jti", id))

		// In a denial's problem+json body.
		status, h, body = do(http.MethodGet, echoURL+"/echo/rid", "", map[string][]string{"X-Request-ID": {"rid-deny"}}, "")
		Expect(status).To(Equal(http.StatusUnauthorized))
		var p struct {
			RequestID string `json:"request_id"`
		}
		Expect(json.Unmarshal(body, &p)).To(Succeed())
		Expect(p.RequestID).To(Equal(h.Get("X-Request-Id")))
		denyID := p.RequestID

		// Through the real backend, which logs it with the tenant.
		status, h, body = do(http.MethodGet, backendGateURL+"/api/v1/whoami", env.token("globex"), map[string][]string{"X-Request-ID": {"rid-backend"}}, "")
		Expect(status).To(Equal(http.StatusOK), string(body))
		var w whoami
		Expect(json.Unmarshal(body, &w)).To(Succeed())
		backendID := h.Get("X-Request-Id")
		Expect(h.Values("X-Request-Id")).To(HaveLen(1), "the backend's echo of the id is not added to the gate's")
		Expect(w.RequestID).To(Equal(backendID))

		var recs map[string][]auditEntry
		Eventually(func() int {
			recs = entriesByClientID(gate.auditPath, "rid-")
			return len(recs)
		}, 5*time.Second, 50*time.Millisecond).Should(Equal(3))
		Expect(recs["rid-echo"][0].RequestID).To(Equal(id))
		Expect(recs["rid-deny"][0].RequestID).To(Equal(denyID))
		Expect(recs["rid-backend"][0].RequestID).To(Equal(backendID))
		Expect(recs["rid-backend"][0].TenantID).To(Equal("globex"))

		Eventually(func() []map[string]any {
			return backendLogLines(backendID)
		}, 5*time.Second, 50*time.Millisecond).ShouldNot(BeEmpty())
		for _, line := range backendLogLines(backendID) {
			Expect(line).To(HaveKeyWithValue("tenant_id", "globex"))
		}
	})

	It("puts no token or assertion in any log", func() {
		// By now this gate has logged denials, upstream 500s and a stream
		// cut off mid-body (reverse_proxy's WARN carries the upstream
		// request's headers: the filter must have removed the assertion).
		b, err := os.ReadFile(gate.logPath)
		Expect(err).NotTo(HaveOccurred())
		Expect(string(b)).To(ContainSubstring("aborting with incomplete response"))
		for _, f := range []string{gate.auditPath, gate.logPath, filepath.Join(gate.dir, "stdout.log"), env.backendLog} {
			b, err := os.ReadFile(f)
			if os.IsNotExist(err) {
				continue
			}
			Expect(err).NotTo(HaveOccurred())
			Expect(string(b)).NotTo(ContainSubstring("eyJ"), f)
		}
		Expect(readAuditStrict(gate.auditPath)).NotTo(BeEmpty())
	})
})

// jwsPayload decodes the payload of a compact JWS without verifying
// it (the backend's tests verify it).
func jwsPayload(jws string) map[string]any {
	parts := strings.Split(jws, ".")
	Expect(parts).To(HaveLen(3))
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	Expect(err).NotTo(HaveOccurred())
	var c map[string]any
	Expect(json.Unmarshal(b, &c)).To(Succeed())
	return c
}

// backendLogLines returns the backend's JSON log lines with request_id id.
func backendLogLines(id string) []map[string]any {
	b, err := os.ReadFile(env.backendLog)
	Expect(err).NotTo(HaveOccurred())
	var out []map[string]any
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.Contains(line, id) {
			continue
		}
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["request_id"] == id {
			out = append(out, m)
		}
	}
	return out
}
