package verify

import (
	"context"
	"crypto/rsa"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/module/audit"

	"github.com/tenantgate/tenantgate/module/verify/keysource"
)

// realmServer is a loopback IdP with one realm per tenant, Keycloak style:
// /realms/{r}/jwks and /realms/{r}/.well-known/openid-configuration. A realm
// it does not know answers 404. It counts requests per path.
type realmServer struct {
	*httptest.Server
	mu     sync.Mutex
	realms map[string][]byte // realm -> JWKS
	hits   map[string]int    // path -> requests
	total  atomic.Int64
}

func newRealmServer(t testing.TB) *realmServer {
	s := &realmServer{realms: map[string][]byte{}, hits: map[string]int{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.total.Add(1)
		s.mu.Lock()
		s.hits[r.URL.Path]++
		parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/realms/"), "/")
		body, ok := s.realms[parts[0]]
		s.mu.Unlock()
		if !ok || len(parts) < 2 {
			http.NotFound(w, r)
			return
		}
		switch strings.Join(parts[1:], "/") {
		case "jwks":
			_, _ = w.Write(body)
		case ".well-known/openid-configuration":
			fmt.Fprintf(w, `{"issuer":%q,"jwks_uri":%q}`, s.iss(parts[0]), s.URL+"/realms/"+parts[0]+"/jwks")
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *realmServer) iss(realm string) string { return s.URL + "/realms/" + realm }
func (s *realmServer) template() string        { return s.URL + "/realms/{tenant}" }

func (s *realmServer) add(t testing.TB, realm string, key *rsa.PrivateKey, kid string) {
	body := jwksJSON(t, publicJWK(t, &key.PublicKey, kid, "RS256"))
	s.mu.Lock()
	s.realms[realm] = body
	s.mu.Unlock()
}

func (s *realmServer) hitsOf(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[path]
}

// tenantObserver records both observer callbacks.
type tenantObserver struct {
	recordingObserver
	mu      sync.Mutex
	tenants map[string]int
	keys    map[string]int
}

func (o *tenantObserver) IssuerTenants(issuer string, tenants, keys int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.tenants == nil {
		o.tenants, o.keys = map[string]int{}, map[string]int{}
	}
	o.tenants[issuer], o.keys[issuer] = tenants, keys
}

func (o *tenantObserver) get(issuer string) (tenants, keys int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.tenants[issuer], o.keys[issuer]
}

func templateConfig(ic IssuerConfig, obs Observer) Config {
	if ic.Audiences == nil {
		ic.Audiences = []string{aud}
	}
	return Config{
		Settings: Settings{
			Issuers:    []IssuerConfig{ic},
			Algorithms: []string{"RS256"},
		},
		Observer: obs,
		Now:      func() time.Time { return testNow },
	}
}

func realmToken(t testing.TB, s *realmServer, realm string, key *rsa.PrivateKey, kid string, over map[string]any) string {
	if over == nil {
		over = map[string]any{}
	}
	if _, ok := over["tenant_id"]; !ok {
		over["tenant_id"] = nil
	}
	return mint(t, "RS256", key, kid, nil, claimsFor(s.iss(realm), over))
}

func TestTemplateKeysPinnedPerTenant(t *testing.T) {
	k := keys(t)
	s := newRealmServer(t)
	s.add(t, "acme", k.rsa, "shared")
	s.add(t, "globex", k.rsa2, "shared") // same kid, other key
	obs := &tenantObserver{}
	v := newVerifier(t, templateConfig(IssuerConfig{Issuer: s.template(), JWKSURL: s.URL + "/realms/{tenant}/jwks", Tenants: []string{"acme", "globex"}}, obs))

	for realm, key := range map[string]*rsa.PrivateKey{"acme": k.rsa, "globex": k.rsa2} {
		id, e := identityOf(v.Verify(t0ctx, Bearer(realmToken(t, s, realm, key, "shared", nil))))
		if e != nil {
			t.Fatalf("%s: %v", realm, e)
		}
		if id.Tenant != realm || id.Issuer != s.iss(realm) {
			t.Fatalf("%s: identity %+v", realm, id)
		}
	}
	// iss names globex, signed with acme's key under the shared kid.
	if _, e := identityOf(v.Verify(t0ctx, Bearer(realmToken(t, s, "globex", k.rsa, "shared", nil)))); e == nil || e.Reason != audit.ReasonBadSignature {
		t.Fatalf("cross-realm token: want bad_signature, got %v", e)
	}
	// Unlisted tenant: refused before any fetch.
	if _, e := identityOf(v.Verify(t0ctx, Bearer(realmToken(t, s, "initech", k.rsa, "shared", nil)))); e == nil || e.Reason != audit.ReasonUnknownIssuer {
		t.Fatalf("unlisted tenant: want unknown_issuer, got %v", e)
	}
	if n := s.hitsOf("/realms/initech/jwks"); n != 0 {
		t.Fatalf("unlisted tenant cost %d fetches", n)
	}
	if n := s.hitsOf("/realms/acme/jwks"); n != 1 {
		t.Fatalf("acme fetched %d times, want 1", n)
	}
	if tenants, nkeys := obs.get(s.template()); tenants != 2 || nkeys != 2 {
		t.Fatalf("observer: %d tenants, %d keys; want 2, 2", tenants, nkeys)
	}
	for _, c := range obs.snapshot() {
		if c.issuer != s.template() {
			t.Fatalf("refresh reported under %q, want the template", c.issuer)
		}
	}
	if st := v.KeyStatus(); st[s.template()] != 2 {
		t.Fatalf("KeyStatus %v", st)
	}
}

func TestTemplateTenantClaim(t *testing.T) {
	k := keys(t)
	s := newRealmServer(t)
	s.add(t, "acme", k.rsa, "k1")
	v := newVerifier(t, templateConfig(IssuerConfig{Issuer: s.template(), JWKSURL: s.URL + "/realms/{tenant}/jwks", Tenants: []string{"acme"}}, nil))
	for _, tc := range []struct {
		claim any
		want  audit.Reason
	}{
		{nil, ""},
		{"acme", ""},
		{"globex", audit.ReasonTenantMismatch},
		{42, audit.ReasonTenantMismatch},
	} {
		over := map[string]any{"tenant_id": tc.claim}
		id, e := identityOf(v.Verify(t0ctx, Bearer(realmToken(t, s, "acme", k.rsa, "k1", over))))
		switch {
		case tc.want == "" && (e != nil || id.Tenant != "acme"):
			t.Fatalf("claim %v: %v %+v", tc.claim, e, id)
		case tc.want != "" && (e == nil || e.Reason != tc.want):
			t.Fatalf("claim %v: want %s, got %v", tc.claim, tc.want, e)
		}
	}
}

func TestTemplateDiscoveryPerTenant(t *testing.T) {
	k := keys(t)
	s := newRealmServer(t)
	s.add(t, "acme", k.rsa, "k1")
	v := newVerifier(t, templateConfig(IssuerConfig{Issuer: s.template(), OIDCDiscovery: s.template() + "/.well-known/openid-configuration", Tenants: []string{"*"}}, nil))
	if _, e := identityOf(v.Verify(t0ctx, Bearer(realmToken(t, s, "acme", k.rsa, "k1", nil)))); e != nil {
		t.Fatal(e)
	}
	if s.hitsOf("/realms/acme/.well-known/openid-configuration") != 1 || s.hitsOf("/realms/acme/jwks") != 1 {
		t.Fatalf("hits %v", s.hits)
	}
	// A made-up realm: discovery 404, remembered.
	for range 5 {
		if _, e := identityOf(v.Verify(t0ctx, Bearer(realmToken(t, s, "nosuch", k.rsa, "k1", nil)))); e == nil || e.Reason != audit.ReasonUnknownIssuer {
			t.Fatalf("made-up realm: want unknown_issuer, got %v", e)
		}
	}
	if n := s.hitsOf("/realms/nosuch/.well-known/openid-configuration"); n != 1 {
		t.Fatalf("made-up realm fetched %d times, want 1 (negative cache)", n)
	}
}

func TestTemplateFloodOfMadeUpTenants(t *testing.T) {
	k := keys(t)
	s := newRealmServer(t)
	s.add(t, "acme", k.rsa, "k1")
	obs := &tenantObserver{}
	v := newVerifier(t, templateConfig(IssuerConfig{Issuer: s.template(), JWKSURL: s.URL + "/realms/{tenant}/jwks", Tenants: []string{"*"}, MaxTenants: 3}, obs))
	start := time.Now()
	const flood = 500
	var wg sync.WaitGroup
	var refusedBeforeFetch atomic.Int64
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < flood; i += 8 {
				_, e := identityOf(v.Verify(t0ctx, Bearer(realmToken(t, s, fmt.Sprintf("made-up-%d", i), k.rsa, "k1", nil))))
				if e == nil {
					t.Errorf("made-up tenant %d passed", i)
					return
				}
				if e.Reason == audit.ReasonKeysUnavailable {
					refusedBeforeFetch.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	bound := int64(keysource.NewTenantBurst) + int64(elapsed/keysource.NewTenantEvery) + 1
	if got := s.total.Load(); got > bound {
		t.Fatalf("%d made-up tenants cost %d fetches in %s; the bound is %d", flood, got, elapsed, bound)
	}
	if refusedBeforeFetch.Load() < flood-bound {
		t.Fatalf("only %d refused by the rate limit", refusedBeforeFetch.Load())
	}
	t.Logf("flood of %d made-up tenants: %d fetches in %s (bound %d)", flood, s.total.Load(), elapsed.Round(time.Millisecond), bound)
	if tenants, _ := obs.get(s.template()); tenants != 0 {
		t.Fatalf("made-up tenants hold %d key sets", tenants)
	}
	// Repeats of remembered tenants (those fetched once) cost nothing.
	before := s.total.Load()
	repeated := 0
	for i := range flood {
		realm := fmt.Sprintf("made-up-%d", i)
		if s.hitsOf("/realms/"+realm+"/jwks") == 0 {
			continue // refused by the rate limit, never fetched
		}
		repeated++
		if _, e := identityOf(v.Verify(t0ctx, Bearer(realmToken(t, s, realm, k.rsa, "k1", nil)))); e == nil || e.Reason != audit.ReasonUnknownIssuer {
			t.Fatalf("remembered tenant: want unknown_issuer, got %v", e)
		}
	}
	if repeated == 0 || s.total.Load() != before {
		t.Fatalf("%d repeats cost %d fetches", repeated, s.total.Load()-before)
	}
}

func TestTemplateEvictionAndRefetch(t *testing.T) {
	k := keys(t)
	s := newRealmServer(t)
	for _, r := range []string{"a", "b", "c"} {
		s.add(t, r, k.rsa, "k1")
	}
	obs := &tenantObserver{}
	v := newVerifier(t, templateConfig(IssuerConfig{Issuer: s.template(), JWKSURL: s.URL + "/realms/{tenant}/jwks", Tenants: []string{"a", "b", "c"}, MaxTenants: 2}, obs))
	verify := func(r string) {
		t.Helper()
		if _, e := identityOf(v.Verify(t0ctx, Bearer(realmToken(t, s, r, k.rsa, "k1", nil)))); e != nil {
			t.Fatalf("%s: %v", r, e)
		}
	}
	verify("a")
	verify("b")
	verify("a") // a is now the most recently used
	verify("c") // evicts b
	if got := v.TenantStatus()[s.template()]; got != 2 {
		t.Fatalf("held %d tenants, want 2", got)
	}
	if tenants, nkeys := obs.get(s.template()); tenants != 2 || nkeys != 2 {
		t.Fatalf("observer %d tenants %d keys", tenants, nkeys)
	}
	if s.hitsOf("/realms/b/jwks") != 1 || s.hitsOf("/realms/a/jwks") != 1 {
		t.Fatalf("hits %v", s.hits)
	}
	// b's last keys stayed in the process's key store, so b passes at
	// once, and costs no fetch: they are younger than refresh_interval
	// (tokens cycling through more tenants than max_tenants cost nothing).
	verify("b")
	time.Sleep(100 * time.Millisecond)
	if s.hitsOf("/realms/b/jwks") != 1 || s.hitsOf("/realms/a/jwks") != 1 {
		t.Fatalf("a returning tenant fetched: hits %v", s.hits)
	}
}

func TestEvictedSourceStops(t *testing.T) {
	k := keys(t)
	s := newRealmServer(t)
	for _, r := range []string{"a", "b"} {
		s.add(t, r, k.rsa, "k1")
	}
	v := newVerifier(t, templateConfig(IssuerConfig{Issuer: s.template(), JWKSURL: s.URL + "/realms/{tenant}/jwks", Tenants: []string{"*"}, MaxTenants: 1, RefreshInterval: Duration(50 * time.Millisecond)}, nil))
	for _, r := range []string{"a", "b"} {
		if _, e := identityOf(v.Verify(t0ctx, Bearer(realmToken(t, s, r, k.rsa, "k1", nil)))); e != nil {
			t.Fatal(e)
		}
	}
	// b's loop refreshes; a's was stopped when b evicted it.
	eventually(t, 3*time.Second, "b refreshing", func() bool { return s.hitsOf("/realms/b/jwks") >= 3 })
	if n := s.hitsOf("/realms/a/jwks"); n > 2 {
		t.Fatalf("evicted tenant a kept refreshing: %d fetches", n)
	}
}

func TestTemplateTenantsFile(t *testing.T) {
	k := keys(t)
	s := newRealmServer(t)
	for _, r := range []string{"acme", "globex"} {
		s.add(t, r, k.rsa, "k1")
	}
	path := filepath.Join(t.TempDir(), "tenants.txt")
	if err := os.WriteFile(path, []byte("# customers\nacme\n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	v := newVerifier(t, templateConfig(IssuerConfig{Issuer: s.template(), JWKSURL: s.URL + "/realms/{tenant}/jwks", TenantsFile: path}, nil))
	reason := func(r string) audit.Reason {
		_, e := identityOf(v.Verify(t0ctx, Bearer(realmToken(t, s, r, k.rsa, "k1", nil))))
		if e == nil {
			return ""
		}
		return e.Reason
	}
	if reason("acme") != "" || reason("globex") != audit.ReasonUnknownIssuer {
		t.Fatal("initial list not applied")
	}
	// Replace the file the way tools do: write a new one, rename it over.
	tmp := path + ".new"
	if err := os.WriteFile(tmp, []byte("globex\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "globex admitted", func() bool { return reason("globex") == "" })
	if reason("acme") != audit.ReasonUnknownIssuer {
		t.Fatal("acme still admitted after leaving the file")
	}
	if got := v.TenantStatus()[s.template()]; got != 1 {
		t.Fatalf("held %d tenants after acme left, want 1", got)
	}
	// A bad line keeps the last good list.
	if err := os.WriteFile(path, []byte("acme\nnot a tenant\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * keysource.TenantsFilePoll)
	if reason("globex") != "" || reason("acme") != audit.ReasonUnknownIssuer {
		t.Fatal("a bad tenants_file replaced the last good list")
	}
}

func TestTemplateConfigErrors(t *testing.T) {
	base := IssuerConfig{Issuer: "https://kc.example/realms/{tenant}", JWKSURL: "https://kc.example/realms/{tenant}/certs", Audiences: []string{aud}, Tenants: []string{"acme"}}
	for _, tc := range []struct {
		name string
		mod  func(*IssuerConfig)
		want string
	}{
		{"two placeholders", func(c *IssuerConfig) { c.Issuer = "https://kc.example/{tenant}/{tenant}" }, "must stand exactly once"},
		{"host", func(c *IssuerConfig) { c.Issuer = "https://{tenant}.kc.example/" }, "in the host part"},
		{"host in jwks_url", func(c *IssuerConfig) { c.JWKSURL = "https://{tenant}.kc.example/certs" }, "jwks_url: {tenant} is in the host part"},
		{"query", func(c *IssuerConfig) { c.Issuer = "https://kc.example/x?t={tenant}" }, "must stand in the path"},
		{"any without audience", func(c *IssuerConfig) { c.Tenants = []string{"*"}; c.Audiences = nil }, "tenants * needs an audience"},
		{"max_tenants", func(c *IssuerConfig) { c.MaxTenants = -1 }, "max_tenants -1: must be at least 1"},
		{"shared jwks", func(c *IssuerConfig) { c.JWKSURL = "https://kc.example/certs" }, "every tenant would share one key set"},
		{"static keys", func(c *IssuerConfig) { c.JWKSURL = ""; c.JWKSFile = "/k.json" }, "needs jwks_url or oidc_discovery"},
		{"no tenants", func(c *IssuerConfig) { c.Tenants = nil }, "needs `tenants NAME...`"},
		{"bad tenant", func(c *IssuerConfig) { c.Tenants = []string{"a/b"} }, `"a/b" is not a tenant name`},
		{"star with others", func(c *IssuerConfig) { c.Tenants = []string{"*", "acme"} }, "* stands alone"},
		{"tenants on plain issuer", func(c *IssuerConfig) {
			c.Issuer = "https://kc.example/realms/acme"
			c.JWKSURL = "https://kc.example/certs"
		}, "apply only to a multi-tenant issuer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ic := base
			tc.mod(&ic)
			err := Config{Settings: Settings{Issuers: []IssuerConfig{ic}}}.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want %q, got %v", tc.want, err)
			}
		})
	}
	if err := (Config{Settings: Settings{Issuers: []IssuerConfig{base}}}).Validate(); err != nil {
		t.Fatalf("valid template refused: %v", err)
	}
	// An unreadable tenants_file fails New.
	ic := base
	ic.Tenants, ic.TenantsFile = nil, filepath.Join(t.TempDir(), "missing")
	if _, err := New(context.Background(), Config{Settings: Settings{Issuers: []IssuerConfig{ic}}}); err == nil || !strings.Contains(err.Error(), "tenants_file") {
		t.Fatalf("missing tenants_file: %v", err)
	}
}

func TestExactIssuerBeforeTemplate(t *testing.T) {
	k := keys(t)
	s := newRealmServer(t)
	s.add(t, "acme", k.rsa, "k1")
	dir := t.TempDir()
	cfg := templateConfig(IssuerConfig{Issuer: s.template(), JWKSURL: s.URL + "/realms/{tenant}/jwks", Tenants: []string{"*"}}, nil)
	// The exact issuer for realm "acme" uses another key: it wins.
	cfg.Issuers = append(cfg.Issuers, IssuerConfig{Issuer: s.iss("acme"), Audiences: []string{aud}, PublicKeyFile: writeFile(t, dir, "k.pem", pemPublic(t, &k.rsa2.PublicKey))})
	v := newVerifier(t, cfg)
	if _, e := identityOf(v.Verify(t0ctx, Bearer(realmToken(t, s, "acme", k.rsa2, "", map[string]any{"tenant_id": "acme"})))); e != nil {
		t.Fatalf("exact issuer: %v", e)
	}
	if s.total.Load() != 0 {
		t.Fatal("the template was consulted for an exact issuer")
	}
}

// TestTemplateCachedTokenOfRemovedTenant: a token verified (and cached)
// for a tenant is refused once the tenant leaves tenants_file, and once
// its key set was evicted it is verified afresh.
func TestTemplateCachedTokenOfRemovedTenant(t *testing.T) {
	k := keys(t)
	s := newRealmServer(t)
	for _, r := range []string{"acme", "globex", "initech"} {
		s.add(t, r, k.rsa, "k1")
	}
	path := filepath.Join(t.TempDir(), "tenants.txt")
	if err := os.WriteFile(path, []byte("acme\nglobex\ninitech\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := templateConfig(IssuerConfig{Issuer: s.template(), JWKSURL: s.URL + "/realms/{tenant}/jwks", TenantsFile: path, MaxTenants: 2}, nil)
	cfg.TokenCache = entries(100)
	obs := &countingObserver{}
	cfg.CacheObserver = obs
	v := newVerifier(t, cfg)
	acme := realmToken(t, s, "acme", k.rsa, "k1", nil)
	for range 2 {
		if _, e := identityOf(v.Verify(t0ctx, Bearer(acme))); e != nil {
			t.Fatal(e)
		}
	}
	if obs.hits.Load() != 1 {
		t.Fatalf("cache hits %d, want 1", obs.hits.Load())
	}
	// Evict acme (max_tenants 2): its cached token is verified afresh.
	for _, r := range []string{"globex", "initech"} {
		if _, e := identityOf(v.Verify(t0ctx, Bearer(realmToken(t, s, r, k.rsa, "k1", nil)))); e != nil {
			t.Fatal(e)
		}
	}
	hits := obs.hits.Load()
	if _, e := identityOf(v.Verify(t0ctx, Bearer(acme))); e != nil {
		t.Fatal(e)
	}
	if obs.hits.Load() != hits {
		t.Fatal("a token of an evicted tenant was served from the cache")
	}
	if err := os.WriteFile(path, []byte("globex\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "acme refused", func() bool {
		_, e := identityOf(v.Verify(t0ctx, Bearer(acme)))
		return e != nil && e.Reason == audit.ReasonUnknownIssuer
	})
}
