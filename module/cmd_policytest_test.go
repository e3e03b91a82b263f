package tenantgate

import (
	"bytes"
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const policyCaddyfile = `:8080 {
	tenant_gate {
		issuer https://idp.example {
			jwks_url https://idp.example/.well-known/jwks.json
			audience api
		}
		assertion_key /nonexistent/assertion.pem
		%s
		rule GET /healthz public
		rule GET /api/v1/whoami authenticated
		rule POST /api/v1/hedging/close roles hedging:admin
		rule * /api/v1/tenants/{tenant}/** tenant_param tenant
		rule GET /api/v1/acme/** tenants acme
	}
	respond ok
}
`

const policyCases = `cases:
  - name: health is public
    method: GET
    path: /healthz
    expect: public
    status: 200
  - name: admin closes hedges
    method: POST
    path: /api/v1/hedging/close
    claims: {tenant_id: acme, sub: erin, roles: ["hedging:admin"]}
    expect: allow
    status: 200
  - name: a trader must never close hedges
    method: POST
    path: /api/v1/hedging/close
    claims: {tenant_id: acme, sub: alice, roles: ["hedging:trade"]}
    expect: deny
    reason: missing_role
    status: 403
  - name: own tenant's path
    method: DELETE
    path: /api/v1/tenants/acme/orders/1
    claims: {tenant_id: acme}
    expect: allow
  - name: another tenant's path
    method: DELETE
    path: /api/v1/tenants/globex/orders/1
    claims: {tenant_id: acme}
    expect: deny
    reason: tenant_mismatch
  - name: tenant allow-list
    method: GET
    path: /api/v1/acme/report
    claims: {tenant_id: globex}
    expect: deny
    reason: tenant_not_allowed
  - name: wrong audience
    method: GET
    path: /api/v1/whoami
    claims: {tenant_id: acme, aud: other}
    expect: deny
    reason: wrong_audience
    status: 401
  - name: expired a minute ago
    method: GET
    path: /api/v1/whoami
    claims: {tenant_id: acme, exp: -60}
    expect: deny
    reason: token_expired
  - name: an Authorization header of the case wins
    method: GET
    path: /api/v1/whoami
    claims: {tenant_id: acme}
    headers: {Authorization: "Bearer not.a.token", Host: api.example}
    expect: deny
    status: 401
`

// policyFixture writes a Caddyfile (extra: lines added to the tenant_gate
// block) and a case file, and returns their paths.
func policyFixture(t *testing.T, extra, cases string) (config, casesFile string) {
	t.Helper()
	dir := t.TempDir()
	config = filepath.Join(dir, "Caddyfile")
	writeFile(t, config, []byte(strings.Replace(policyCaddyfile, "%s", extra, 1)))
	casesFile = filepath.Join(dir, "cases.yaml")
	writeFile(t, casesFile, []byte(cases))
	return config, casesFile
}

func runTest(t *testing.T, o policyTestOptions) (int, string, error) {
	t.Helper()
	if o.gate == 0 {
		o.gate = 1
	}
	if o.adapter == "" {
		o.adapter = "caddyfile"
	}
	var out bytes.Buffer
	code, err := runPolicyTest(&out, o)
	return code, out.String(), err
}

func TestPolicyTestPasses(t *testing.T) {
	config, cases := policyFixture(t, "", policyCases)
	junit := filepath.Join(t.TempDir(), "junit.xml")
	code, out, err := runTest(t, policyTestOptions{config: config, files: []string{cases}, junit: junit})
	if code != exitOK || err != nil {
		t.Fatalf("code %d, %v\n%s", code, err, out)
	}
	if !strings.Contains(out, "9 passed, 0 failed") {
		t.Fatalf("output:\n%s", out)
	}
	data, err := os.ReadFile(junit)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
	}
	if err := xml.Unmarshal(data, &doc); err != nil || doc.Tests != 9 || doc.Failures != 0 {
		t.Fatalf("junit %+v %v\n%s", doc, err, data)
	}
}

func TestPolicyTestReportsFailures(t *testing.T) {
	broken := strings.Replace(policyCases, "    reason: missing_role\n", "    reason: tenant_mismatch\n", 1)
	broken = strings.Replace(broken, "expect: public", "expect: deny", 1)
	config, cases := policyFixture(t, "", broken)
	code, out, err := runTest(t, policyTestOptions{config: config, files: []string{cases}})
	if code != exitFailed || err == nil {
		t.Fatalf("code %d, %v\n%s", code, err, out)
	}
	for _, want := range []string{
		"FAIL a trader must never close hedges (" + cases + ":13)",
		"expected: deny reason=tenant_mismatch status=403",
		`got:      deny reason=missing_role status=403 rule="rule POST /api/v1/hedging/close roles hedging:admin" (line 11)`,
		"FAIL health is public",
		"7 passed, 2 failed",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestPolicyTestRunFilter(t *testing.T) {
	config, cases := policyFixture(t, "", policyCases)
	code, out, _ := runTest(t, policyTestOptions{config: config, files: []string{cases}, run: "hedges$"})
	if code != exitOK || !strings.Contains(out, "2 passed, 0 failed") {
		t.Fatalf("code %d\n%s", code, out)
	}
	code, out, _ = runTest(t, policyTestOptions{config: config, files: []string{cases}, run: "nothing matches"})
	if code != exitOK || !strings.Contains(out, "no case matches") {
		t.Fatalf("code %d\n%s", code, out)
	}
	if code, _, err := runTest(t, policyTestOptions{config: config, files: []string{cases}, run: "("}); code != exitBroken || err == nil {
		t.Fatalf("bad --run: code %d, %v", code, err)
	}
}

func TestPolicyTestBrokenInput(t *testing.T) {
	config, cases := policyFixture(t, "", "cases:\n  - name: x\n    method: GET\n    path: /healthz\n    expect: maybe\n")
	code, _, err := runTest(t, policyTestOptions{config: config, files: []string{cases}})
	if code != exitBroken || err == nil || !strings.Contains(err.Error(), cases+":5:") {
		t.Fatalf("bad case: code %d, %v", code, err)
	}

	_, good := policyFixture(t, "", policyCases)
	badConfig, _ := policyFixture(t, "rule GET /x rolez admin", policyCases)
	code, _, err = runTest(t, policyTestOptions{config: badConfig, files: []string{good}})
	if code != exitBroken || err == nil || !strings.Contains(err.Error(), `unknown requirement "rolez"`) {
		t.Fatalf("broken rule: code %d, %v", code, err)
	}

	notCaddy := filepath.Join(t.TempDir(), "Caddyfile")
	writeFile(t, notCaddy, []byte(":8080 {\n\tnot_a_directive\n}\n"))
	code, _, err = runTest(t, policyTestOptions{config: notCaddy, files: []string{good}})
	if code != exitBroken || err == nil || !strings.Contains(err.Error(), "not_a_directive") {
		t.Fatalf("config that does not adapt: code %d, %v", code, err)
	}

	noGate := filepath.Join(t.TempDir(), "Caddyfile")
	writeFile(t, noGate, []byte(":8080 {\n\trespond ok\n}\n"))
	if code, _, err = runTest(t, policyTestOptions{config: noGate, files: []string{good}}); code != exitBroken || err == nil {
		t.Fatalf("no gate: code %d, %v", code, err)
	}
	if code, _, err = runTest(t, policyTestOptions{config: badConfig, files: []string{good}, gate: 3}); code != exitBroken || err == nil {
		t.Fatalf("--gate 3: code %d, %v", code, err)
	}
	if code, _, err = runTest(t, policyTestOptions{files: []string{good}}); code != exitBroken || err == nil {
		t.Fatalf("no --config: code %d, %v", code, err)
	}
	badPath, _ := policyFixture(t, "", policyCases)
	_, casesBadPath := policyFixture(t, "", "cases:\n  - {method: GET, path: \"/%zz\", expect: deny}\n")
	if code, _, err = runTest(t, policyTestOptions{config: badPath, files: []string{casesBadPath}}); code != exitBroken || err == nil || !strings.Contains(err.Error(), ":2:") {
		t.Fatalf("unparseable path: code %d, %v", code, err)
	}
	config, _ = policyFixture(t, "", policyCases)
	if code, _, err = runTest(t, policyTestOptions{config: config, files: []string{good}, junit: filepath.Join(t.TempDir(), "no", "such", "dir.xml")}); code != exitBroken || err == nil {
		t.Fatalf("unwritable --junit: code %d, %v", code, err)
	}
}

func TestPolicyTestReportMode(t *testing.T) {
	config, cases := policyFixture(t, "mode report", `cases:
  - name: a trader would be refused
    method: POST
    path: /api/v1/hedging/close
    claims: {tenant_id: acme, roles: ["hedging:trade"]}
    expect: would_deny
    reason: missing_role
    status: 200
`)
	if code, out, err := runTest(t, policyTestOptions{config: config, files: []string{cases}}); code != exitOK {
		t.Fatalf("code %d, %v\n%s", code, err, out)
	}
}

func TestPolicyTestKeyKinds(t *testing.T) {
	t.Setenv("POLICY_TEST_SECRET", "")
	for _, tc := range []struct{ name, config string }{
		{"multi-tenant issuer", `:8080 {
	tenant_gate {
		issuer https://login.example/{tenant}/v2.0 {
			oidc_discovery
			audience api
			tenants acme globex
		}
		issuer https://idp.example {
			jwks_url https://idp.example/jwks.json
			audience api2
		}
		algorithms EdDSA
		assertion_alg HS256
		assertion_secret {env.POLICY_TEST_SECRET}
		rule GET /api/** authenticated
	}
}`},
		{"HMAC issuer", `:8080 {
	tenant_gate {
		issuer https://login.example/acme/v2.0 {
			hmac_secret {env.POLICY_TEST_SECRET}
			audience api
			token_type at+jwt
		}
		issuer https://idp.example {
			public_key_file /nonexistent.pem
			audience api2
		}
		algorithms HS256
		assertion_key /nonexistent.pem
		rule GET /api/** authenticated
	}
}`},
		{"RSA", `:8080 {
	tenant_gate {
		issuer https://login.example/acme/v2.0 {
			jwks_file /nonexistent.json
			audience api
			token_type at+jwt
		}
		issuer https://idp.example {
			jwks_file /nonexistent.json
			audience api2
		}
		algorithms RS256
		assertion_key /nonexistent.pem
		rule GET /api/** authenticated
	}
}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			config := filepath.Join(dir, "Caddyfile")
			writeFile(t, config, []byte(tc.config))
			cases := filepath.Join(dir, "cases.yaml")
			writeFile(t, cases, []byte(`cases:
  - name: first issuer, tenant from the claims
    method: GET
    path: /api/x
    claims: {tenant_id: acme}
    expect: allow
  - name: second issuer, its own audience by default
    method: GET
    path: /api/x
    claims: {tenant_id: acme, iss: "https://idp.example"}
    expect: allow
  - name: no token
    method: GET
    path: /api/x
    expect: deny
    reason: missing_token
`))
			if code, out, err := runTest(t, policyTestOptions{config: config, files: []string{cases}}); code != exitOK {
				t.Fatalf("code %d, %v\n%s", code, err, out)
			}
		})
	}
}

func TestPolicyTestPicksAGate(t *testing.T) {
	dir := t.TempDir()
	config := filepath.Join(dir, "Caddyfile")
	site := `%s {
	tenant_gate {
		issuer https://idp.example {
			jwks_file /nonexistent.json
			audience api
		}
		assertion_key /nonexistent.pem
		rule GET /x %s
	}
}
`
	writeFile(t, config, []byte(strings.Replace(strings.Replace(site, "%s", "a.example:8080", 1), "%s", "public", 1)+
		strings.Replace(strings.Replace(site, "%s", "b.example:8080", 1), "%s", "authenticated", 1)))
	cases := filepath.Join(dir, "cases.yaml")
	writeFile(t, cases, []byte("cases:\n  - {method: GET, path: /x, expect: public}\n"))
	code, out, _ := runTest(t, policyTestOptions{config: config, files: []string{cases}, gate: 1})
	if code != exitOK || !strings.Contains(out, "(--gate 1 of 2)") || !strings.Contains(out, "a.example") {
		t.Fatalf("gate 1: code %d\n%s", code, out)
	}
	if code, out, _ = runTest(t, policyTestOptions{config: config, files: []string{cases}, gate: 2}); code != exitFailed {
		t.Fatalf("gate 2: code %d\n%s", code, out)
	}
}

func TestPolicyTestCommand(t *testing.T) {
	config, cases := policyFixture(t, "", policyCases)
	out, err := runCommand(t, policyTestCommand(), "--config", config, "--adapter", "caddyfile", cases)
	if err != nil || !strings.Contains(out, "9 passed, 0 failed") {
		t.Fatalf("%v\n%s", err, out)
	}
	failing := filepath.Join(t.TempDir(), "f.yaml")
	writeFile(t, failing, []byte("cases:\n  - {method: GET, path: /healthz, expect: deny}\n"))
	if out, err = runCommand(t, policyTestCommand(), "--config", config, "--adapter", "caddyfile", failing); err == nil || !strings.Contains(err.Error(), "1 of 1 cases failed") {
		t.Fatalf("failing: %v\n%s", err, out)
	}
	if out, err = runCommand(t, policyTestCommand(), "--config", config, filepath.Join(t.TempDir(), "missing.yaml")); err == nil || !strings.Contains(out, "missing.yaml") {
		t.Fatalf("missing file: %v\n%s", err, out)
	}
}

func TestCaseClaims(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	issuers := []issuerInfo{{iss: "https://login/{tenant}/v2", audiences: []string{"api"}}, {iss: "https://idp", audiences: []string{"b"}}}
	c, is := caseClaims(map[string]any{"org": map[string]any{"id": "acme"}, "nbf": -5, "jti": nil}, issuers, "/org/id", now)
	if c["iss"] != "https://login/acme/v2" || c["aud"] != "api" || c["iat"] != now.Unix() || c["exp"] != now.Unix()+600 || c["nbf"] != now.Unix()-5 || is != &issuers[0] {
		t.Fatalf("claims %v, issuer %v", c, is)
	}
	if _, ok := c["jti"]; ok {
		t.Fatal("a null claim is kept")
	}
	c, is = caseClaims(map[string]any{"iss": "https://idp", "exp": 1_800_000_000.0, "iat": int64(-30), "aud": nil}, issuers, "tenant_id", now)
	if is != &issuers[1] || c["exp"] != 1_800_000_000.0 || c["iat"] != now.Unix()-30 {
		t.Fatalf("claims %v", c)
	}
	if _, ok := c["aud"]; ok {
		t.Fatal("aud: null is kept")
	}
	if _, is = caseClaims(map[string]any{"iss": "https://elsewhere"}, issuers, "tenant_id", now); is != nil {
		t.Fatal("an unknown iss names an issuer")
	}
	if claimAt(map[string]any{"a": "x"}, "/a/b") != nil || claimAt(map[string]any{"a/b": "y"}, "/a~1b") != "y" {
		t.Fatal("claimAt")
	}
}

func TestTestKeysSignWithEveryAlgorithm(t *testing.T) {
	for _, alg := range []string{"EdDSA", "ES256", "ES384", "ES512", "RS256", "PS384", "HS512"} {
		k, err := newTestKeys(t.TempDir(), []string{"XX999", alg})
		if err != nil {
			t.Fatalf("%s: %v", alg, err)
		}
		if string(k.alg) != alg {
			t.Fatalf("made %s for %s", k.alg, alg)
		}
		tok, err := k.sign(map[string]any{"sub": "a"}, "at+jwt")
		if err != nil || strings.Count(tok, ".") != 2 {
			t.Fatalf("%s: %q %v", alg, tok, err)
		}
		_, err = k.jwksURL()
		if (err == nil) != (k.priv != nil) {
			t.Fatalf("%s: jwksURL: %v", alg, err)
		}
		k.close()
	}
	if _, err := newTestKeys(t.TempDir(), []string{"none"}); err == nil {
		t.Fatal("a key for no usable algorithm")
	}
	k, _ := newTestKeys(t.TempDir(), nil)
	if k.alg != "EdDSA" {
		t.Fatalf("default algorithms: %s, want the cheapest (EdDSA)", k.alg)
	}
	if _, err := k.sign(map[string]any{"bad": func() {}}, ""); err == nil {
		t.Fatal("unmarshalable claims signed")
	}
}

func TestPolicyTestMultiTenantNeedsAnAsymmetricKey(t *testing.T) {
	dir := t.TempDir()
	config := filepath.Join(dir, "Caddyfile")
	writeFile(t, config, []byte(`:8080 {
	tenant_gate {
		issuer https://login.example/{tenant}/v2.0 {
			oidc_discovery
			audience api
			tenants acme
		}
		issuer https://hmac.example {
			hmac_secret 0123456789abcdef0123456789abcdef
			audience api
		}
		algorithms HS256
		assertion_key /nonexistent.pem
		rule GET /api/** authenticated
	}
}`))
	cases := filepath.Join(dir, "cases.yaml")
	writeFile(t, cases, []byte("cases:\n  - {method: GET, path: /api/x, expect: deny}\n"))
	code, _, err := runTest(t, policyTestOptions{config: config, files: []string{cases}})
	if code != exitBroken || err == nil || !strings.Contains(err.Error(), "asymmetric") {
		t.Fatalf("code %d, %v", code, err)
	}
}
