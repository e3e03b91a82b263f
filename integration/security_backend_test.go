package integration_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwt"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/tenantgate/tenantgate/module/assertion"
)

// --- backend bypass: straight to the backend's port, skipping the gate ---

const executePath = "/api/v1/hedging/execute"

// bypassCase is a direct POST /api/v1/hedging/execute to the backend as
// acme, with X-Tenant-ID, X-User-ID and X-User-Roles set and the given
// X-Tenant-Assertion values.
type bypassCase struct {
	assertions func() []string
	status     int
	trades     bool // the control: the trade happens
}

// mint signs an assertion for acme's direct execute call with key, after
// mod changed the claims.
func mint(key ed25519.PrivateKey, mod func(c *assertion.Claims)) string {
	now := time.Now()
	c := assertion.Claims{Issuer: assertion.DefaultIssuer, Audience: assertion.DefaultAudience,
		Tenant: "acme", Subject: "alice", Roles: []string{"hedging:admin"}, Method: http.MethodPost, Path: executePath,
		IssuedAt: now, Expiry: now.Add(assertion.MaxLifetime), ID: "bypass-" + randomHex(4)}
	if mod != nil {
		mod(&c)
	}
	s, err := assertion.NewEd25519Signer(key)
	Expect(err).NotTo(HaveOccurred())
	tok, err := s.Sign(c)
	Expect(err).NotTo(HaveOccurred())
	return tok
}

func gateMinted(mod func(c *assertion.Claims)) func() []string {
	return func() []string { return []string{mint(env.assertionPriv, mod)} }
}

// longLivedAssertion is signed by the gate's key but lives an hour; the
// Signer clamps lifetimes, so it is built with jwx directly.
func longLivedAssertion() []string {
	now := time.Now()
	tok, err := jwt.NewBuilder().Issuer(assertion.DefaultIssuer).Audience([]string{assertion.DefaultAudience}).
		Subject("alice").IssuedAt(now).Expiration(now.Add(time.Hour)).JwtID("long").
		Claim("tid", "acme").Claim("roles", []string{"hedging:admin"}).Claim("htm", http.MethodPost).Claim("htu", executePath).Build()
	Expect(err).NotTo(HaveOccurred())
	out, err := jwt.Sign(tok, jwt.WithKey(jwa.EdDSA, env.assertionPriv))
	Expect(err).NotTo(HaveOccurred())
	return []string{string(out)}
}

// acmeAccount reads acme's exchange account through the gate.
func acmeAccount() string {
	status, _, body := do(http.MethodGet, env.gateURL+"/api/v1/hedging/analysis", env.token("acme", allRoles...), nil, "")
	Expect(status).To(Equal(http.StatusOK), string(body))
	var a struct {
		Account json.RawMessage `json:"account"`
	}
	Expect(json.Unmarshal(body, &a)).To(Succeed())
	return string(a.Account)
}

func runBypassCase(tc bypassCase) {
	headers := map[string][]string{
		"X-Tenant-ID": {"acme"}, "X-User-ID": {"alice"}, "X-User-Roles": {"hedging:admin"},
		"Idempotency-Key": {"bypass-" + randomHex(8)},
	}
	if tc.assertions != nil {
		headers["X-Tenant-Assertion"] = tc.assertions()
	}
	before := acmeAccount()
	status, _, body := do(http.MethodPost, env.backendURL+executePath, "", headers,
		`{"orders":[{"asset":"BTC","side":"sell","quantity":0.01}]}`)
	Expect(status).To(Equal(tc.status), string(body))
	after := acmeAccount()
	if tc.trades {
		Expect(string(body)).To(ContainSubstring(`"account_after"`))
		Expect(after).NotTo(Equal(before), "the control trade changed acme's account")
		return
	}
	Expect(string(body)).NotTo(ContainSubstring("account_after"))
	Expect(after).To(Equal(before), "a refused call must not trade")
}

func backendBypass() {
	const u = http.StatusUnauthorized
	otherKey := func() ed25519.PrivateKey {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		Expect(err).NotTo(HaveOccurred())
		return k
	}
	DescribeTable("backend bypass", runBypassCase,
		Entry("control: a fresh gate assertion for exactly this request trades", bypassCase{
			assertions: gateMinted(nil), status: http.StatusOK, trades: true}),
		Entry("no assertion, X-Tenant-ID set", bypassCase{status: u}),
		Entry("empty assertion", bypassCase{assertions: func() []string { return []string{""} }, status: u}),
		Entry("expired assertion", bypassCase{assertions: gateMinted(func(c *assertion.Claims) {
			c.IssuedAt, c.Expiry = time.Now().Add(-2*time.Minute), time.Now().Add(-70*time.Second)
		}), status: u}),
		Entry("assertion issued in the future", bypassCase{assertions: gateMinted(func(c *assertion.Claims) {
			c.IssuedAt, c.Expiry = time.Now().Add(30*time.Second), time.Now().Add(60*time.Second)
		}), status: u}),
		Entry("assertion living an hour", bypassCase{assertions: longLivedAssertion, status: u}),
		Entry("assertion for another method", bypassCase{assertions: gateMinted(func(c *assertion.Claims) {
			c.Method = http.MethodGet
		}), status: u}),
		Entry("assertion for another path", bypassCase{assertions: gateMinted(func(c *assertion.Claims) {
			c.Path = "/api/v1/hedging/analysis"
		}), status: u}),
		Entry("assertion for the path with a trailing slash", bypassCase{assertions: gateMinted(func(c *assertion.Claims) {
			c.Path = executePath + "/"
		}), status: u}),
		Entry("assertion signed by another key", bypassCase{assertions: func() []string {
			return []string{mint(otherKey(), nil)}
		}, status: u}),
		Entry("assertion for another audience", bypassCase{assertions: gateMinted(func(c *assertion.Claims) {
			c.Audience = "other-backend"
		}), status: u}),
		Entry("assertion from another issuer", bypassCase{assertions: gateMinted(func(c *assertion.Claims) {
			c.Issuer = "attacker"
		}), status: u}),
		Entry("assertion without a tenant", bypassCase{assertions: gateMinted(func(c *assertion.Claims) {
			c.Tenant = ""
		}), status: u}),
		Entry("assertion with a malformed tenant", bypassCase{assertions: gateMinted(func(c *assertion.Claims) {
			c.Tenant = "../globex"
		}), status: u}),
		Entry("a valid assertion next to a forged one", bypassCase{assertions: func() []string {
			return []string{mint(env.assertionPriv, nil), mint(otherKey(), nil)}
		}, status: u}),
		Entry("alg none assertion", bypassCase{assertions: func() []string {
			return []string{b64url([]byte(`{"alg":"none"}`)) + "." + b64url([]byte(mustJSON(map[string]any{
				"iss": "tenantgate", "aud": "backend", "tid": "acme", "htm": "POST", "htu": executePath,
				"iat": time.Now().Unix(), "exp": time.Now().Add(time.Minute).Unix()}))) + "."}
		}, status: u}),
		Entry("HS256 assertion keyed with the gate's public key", bypassCase{assertions: func() []string {
			now := time.Now()
			payload := mustJSON(map[string]any{"iss": "tenantgate", "aud": "backend", "tid": "acme", "sub": "alice",
				"htm": "POST", "htu": executePath, "iat": now.Unix(), "exp": now.Add(time.Minute).Unix(), "roles": []string{}})
			return []string{hs256(gatePublicKey(), `{"alg":"HS256","typ":"JWT"}`, payload)}
		}, status: u}),
	)
}

// --- tenant isolation: globex, holding every role, aims at acme's ids ---

type isolationData struct {
	ensembleID, predictionID, globexEnsembleID string
	idemKey, executeBody, acmeExecutionID      string
}

var isoData *isolationData

func postJSON(tenant, path, body string, headers map[string][]string) map[string]any {
	status, _, b := do(http.MethodPost, env.gateURL+path, env.token(tenant, allRoles...), headers, body)
	Expect(status).To(BeElementOf(http.StatusOK, http.StatusCreated), string(b))
	var out map[string]any
	Expect(json.Unmarshal(b, &out)).To(Succeed())
	return out
}

// isolation creates acme's data once: an ensemble with two agents, a
// prediction, and a hedge execution under an Idempotency-Key; and an
// ensemble of globex's own.
func isolation() *isolationData {
	if isoData != nil {
		return isoData
	}
	d := &isolationData{idemKey: "acme-key-" + randomHex(4),
		executeBody: `{"orders":[{"asset":"SOL","side":"sell","quantity":1}]}`} // both hold SOL spot: a hedge, never a naked short
	e := postJSON("acme", "/api/v1/ensemble/create", `{"name":"acme-secret-book","method":"weighted_average","agents":[`+
		`{"agent_id":"acme-alpha","agent_type":"momentum"},{"agent_id":"acme-beta","agent_type":"carry"}]}`, nil)
	d.ensembleID = e["ensemble_id"].(string)
	p := postJSON("acme", "/api/v1/ensemble/"+d.ensembleID+"/predict", `{"symbol":"BTC-USD","signals":[`+
		`{"agent_id":"acme-alpha","signal":0.6,"confidence":0.9},{"agent_id":"acme-beta","signal":-0.1,"confidence":0.5}]}`, nil)
	d.predictionID = p["prediction_id"].(string)
	x := postJSON("acme", executePath, d.executeBody, map[string][]string{"Idempotency-Key": {d.idemKey}})
	d.acmeExecutionID = x["execution_id"].(string)
	g := postJSON("globex", "/api/v1/ensemble/create", `{"name":"acme-secret-book","method":"majority"}`, nil)
	d.globexEnsembleID = g["ensemble_id"].(string)
	isoData = d
	return d
}

// acmeView is everything acme can read about its own data.
func acmeView(d *isolationData) map[string]string {
	view := map[string]string{}
	for _, path := range []string{"/api/v1/ensemble/", "/api/v1/ensemble/agent-rankings",
		"/api/v1/ensemble/" + d.ensembleID + "/weights", "/api/v1/ensemble/" + d.ensembleID + "/performance"} {
		status, _, body := do(http.MethodGet, env.gateURL+path, env.token("acme", allRoles...), nil, "")
		Expect(status).To(Equal(http.StatusOK), path+": "+string(body))
		view[path] = string(body)
	}
	view["account"] = acmeAccount()
	return view
}

type isolationCase struct {
	method  string
	path    func(d *isolationData) string
	body    func(d *isolationData) string
	acmeKey bool // send acme's Idempotency-Key
	status  int
	check   func(d *isolationData, h http.Header, body string)
}

func runIsolationCase(tc isolationCase) {
	d := isolation()
	before := acmeView(d)
	var headers map[string][]string
	if tc.acmeKey {
		headers = map[string][]string{"Idempotency-Key": {d.idemKey}}
	}
	body := ""
	if tc.body != nil {
		body = tc.body(d)
	}
	status, h, b := do(tc.method, env.gateURL+tc.path(d), env.token("globex", allRoles...), headers, body)
	Expect(status).To(Equal(tc.status), string(b))
	Expect(string(b)).NotTo(ContainSubstring("acme-alpha"), "nothing of acme's leaks to globex")
	if tc.check != nil {
		tc.check(d, h, string(b))
	}
	Expect(acmeView(d)).To(Equal(before), "acme's data is unchanged")
}

func ens(suffix string) func(d *isolationData) string {
	return func(d *isolationData) string { return "/api/v1/ensemble/" + d.ensembleID + suffix }
}

func fixed(s string) func(d *isolationData) string { return func(*isolationData) string { return s } }

func tenantIsolation() {
	const nf = http.StatusNotFound
	DescribeTable("tenant isolation", runIsolationCase,
		Entry("POST /ensemble/create with acme's ensemble name stays in globex", isolationCase{
			method: http.MethodPost, path: fixed("/api/v1/ensemble/create"), body: fixed(`{"name":"acme-secret-book","method":"majority"}`),
			status: http.StatusCreated, check: func(d *isolationData, _ http.Header, body string) {
				Expect(body).NotTo(ContainSubstring(d.ensembleID))
			}}),
		Entry("POST /ensemble/{acme's id}/register-agent", isolationCase{method: http.MethodPost, path: ens("/register-agent"),
			body: fixed(`{"agent_id":"globex-spy","agent_type":"spy","initial_weight":5}`), status: nf}),
		Entry("POST /ensemble/{acme's id}/predict", isolationCase{method: http.MethodPost, path: ens("/predict"),
			body: fixed(`{"symbol":"BTC-USD","signals":[{"agent_id":"acme-alpha","signal":1,"confidence":1}]}`), status: nf}),
		Entry("POST /ensemble/{acme's id}/outcomes for acme's prediction", isolationCase{method: http.MethodPost, path: ens("/outcomes"),
			body: func(d *isolationData) string {
				return `{"prediction_id":"` + d.predictionID + `","realized_return":-0.9}`
			}, status: nf}),
		Entry("POST /ensemble/{globex's id}/outcomes for acme's prediction", isolationCase{method: http.MethodPost,
			path: func(d *isolationData) string { return "/api/v1/ensemble/" + d.globexEnsembleID + "/outcomes" },
			body: func(d *isolationData) string {
				return `{"prediction_id":"` + d.predictionID + `","realized_return":-0.9}`
			}, status: nf}),
		Entry("GET /ensemble/{acme's id}/performance", isolationCase{method: http.MethodGet, path: ens("/performance"), status: nf}),
		Entry("GET /ensemble/{acme's id}/weights", isolationCase{method: http.MethodGet, path: ens("/weights"), status: nf}),
		Entry("POST /ensemble/{acme's id}/optimize-weights", isolationCase{method: http.MethodPost, path: ens("/optimize-weights"),
			body: fixed(`{}`), status: nf}),
		Entry("GET /ensemble/ lists none of acme's ensembles", isolationCase{method: http.MethodGet, path: fixed("/api/v1/ensemble/"),
			status: http.StatusOK, check: func(d *isolationData, _ http.Header, body string) {
				Expect(body).NotTo(ContainSubstring(d.ensembleID))
				Expect(body).To(ContainSubstring(d.globexEnsembleID))
			}}),
		Entry("GET /ensemble/agent-rankings ranks none of acme's agents", isolationCase{method: http.MethodGet,
			path: fixed("/api/v1/ensemble/agent-rankings"), status: http.StatusOK, check: func(d *isolationData, _ http.Header, body string) {
				Expect(body).NotTo(ContainSubstring("acme-beta"))
				Expect(body).NotTo(ContainSubstring(d.ensembleID))
			}}),
		Entry("GET /hedging/analysis shows globex's account, not acme's", isolationCase{method: http.MethodGet,
			path: fixed("/api/v1/hedging/analysis"), status: http.StatusOK, check: func(_ *isolationData, _ http.Header, body string) {
				var a struct {
					Account json.RawMessage `json:"account"`
				}
				Expect(json.Unmarshal([]byte(body), &a)).To(Succeed())
				Expect(string(a.Account)).NotTo(Equal(acmeAccount()))
			}}),
		Entry("POST /hedging/execute with acme's Idempotency-Key and body trades for globex, never replays acme's", isolationCase{
			method: http.MethodPost, path: fixed(executePath), body: func(d *isolationData) string { return d.executeBody },
			acmeKey: true, status: http.StatusOK, check: func(d *isolationData, h http.Header, body string) {
				Expect(h.Get("Idempotent-Replayed")).To(BeEmpty())
				Expect(body).NotTo(ContainSubstring(d.acmeExecutionID))
			}}),
		Entry("POST /hedging/close closes globex's hedges only", isolationCase{method: http.MethodPost,
			path: fixed("/api/v1/hedging/close"), body: fixed(`{}`), status: http.StatusOK}),
	)
}

// --- key storms ---

type stormCase struct {
	tokens int
	kid    func(i int) string
}

func runStormCase(tc stormCase) {
	unknown := newKey(jwa.ES256, "storm")
	toks := make([]string, tc.tokens)
	for i := range toks {
		toks[i] = sign(signingKey{alg: unknown.alg, kid: tc.kid(i), key: unknown.key}, env.baseClaims("acme"), nil)
	}
	valid := env.token("acme")
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 20 * time.Second}
	defer client.CloseIdleConnections()
	get := func(tok string) int {
		req, _ := http.NewRequest(http.MethodGet, sec.url+"/echo/storm", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := client.Do(req)
		if err != nil {
			return -1
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	hits := env.jwks.hits.Load()
	mark := sec.upstream.mark()
	jobs := make(chan int)
	stormStatus := make([]int, len(toks))
	var wg sync.WaitGroup
	for w := 0; w < 50; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				stormStatus[i] = get(toks[i])
			}
		}()
	}
	// Meanwhile a legitimate client keeps calling.
	stop := make(chan struct{})
	var validStatus []int
	var vwg sync.WaitGroup
	vwg.Add(1)
	go func() {
		defer vwg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			validStatus = append(validStatus, get(valid))
			time.Sleep(5 * time.Millisecond)
		}
	}()
	for i := range toks {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	close(stop)
	vwg.Wait()

	for i, s := range stormStatus {
		// 401 unknown_key after a fetch made for it, or 503 with Retry-After
		// while the refetch gap holds: never accepted.
		Expect(s).To(BeElementOf(http.StatusUnauthorized, http.StatusServiceUnavailable), "storm token %d", i)
	}
	Expect(len(validStatus)).To(BeNumerically(">=", 5), "valid calls ran during the storm")
	for _, s := range validStatus {
		Expect(s).To(Equal(http.StatusOK), "a valid token during the storm")
	}
	Expect(env.jwks.hits.Load()-hits).To(BeNumerically("<=", 2), "JWKS fetches during the storm")
	got := sec.upstream.since(mark)
	Expect(got).To(HaveLen(len(validStatus)), "only the valid calls reach the upstream")
	for _, g := range got {
		Expect(g.Header.Values("X-Tenant-Id")).To(Equal([]string{"acme"}))
	}
}

func keyStorms() {
	DescribeTable("key storms", runStormCase,
		Entry("1,000 tokens with one unknown kid, 50 at a time", stormCase{tokens: 1000, kid: func(int) string { return "never-published" }}),
		Entry("1,000 tokens with 1,000 distinct unknown kids, 50 at a time", stormCase{tokens: 1000, kid: func(i int) string {
			return "storm-" + randomHex(4)
		}}),
	)
}
