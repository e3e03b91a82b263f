package integration_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// realmIdP is a loopback IdP with one realm per tenant, Keycloak style:
// /realms/{r}/jwks and /realms/{r}/.well-known/openid-configuration. A
// realm it does not know answers 404. It counts requests per path.
type realmIdP struct {
	srv    *httptest.Server
	mu     sync.Mutex
	realms map[string]jwk.Key
	hits   map[string]int
	total  atomic.Int64
}

func newRealmIdP() *realmIdP {
	p := &realmIdP{realms: map[string]jwk.Key{}, hits: map[string]int{}}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.total.Add(1)
		parts := strings.SplitN(strings.TrimPrefix(r.URL.Path, "/realms/"), "/", 2)
		p.mu.Lock()
		p.hits[r.URL.Path]++
		key, ok := p.realms[parts[0]]
		p.mu.Unlock()
		if !ok || len(parts) < 2 {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		switch parts[1] {
		case "jwks":
			set := jwk.NewSet()
			_ = set.AddKey(key)
			_ = jsonEncode(w, set)
		case ".well-known/openid-configuration":
			_ = jsonEncode(w, map[string]string{"issuer": p.iss(parts[0]), "jwks_uri": p.iss(parts[0]) + "/jwks"})
		default:
			http.NotFound(w, r)
		}
	}))
	return p
}

func jsonEncode(w http.ResponseWriter, v any) error { return json.NewEncoder(w).Encode(v) }

func (p *realmIdP) iss(realm string) string { return p.srv.URL + "/realms/" + realm }
func (p *realmIdP) template() string        { return p.srv.URL + "/realms/{tenant}" }

func (p *realmIdP) add(realm string, key signingKey) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.realms[realm] = key.public()
}

func (p *realmIdP) hitsOf(path string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.hits[path]
}

// realmToken is a token of realm's issuer; the tenant comes from iss, so
// the tenant claim is left out unless over sets it.
func realmToken(p *realmIdP, realm string, key signingKey, over claims) string {
	c := env.baseClaims(realm)
	c["iss"] = p.iss(realm)
	delete(c, "tenant_id")
	for k, v := range over {
		c[k] = v
	}
	return sign(key, c, nil)
}

var _ = Describe("multi-tenant issuers", Ordered, func() {
	var (
		gate                         *caddyProc
		gateURL, pointerURL          string
		realms, anyIdP, lru, fileIdP *realmIdP
		keyA, keyB                   signingKey
		tenantsFile                  string
	)

	BeforeAll(func() {
		keyA, keyB = newKey(jwa.RS256, "shared"), newKey(jwa.RS256, "shared") // same kid, two realms
		realms, anyIdP, lru, fileIdP = newRealmIdP(), newRealmIdP(), newRealmIdP(), newRealmIdP()
		realms.add("acme", keyA)
		realms.add("globex", keyB)
		anyIdP.add("real", keyA)
		for _, r := range []string{"r1", "r2", "r3"} {
			lru.add(r, keyA)
		}
		fileIdP.add("alpha", keyA)
		fileIdP.add("beta", keyB)
		DeferCleanup(func() {
			for _, p := range []*realmIdP{realms, anyIdP, lru, fileIdP} {
				p.srv.Close()
			}
		})

		tenantsFile = filepath.Join(env.dir, "multitenant-tenants.txt")
		Expect(os.WriteFile(tenantsFile, []byte("# customers\nalpha\n"), 0o600)).To(Succeed())
		addr, pointerAddr := freeAddr(), freeAddr()
		gateURL, pointerURL = "http://"+addr, "http://"+pointerAddr
		echo := strings.TrimPrefix(env.echo.URL, "http://")
		gate = env.startCaddy("multitenant", fmt.Sprintf(`
http://%s {
	tenant_gate {
%%[1]s
		issuer %s {
			jwks_url %s/jwks
			audience %s
			tenants acme globex
		}
		issuer %s {
			jwks_url %s/jwks
			audience %s
			tenants *
			max_tenants 2
		}
		issuer %s {
			jwks_url %s/jwks
			audience %s
			tenants r1 r2 r3
			max_tenants 2
		}
		issuer %s {
			oidc_discovery
			audience %s
			tenants_file %s
		}
		rule GET /public/ready public
		rule *   /echo/**      authenticated
	}
	reverse_proxy %s
}

http://%s {
	tenant_gate {
%%[1]s
		tenant_claim /org/id
		roles_claim  /realm_access/roles
		rule GET /public/ready public
		rule GET /admin/**     roles admin
	}
	reverse_proxy %s
}
`, addr,
			realms.template(), realms.template(), audience,
			anyIdP.template(), anyIdP.template(), audience,
			lru.template(), lru.template(), audience,
			fileIdP.template(), audience, tenantsFile,
			echo, pointerAddr, echo), gateURL+"/public/ready")
		DeferCleanup(gate.stop)
	})

	echoed := func(token string) (int, string, http.Header) {
		status, h, body := do(http.MethodGet, gateURL+"/echo/whoami", token, nil, "")
		return status, problemReason(body), h
	}

	It("verifies each realm's token with that realm's keys, though their kids are equal", func() {
		for realm, key := range map[string]signingKey{"acme": keyA, "globex": keyB} {
			status, _, body := do(http.MethodGet, gateURL+"/echo/whoami", realmToken(realms, realm, key, nil), nil, "")
			Expect(status).To(Equal(http.StatusOK), string(body))
			Expect(string(body)).To(ContainSubstring(`"X-Tenant-Id":["` + realm + `"]`))
		}
		status, _, h := echoed(realmToken(realms, "globex", keyB, nil))
		Expect(status).To(Equal(http.StatusOK))
		rec := auditFor(gate.auditPath, h.Get("X-Request-ID"))
		Expect(rec.Issuer).To(Equal(realms.iss("globex")), "the audit record names the concrete iss")
		Expect(rec.TenantID).To(Equal("globex"))
	})

	It("refuses a token whose iss names realm B but which realm A's key signed", func() {
		status, reason, _ := echoed(realmToken(realms, "globex", keyA, nil))
		Expect(status).To(Equal(http.StatusUnauthorized))
		Expect(reason).To(Equal("bad_signature"))
	})

	It("refuses an unlisted tenant without fetching anything for it", func() {
		status, reason, _ := echoed(realmToken(realms, "initech", keyA, nil))
		Expect(status).To(Equal(http.StatusUnauthorized))
		Expect(reason).To(Equal("unknown_issuer"))
		Expect(realms.hitsOf("/realms/initech/jwks")).To(BeZero())
		Expect(realms.hitsOf("/realms/acme/jwks")).To(Equal(1), "acme's set was fetched once, on first use")
	})

	It("answers 403 tenant_mismatch when the tenant claim disagrees with the issuer's tenant", func() {
		status, reason, _ := echoed(realmToken(realms, "acme", keyA, claims{"tenant_id": "globex"}))
		Expect(status).To(Equal(http.StatusForbidden))
		Expect(reason).To(Equal("tenant_mismatch"))
		status, _, _ = echoed(realmToken(realms, "acme", keyA, claims{"tenant_id": "acme"}))
		Expect(status).To(Equal(http.StatusOK), "an agreeing claim passes")
	})

	It("bounds the fetches of a flood of 1,000 made-up tenants under tenants *", func() {
		status, _, _ := echoed(realmToken(anyIdP, "real", keyA, nil))
		Expect(status).To(Equal(http.StatusOK))
		fetchesBefore := anyIdP.total.Load()
		start := time.Now()
		var wg sync.WaitGroup
		var passed atomic.Int64
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func() {
				defer GinkgoRecover()
				defer wg.Done()
				for i := w; i < 1000; i += 8 {
					if s, _, _ := echoed(realmToken(anyIdP, fmt.Sprintf("made-up-%d", i), keyA, nil)); s == http.StatusOK {
						passed.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		elapsed := time.Since(start)
		fetches := anyIdP.total.Load() - fetchesBefore
		// README: at most 10 new tenants' fetches at once, then one per second.
		bound := int64(10 + elapsed/time.Second + 1)
		GinkgoWriter.Printf("1,000 made-up tenants: %d fetches in %s (bound %d)\n", fetches, elapsed.Round(time.Millisecond), bound)
		Expect(passed.Load()).To(BeZero())
		Expect(fetches).To(BeNumerically("<=", bound))

		f := scrape(gate.adminURL)
		Expect(f.sum("tenantgate_issuer_tenants", map[string]string{"issuer": anyIdP.template()})).To(Equal(1.0),
			"made-up tenants hold no key set; the real one stays")
		Expect(f.sum("tenantgate_jwks_keys", map[string]string{"issuer": anyIdP.template()})).To(Equal(1.0))
		for iss := range f.labelValues("tenantgate_jwks_keys", "issuer") {
			Expect(iss).NotTo(ContainSubstring("made-up"), "one series per issuer block, none per tenant")
		}

		// The real tenant kept its keys: no fetch, and it still passes.
		before := anyIdP.hitsOf("/realms/real/jwks")
		status, _, _ = echoed(realmToken(anyIdP, "real", keyA, nil))
		Expect(status).To(Equal(http.StatusOK))
		Expect(anyIdP.hitsOf("/realms/real/jwks")).To(Equal(before))

		// A made-up tenant that was fetched is remembered: repeats cost nothing.
		var fetched string
		for i := 0; i < 1000 && fetched == ""; i++ {
			if anyIdP.hitsOf(fmt.Sprintf("/realms/made-up-%d/jwks", i)) > 0 {
				fetched = fmt.Sprintf("made-up-%d", i)
			}
		}
		Expect(fetched).NotTo(BeEmpty())
		for i := 0; i < 5; i++ {
			status, reason, _ := echoed(realmToken(anyIdP, fetched, keyA, nil))
			Expect(status).To(Equal(http.StatusUnauthorized))
			Expect(reason).To(Equal("unknown_issuer"))
		}
		Expect(anyIdP.hitsOf("/realms/" + fetched + "/jwks")).To(Equal(1))
	})

	It("evicts the least recently used tenant past max_tenants; on return it passes at once with no fetch", func() {
		pass := func(r string) {
			status, reason, _ := echoed(realmToken(lru, r, keyA, nil))
			Expect(status).To(Equal(http.StatusOK), "%s: %s", r, reason)
		}
		pass("r1")
		pass("r2")
		pass("r1") // r2 is now the least recently used
		pass("r3") // evicts r2
		f := scrape(gate.adminURL)
		Expect(f.sum("tenantgate_issuer_tenants", map[string]string{"issuer": lru.template()})).To(Equal(2.0))
		Expect(f.sum("tenantgate_jwks_keys", map[string]string{"issuer": lru.template()})).To(Equal(2.0))
		Expect(lru.hitsOf("/realms/r2/jwks")).To(Equal(1))
		// r2's last keys stayed in the process's key store (idle), so it
		// passes at once, and costs no fetch: they are younger than
		// refresh_interval (tokens cycling through more tenants than
		// max_tenants cost nothing).
		pass("r2")
		Consistently(func() int { return lru.hitsOf("/realms/r2/jwks") }, 500*time.Millisecond, 50*time.Millisecond).Should(Equal(1),
			"the returning tenant was fetched")
		Expect(lru.hitsOf("/realms/r1/jwks")).To(Equal(1))
		Expect(scrape(gate.adminURL).sum("tenantgate_issuer_tenants", map[string]string{"issuer": lru.template()})).To(Equal(2.0))
	})

	It("picks up tenants_file edits without a reload", func() {
		status, _, _ := echoed(realmToken(fileIdP, "alpha", keyA, nil))
		Expect(status).To(Equal(http.StatusOK))
		status, reason, _ := echoed(realmToken(fileIdP, "beta", keyB, nil))
		Expect(status).To(Equal(http.StatusUnauthorized))
		Expect(reason).To(Equal("unknown_issuer"))
		Expect(fileIdP.hitsOf("/realms/beta/.well-known/openid-configuration")).To(BeZero())

		tmp := tenantsFile + ".new"
		Expect(os.WriteFile(tmp, []byte("beta\n"), 0o600)).To(Succeed())
		Expect(os.Rename(tmp, tenantsFile)).To(Succeed())
		Eventually(func() int {
			s, _, _ := echoed(realmToken(fileIdP, "beta", keyB, nil))
			return s
		}, 10*time.Second, 200*time.Millisecond).Should(Equal(http.StatusOK))
		status, reason, _ = echoed(realmToken(fileIdP, "alpha", keyA, nil))
		Expect(status).To(Equal(http.StatusUnauthorized), "alpha left the file")
		Expect(reason).To(Equal("unknown_issuer"))
	})

	It("reads tenant and roles through JSON pointers", func() {
		c := env.baseClaims("ignored", "user")
		delete(c, "tenant_id")
		delete(c, "roles")
		c["org"] = map[string]any{"id": "globex"}
		c["realm_access"] = map[string]any{"roles": []string{"admin", "viewer"}}
		status, _, body := do(http.MethodGet, pointerURL+"/admin/x", sign(env.rsaKey, c, nil), nil, "")
		Expect(status).To(Equal(http.StatusOK), string(body))
		Expect(string(body)).To(ContainSubstring(`"X-Tenant-Id":["globex"]`))
		Expect(string(body)).To(ContainSubstring(`"X-User-Roles":["admin,viewer"]`))

		c["realm_access"] = map[string]any{"roles": []string{"viewer"}}
		status, _, body = do(http.MethodGet, pointerURL+"/admin/x", sign(env.rsaKey, c, nil), nil, "")
		Expect(status).To(Equal(http.StatusForbidden))
		Expect(problemReason(body)).To(Equal("missing_role"))
	})
})

var _ = Describe("multi-tenant issuer config errors", func() {
	validate := func(files map[string]string) string {
		dir := GinkgoT().TempDir()
		for name, body := range files {
			Expect(os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600)).To(Succeed())
		}
		cmd := exec.Command(filepath.Join(env.binDir, "caddy"), "validate", "--config", filepath.Join(dir, "Caddyfile"), "--adapter", "caddyfile")
		cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
		out, err := cmd.CombinedOutput()
		Expect(err).To(HaveOccurred(), "caddy validate accepted:\n%s", out)
		// Caddy logs JSON lines: the messages, unescaped, are what users read.
		var msgs []string
		for _, line := range strings.Split(string(out), "\n") {
			var entry struct{ Msg string }
			if json.Unmarshal([]byte(line), &entry) == nil {
				msgs = append(msgs, entry.Msg)
			}
		}
		return strings.Join(msgs, "\n")
	}

	It("names the file and line of every problem, in imported files too", func() {
		out := validate(map[string]string{
			"Caddyfile": `http://127.0.0.1:1 {
	tenant_gate {
		assertion_key /nonexistent.pem
		import issuers.caddy
		issuer https://kc.example.com/realms/{tenant} {
			jwks_url https://kc.example.com/realms/{tenant}/certs
			tenants *
		}
		rule GET /x authenticated
	}
}
`,
			"issuers.caddy": `# imported
issuer https://login.example.com/{tenant}/{tenant}/v2.0 {
	oidc_discovery
	audience alphapulse-api
	tenants acme
}
issuer https://{tenant}.auth.example.com/ {
	jwks_url https://auth.example.com/{tenant}/jwks
	audience alphapulse-api
	tenants acme
}
`,
		})
		Expect(out).To(MatchRegexp(`\{tenant\} must stand exactly once in "https://login.example.com/\{tenant\}/\{tenant\}/v2.0" \(found 2\), at \S*issuers.caddy:2 import chain`))
		Expect(out).To(MatchRegexp(`\{tenant\} is in the host part of "https://\{tenant\}.auth.example.com/".*, at \S*issuers.caddy:7 import chain`))
		Expect(out).To(MatchRegexp(`tenants \* needs an audience.*, at \S*Caddyfile:5`))
	})

	It("refuses max_tenants below 1 at its line", func() {
		out := validate(map[string]string{"Caddyfile": `http://127.0.0.1:1 {
	tenant_gate {
		issuer https://kc.example.com/realms/{tenant} {
			jwks_url https://kc.example.com/realms/{tenant}/certs
			audience alphapulse-api
			tenants *
			max_tenants 0
		}
	}
}
`})
		Expect(out).To(MatchRegexp(`max_tenants "0": must be a whole number of at least 1.*, at \S*Caddyfile:7`))
	})
})
