package integration_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// revocationSite is a gate in front of the echo server with the suite's
// issuers and extra tenant_gate lines (shared_store ...).
func revocationSite(addr, extra string) string {
	echo := strings.TrimPrefix(env.echo.URL, "http://")
	return fmt.Sprintf(`
http://%s {
	bind 127.0.0.1
	tenant_gate {
%%[1]s
		%s
		rule GET /public/** public
		rule *   /rv/**     authenticated
	}
	reverse_proxy %s
}
`, addr, extra, echo)
}

type revocationGate struct {
	*caddyProc
	url string
}

func startRevocationGate(name, extra string) revocationGate {
	addr := freeAddr()
	url := "http://" + addr
	p := env.startCaddy(name, revocationSite(addr, extra), url+"/public/ready")
	DeferCleanup(p.stop)
	return revocationGate{p, url}
}

// adminRevoke POSTs body to the gate's /tenant-gate/revocations.
func adminRevoke(adminURL, body string) (int, map[string]any) {
	resp, err := http.Post(adminURL+"/tenant-gate/revocations", "application/json", strings.NewReader(body))
	Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	if out == nil {
		out = map[string]any{"raw": string(raw)}
	}
	return resp.StatusCode, out
}

func adminList(adminURL string) []map[string]any {
	resp, err := http.Get(adminURL + "/tenant-gate/revocations")
	Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	Expect(resp.StatusCode).To(Equal(http.StatusOK))
	var out []map[string]any
	Expect(json.NewDecoder(resp.Body).Decode(&out)).To(Succeed())
	return out
}

// tokenWith is a main-issuer token for tenant with some claims changed.
func tokenWith(tenant string, change func(claims)) string {
	c := env.baseClaims(tenant)
	c["jti"] = "rv-" + randomHex(8)
	if change != nil {
		change(c)
	}
	return sign(env.rsaKey, c, nil)
}

// nextSecond waits until iat of a new token is after now.
func nextSecond() {
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second + 20*time.Millisecond)))
}

func expectRevoked(g revocationGate, tok string) {
	r := rlDo("GET", g.url+"/rv/x", tok)
	Expect(r.status).To(Equal(http.StatusUnauthorized), string(r.body))
	Expect(problemReason(r.body)).To(Equal("token_revoked"))
	Expect(r.header.Values("WWW-Authenticate")[0]).To(ContainSubstring(`Bearer realm="tenantgate", error="invalid_token"`))
	rec := expectOneRecord(g.caddyProc, r)
	Expect(rec.Reason).To(Equal("token_revoked"))
	Expect(rec.Decision).To(Equal("deny"))
	Expect(rec.UpstreamStatus).To(Equal(0))
}

func expectAllowed(g revocationGate, tok string) {
	r := rlDo("GET", g.url+"/rv/x", tok)
	Expect(r.status).To(Equal(http.StatusOK), string(r.body))
}

var _ = Describe("revocation, one gate", Ordered, func() {
	var g revocationGate
	BeforeAll(func() {
		g = startRevocationGate("revocation-local", "")
	})

	It("refuses a token revoked by jti at the admin API, also when it is a cache hit, and audits who revoked it", func() {
		tok := tokenWith("rv-acme", nil)
		expectAllowed(g, tok)
		expectAllowed(g, tok) // now in the verified-token cache
		var c claims
		Expect(json.Unmarshal(mustPayload(tok), &c)).To(Succeed())
		status, body := adminRevoke(g.adminURL, fmt.Sprintf(`{"jti":%q,"reason":"laptop stolen"}`, c["jti"]))
		Expect(status).To(Equal(http.StatusCreated), fmt.Sprint(body))
		Expect(body["kind"]).To(Equal("jti"))
		Expect(body["jti"]).To(Equal(c["jti"]))
		Expect(body["source"]).To(Equal("admin_api"))
		Expect(body["expires"]).NotTo(BeEmpty())
		expectRevoked(g, tok)
		expectAllowed(g, tokenWith("rv-acme", nil))

		// The audit trail names the revocation and where it came from.
		Eventually(func() string { raw, _ := os.ReadFile(g.auditPath); return string(raw) }, 5*time.Second).Should(
			And(ContainSubstring(`"msg":"revocation"`), ContainSubstring(`"remote_ip":"127.0.0.1"`),
				ContainSubstring(`"revocation_reason":"laptop stolen"`), ContainSubstring(fmt.Sprintf(`"jti":%q`, c["jti"]))))
		Expect(slices.ContainsFunc(adminList(g.adminURL), func(e map[string]any) bool { return e["jti"] == c["jti"] })).To(BeTrue())
		m := scrape(g.adminURL)
		Expect(m.sum("tenantgate_revocations", map[string]string{"kind": "jti"})).To(BeNumerically(">=", 1))
		Expect(requestsDelta(metricFamilies{}, m, map[string]string{"reason": "token_revoked"})).To(BeNumerically(">=", 1))
	})

	It("refuses a subject's tokens issued before the revocation, and accepts the ones issued after", func() {
		old := tokenWith("rv-globex", func(c claims) { c["sub"] = "rv-sub-1" })
		other := tokenWith("rv-globex", func(c claims) { c["sub"] = "rv-sub-2" })
		expectAllowed(g, old)
		status, body := adminRevoke(g.adminURL, `{"sub":"rv-sub-1","iss":"`+issuerMain+`"}`)
		Expect(status).To(Equal(http.StatusCreated), fmt.Sprint(body))
		expectRevoked(g, old)
		expectAllowed(g, other)
		nextSecond()
		expectAllowed(g, tokenWith("rv-globex", func(c claims) { c["sub"] = "rv-sub-1" }))
		// Narrowed by iss: the same subject at another issuer is untouched.
		Expect(rlDo("GET", g.url+"/rv/x", signHMAC(env.hmacSecret, hmacClaims("rv-globex", "rv-sub-1"))).status).To(Equal(http.StatusOK))
	})

	It("revokes a tenant with `caddy tenant-gate revoke`", func() {
		old := tokenWith("rv-initech", nil)
		expectAllowed(g, old)
		out, err := exec.Command(filepath.Join(env.binDir, "caddy"), "tenant-gate", "revoke", "--tenant", "rv-initech",
			"--reason", "incident 42", "--address", strings.TrimPrefix(g.adminURL, "http://")).CombinedOutput()
		Expect(err).NotTo(HaveOccurred(), string(out))
		Expect(string(out)).To(ContainSubstring(`"tenant":"rv-initech"`))
		expectRevoked(g, old)
		expectAllowed(g, tokenWith("rv-hooli", nil))
		nextSecond()
		expectAllowed(g, tokenWith("rv-initech", nil))

		out, err = exec.Command(filepath.Join(env.binDir, "caddy"), "tenant-gate", "revoke", "--tenant", "a", "--sub", "b",
			"--address", strings.TrimPrefix(g.adminURL, "http://")).CombinedOutput()
		Expect(err).To(HaveOccurred())
		Expect(string(out)).To(ContainSubstring("exactly one of --jti, --sub, --tenant or --sid"))
	})

	It("answers bad bodies with 400 and a clear message, storing nothing", func() {
		before := len(adminList(g.adminURL))
		for body, want := range map[string]string{
			`{"jti":"a","bogus":1}`:                        `unknown field`,
			`{"reason":"x"}`:                               `one of`,
			`{"jti":"a","sub":"b"}`:                        `not several`,
			`{"tenant":"acme corp"}`:                       `tenant`,
			`{"tenant":"` + strings.Repeat("t", 65) + `"}`: `tenant`,
			`{"sub":"s","before":"` + time.Now().Add(time.Hour).UTC().Format(time.RFC3339) + `"}`: `in the future`,
			`{"jti":"` + strings.Repeat("j", 1<<20) + `"}`:                                        `larger than`,
			`not json`: `not a revocation object`,
		} {
			status, resp := adminRevoke(g.adminURL, body)
			Expect(status).To(Equal(http.StatusBadRequest), body[:min(len(body), 60)])
			Expect(fmt.Sprint(resp["error"])).To(ContainSubstring(want))
		}
		Expect(adminList(g.adminURL)).To(HaveLen(before))
	})
})

// mustPayload decodes a compact JWS's payload.
func mustPayload(tok string) []byte {
	parts := strings.Split(tok, ".")
	Expect(parts).To(HaveLen(3))
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	Expect(err).NotTo(HaveOccurred())
	return raw
}

// hmacClaims are claims of the HMAC issuer with subject sub.
func hmacClaims(tenant, sub string) claims {
	c := env.baseClaims(tenant)
	c["iss"], c["sub"] = issuerHMAC, sub
	return c
}
