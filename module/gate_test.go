package tenantgate

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/tenantgate/tenantgate/module/assertion"
	"github.com/tenantgate/tenantgate/module/audit"
	"github.com/tenantgate/tenantgate/module/rules"

	"github.com/tenantgate/tenantgate/module/verify"
)

const unitIssuer = "https://idp.unit"

// unitGate is a provisioned Gate with a file-based issuer, the key that
// signs its tokens and the assertion verifier the backend would use.
type unitGate struct {
	g        *Gate
	key      jwk.Key
	verifier *assertion.Verifier
}

func newUnitGate(t *testing.T, mutate func(*Gate)) *unitGate {
	t.Helper()
	dir := t.TempDir()
	raw, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	priv, _ := jwk.FromRaw(raw)
	_ = priv.Set(jwk.KeyIDKey, "k1")
	_ = priv.Set(jwk.AlgorithmKey, jwa.ES256)
	pub, _ := priv.PublicKey()
	set := jwk.NewSet()
	_ = set.AddKey(pub)
	jwks, _ := json.Marshal(set)
	writeFile(t, filepath.Join(dir, "jwks.json"), jwks)

	apub, apriv, _ := ed25519.GenerateKey(rand.Reader)
	pemBytes, _ := assertion.EncodePrivateKeyPEM(apriv)
	writeFile(t, filepath.Join(dir, "assertion.pem"), pemBytes)
	av, _ := assertion.NewEd25519Verifier(apub, "backend")

	g := &Gate{
		Settings:     verify.Settings{Issuers: []Issuer{{Issuer: unitIssuer, JWKSFile: filepath.Join(dir, "jwks.json"), Audiences: []string{"api"}}}},
		AssertionKey: filepath.Join(dir, "assertion.pem"),
		// Unit requests name gate.test; a gate outside a Caddy server has
		// no site host names to judge a DPoP proof's htu by (dpophosts.go).
		DPoPConfig: verify.DPoPConfig{PublicURL: "http://gate.test"},
		Rules: []rules.Rule{
			{Methods: []string{"GET"}, Pattern: "/healthz", Public: true},
			{Methods: []string{"GET"}, Pattern: "/api/whoami", Authenticated: true},
			{Methods: []string{"POST"}, Pattern: "/api/trade", Roles: []string{"trade"}},
			{Methods: []string{"*"}, Pattern: "/t/{tenant}/**", TenantParam: "tenant"},
		},
	}
	if mutate != nil {
		mutate(g)
	}
	provision(t, g)
	return &unitGate{g: g, key: priv, verifier: av}
}

func provision(t *testing.T, g *Gate) {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(func() { cancel(); _ = g.Cleanup() })
	if err := g.Provision(ctx); err != nil {
		t.Fatalf("provision: %v", err)
	}
	if err := g.Validate(); err != nil {
		t.Fatalf("validate: %v", err)
	}
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func (u *unitGate) token(t *testing.T, tenant string, roles ...string) string {
	t.Helper()
	tok, _ := jwt.NewBuilder().Issuer(unitIssuer).Audience([]string{"api"}).Subject("alice").
		IssuedAt(time.Now()).Expiration(time.Now().Add(time.Minute)).JwtID("j1").
		Claim("tenant_id", tenant).Claim("roles", roles).Build()
	signed, err := jwt.Sign(tok, jwt.WithKey(jwa.ES256, u.key))
	if err != nil {
		t.Fatal(err)
	}
	return string(signed)
}

// upstream records what reached it.
type upstream struct {
	called bool
	header http.Header
	status int
}

func (up *upstream) handler() caddyhttp.Handler {
	return caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		up.called = true
		up.header = r.Header.Clone()
		if up.status != 0 {
			w.WriteHeader(up.status)
		}
		return nil
	})
}

func (u *unitGate) serve(r *http.Request, up *upstream) (*httptest.ResponseRecorder, error) {
	repl := caddy.NewReplacer()
	repl.Set("http.request.uuid", "req-123")
	r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl))
	w := httptest.NewRecorder()
	err := u.g.ServeHTTP(w, r, up.handler())
	return w, err
}

func problemOf(t *testing.T, w *httptest.ResponseRecorder) audit.Problem {
	t.Helper()
	var p audit.Problem
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
		t.Fatalf("body %q: %v", w.Body.String(), err)
	}
	return p
}

func TestServeAllowsAndInjectsIdentity(t *testing.T) {
	u := newUnitGate(t, nil)
	r := httptest.NewRequest("GET", "/api/whoami", nil)
	r.Header.Set("Authorization", "Bearer "+u.token(t, "acme", "a", "b"))
	r.Header.Set("X-Tenant-ID", "globex")
	r.Header.Set("X-Request-ID", "client-chosen")
	up := &upstream{}
	w, err := u.serve(r, up)
	if err != nil || !up.called || w.Code != 200 {
		t.Fatalf("err=%v called=%v code=%d body=%s", err, up.called, w.Code, w.Body)
	}
	if got := up.header.Values("X-Tenant-Id"); len(got) != 1 || got[0] != "acme" {
		t.Fatalf("X-Tenant-ID = %q", got)
	}
	if up.header.Get("X-User-Id") != "alice" || up.header.Get("X-User-Roles") != "a,b" {
		t.Fatalf("identity headers: %v", up.header)
	}
	if up.header.Get("X-Request-Id") != "req-123" || w.Header().Get("X-Request-Id") != "req-123" {
		t.Fatalf("request id not ours: %v", up.header)
	}
	if up.header.Get("Authorization") != "" {
		t.Fatal("end-user token forwarded upstream")
	}
	c, err := u.verifier.Verify(up.header.Get("X-Tenant-Assertion"), "GET", "/api/whoami", time.Now())
	if err != nil || c.Tenant != "acme" || c.ID != "req-123" {
		t.Fatalf("assertion: %+v %v", c, err)
	}
}

func TestServeDenials(t *testing.T) {
	u := newUnitGate(t, nil)
	cases := []struct {
		name, method, target, auth string
		status                     int
		reason                     string
	}{
		{"no token", "GET", "/api/whoami", "", 401, "missing_token"},
		{"basic scheme", "GET", "/api/whoami", "Basic Zm9vOmJhcg==", 401, "missing_token"},
		{"empty bearer", "GET", "/api/whoami", "Bearer ", 401, "missing_token"},
		{"garbage", "GET", "/api/whoami", "Bearer abc", 401, "malformed_token"},
		{"no rule", "GET", "/nowhere", "", 403, "no_route"},
		{"missing role", "POST", "/api/trade", "tok:acme", 403, "missing_role"},
		{"other tenant", "GET", "/t/globex/x", "tok:acme", 403, "tenant_mismatch"},
		{"bad tenant", "GET", "/api/whoami", "tok:../x", 403, "no_tenant"},
		{"dot segment", "GET", "/api/../api/whoami", "", 400, "bad_path"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest(c.method, "http://x"+c.target, nil)
			if strings.HasPrefix(c.auth, "tok:") {
				r.Header.Set("Authorization", "Bearer "+u.token(t, strings.TrimPrefix(c.auth, "tok:")))
			} else if c.auth != "" {
				r.Header.Set("Authorization", c.auth)
			}
			up := &upstream{}
			w, err := u.serve(r, up)
			if err != nil || up.called {
				t.Fatalf("err=%v upstream called=%v", err, up.called)
			}
			if w.Code != c.status {
				t.Fatalf("status %d, want %d: %s", w.Code, c.status, w.Body)
			}
			p := problemOf(t, w)
			if p.Reason != c.reason || p.Status != c.status || p.RequestID != "req-123" || p.Detail == "" {
				t.Fatalf("problem %+v", p)
			}
			if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
				t.Fatalf("content type %q", ct)
			}
			if c.status == 401 && !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), `Bearer realm="tenantgate"`) {
				t.Fatalf("WWW-Authenticate %q", w.Header().Get("WWW-Authenticate"))
			}
		})
	}
}

func TestServeTwoAuthorizationHeaders(t *testing.T) {
	u := newUnitGate(t, nil)
	r := httptest.NewRequest("GET", "/api/whoami", nil)
	r.Header.Add("Authorization", "Bearer "+u.token(t, "acme"))
	r.Header.Add("Authorization", "Bearer "+u.token(t, "globex"))
	w, _ := u.serve(r, &upstream{})
	if w.Code != 401 || problemOf(t, w).Reason != "malformed_token" {
		t.Fatalf("got %d %s", w.Code, w.Body)
	}
}

func TestServePublicSetsNoIdentity(t *testing.T) {
	u := newUnitGate(t, nil)
	r := httptest.NewRequest("GET", "/healthz", nil)
	r.Header.Set("X-Tenant-ID", "acme")
	r.Header.Set("X-Tenant-Assertion", "forged")
	up := &upstream{}
	w, _ := u.serve(r, up)
	if w.Code != 200 || !up.called {
		t.Fatalf("public route: %d", w.Code)
	}
	for _, h := range identityHeaders {
		if up.header.Get(h) != "" {
			t.Fatalf("%s reached a public upstream", h)
		}
	}
}

func TestServeReportMode(t *testing.T) {
	u := newUnitGate(t, func(g *Gate) { g.Mode = ModeReport })
	// Missing role: passes, with identity, since the token is valid.
	r := httptest.NewRequest("POST", "/api/trade", nil)
	r.Header.Set("Authorization", "Bearer "+u.token(t, "acme"))
	up := &upstream{}
	if w, _ := u.serve(r, up); w.Code != 200 || !up.called || up.header.Get("X-Tenant-Id") != "acme" {
		t.Fatalf("report mode blocked or lost identity: %d %v", w.Code, up.header)
	}
	// No rule and no token: passes without identity.
	r = httptest.NewRequest("GET", "/nowhere", nil)
	up = &upstream{}
	if w, _ := u.serve(r, up); w.Code != 200 || !up.called || up.header.Get("X-Tenant-Assertion") != "" {
		t.Fatalf("report mode: %d %v", w.Code, up.header)
	}
	// Non-canonical paths are refused even in report mode.
	r = httptest.NewRequest("GET", "/api//whoami", nil)
	up = &upstream{}
	if w, _ := u.serve(r, up); w.Code != 400 || up.called {
		t.Fatalf("bad path in report mode: %d", w.Code)
	}
}

func TestServeTokenFromCookieAndQuery(t *testing.T) {
	u := newUnitGate(t, func(g *Gate) { g.TokenCookie, g.TokenQuery = "session", "access_token" })
	r := httptest.NewRequest("GET", "/api/whoami", nil)
	r.AddCookie(&http.Cookie{Name: "session", Value: u.token(t, "acme")})
	up := &upstream{}
	if w, _ := u.serve(r, up); w.Code != 200 {
		t.Fatalf("cookie token: %d %s", w.Code, w.Body)
	}
	r = httptest.NewRequest("GET", "/api/whoami?access_token="+u.token(t, "acme")+"&x=1", nil)
	up = &upstream{}
	if w, _ := u.serve(r, up); w.Code != 200 {
		t.Fatalf("query token: %d %s", w.Code, w.Body)
	}
	if r.URL.Query().Has("access_token") || r.URL.Query().Get("x") != "1" {
		t.Fatalf("query token not removed before the upstream: %q", r.URL.RawQuery)
	}
}

func TestServeRecordsUpstreamErrorStatus(t *testing.T) {
	u := newUnitGate(t, nil)
	c := newCaptured()
	u.g.auditLog = c.l
	r := httptest.NewRequest("GET", "/api/whoami", nil)
	r.Header.Set("Authorization", "Bearer "+u.token(t, "acme"))
	repl := caddy.NewReplacer()
	r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl))
	want := caddyhttp.Error(http.StatusBadGateway, errors.New("upstream down"))
	err := u.g.ServeHTTP(httptest.NewRecorder(), r, caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return want }))
	if !errors.Is(err, want.Err) {
		t.Fatalf("error not passed on: %v", err)
	}
	rec := c.only(t)
	if rec["status"] != float64(http.StatusBadGateway) || rec["decision"] != "allow" || rec["reason"] != "ok" || rec["tenant_id"] != "acme" {
		t.Fatalf("the record should carry the handler error's status 502: %v", rec)
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	g := &Gate{
		Settings: verify.Settings{
			Issuers:    []Issuer{{Issuer: "https://a", HMACSecret: "short", Audiences: []string{"x"}}},
			Algorithms: []string{"none", "HS256"},
		},
		Mode:           "shadow",
		Rules:          []rules.Rule{{Methods: []string{"GET"}, Pattern: "nope", Public: true}},
		AllowedOrigins: []string{"https://app.example/"},
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := g.Provision(ctx); err != nil {
		t.Fatalf("provision should defer problems to Validate: %v", err)
	}
	err := g.Validate()
	if err == nil {
		t.Fatal("Validate accepted a broken config")
	}
	var lines []string
	for _, l := range strings.Split(err.Error(), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	// Each expected problem is its own line, saying what is wrong where.
	expected := []struct{ name, prefix, says string }{
		{"mode", `mode "shadow"`, "want enforce or report"},
		{"none", "algorithms:", `"none" is never allowed`},
		{"assertion_key", "assertion_key is required", "Ed25519"},
		{"hmac_secret", `issuer "https://a": hmac_secret is 5 bytes`, "at least 32"},
		{"rule", "rule 1", "nope"},
		{"allowed_origins", "allowed_origins:", "is not an origin"},
	}
	for _, want := range expected {
		found := 0
		for _, l := range lines {
			if strings.HasPrefix(l, want.prefix) && strings.Contains(l, want.says) {
				found++
			}
		}
		if found != 1 {
			t.Errorf("%s: want exactly one line starting %q and saying %q, found %d in:\n%s", want.name, want.prefix, want.says, found, err)
		}
	}
	if len(lines) != len(expected) {
		t.Errorf("want %d problems, got %d:\n%s", len(expected), len(lines), err)
	}
}

// A verified token whose tenant claim is unusable is denied, but the audit
// record still names the user, the issuer and the token.
func TestNoTenantRecordNamesTheUser(t *testing.T) {
	u := newUnitGate(t, nil)
	c := newCaptured()
	u.g.auditLog = c.l
	r := httptest.NewRequest("GET", "/api/whoami", nil)
	r.Header.Set("Authorization", "Bearer "+u.token(t, "a/b"))
	up := &upstream{}
	w, _ := u.serve(r, up)
	if w.Code != 403 || up.called {
		t.Fatalf("status %d, upstream called %v", w.Code, up.called)
	}
	rec := c.only(t)
	if rec["reason"] != "no_tenant" || rec["user_id"] != "alice" || rec["issuer"] != unitIssuer || rec["token_id"] != "j1" || rec["tenant_id"] != "" {
		t.Fatalf("record %v", rec)
	}
}
