package keysource

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/tenantgate/tenantgate/module/audit"
)

var (
	ecOnce sync.Once
	ecKey  *ecdsa.PrivateKey
)

func testKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	ecOnce.Do(func() {
		var err error
		if ecKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			panic(err)
		}
	})
	return ecKey
}

// jwks is a JWKS holding the test key under each kid.
func jwks(t testing.TB, kids ...string) []byte {
	t.Helper()
	set := jwk.NewSet()
	for _, kid := range kids {
		k, err := jwk.FromRaw(&testKey(t).PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		_ = k.Set(jwk.KeyIDKey, kid)
		_ = k.Set(jwk.AlgorithmKey, "ES256")
		_ = set.AddKey(k)
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// idp serves JWKS and discovery documents by path and counts requests.
type idp struct {
	*httptest.Server
	mu    sync.Mutex
	docs  map[string][]byte
	codes map[string]int
	retry map[string]string // Retry-After by path
	hits  atomic.Int64
}

func newIdP(t testing.TB) *idp {
	s := &idp{docs: map[string][]byte{}, codes: map[string]int{}, retry: map[string]string{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		s.mu.Lock()
		body, code, ra := s.docs[r.URL.Path], s.codes[r.URL.Path], s.retry[r.URL.Path]
		s.mu.Unlock()
		if ra != "" {
			w.Header().Set("Retry-After", ra)
		}
		if code != 0 {
			w.WriteHeader(code)
			return
		}
		if body == nil {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *idp) set(path string, body []byte, code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.docs[path], s.codes[path] = body, code
}

func (s *idp) setRetry(path, v string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.retry[path] = v
}

type events struct {
	mu                      sync.Mutex
	refresh, inUse, tenants []string
}

func (e *events) JWKSRefresh(issuer string, ok bool, keys int, _ time.Time) {
	e.add(&e.refresh, issuer, ok, keys)
}
func (e *events) JWKSInUse(issuer string, keys int, last time.Time) {
	e.add(&e.inUse, issuer, !last.IsZero(), keys)
}
func (e *events) IssuerTenants(issuer string, tenants, keys int) {
	e.add(&e.tenants, issuer, tenants > 0, tenants*1000+keys)
}
func (e *events) add(to *[]string, issuer string, ok bool, n int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	*to = append(*to, strings.Join([]string{issuer, map[bool]string{true: "ok", false: "no"}[ok], itoa(n)}, " "))
}
func (e *events) last(of *[]string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(*of) == 0 {
		return ""
	}
	return (*of)[len(*of)-1]
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func env(t testing.TB, obs Observer) Env {
	feeds := NewFeeds()
	t.Cleanup(feeds.Close)
	return Env{Feeds: feeds, Observer: obs, RefetchGap: 10 * time.Millisecond}
}

func TestStaticSources(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	der, err := x509.MarshalPKIXPublicKey(&testKey(t).PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pemFile := write("k.pem", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	obs := &events{}
	e := env(t, obs)
	for _, tc := range []struct {
		name string
		spec Spec
		keys int
		err  string
	}{
		{"jwks_file", Spec{Issuer: "f", JWKSFile: write("k.json", jwks(t, "a", "b")), Algorithms: []string{"ES256"}}, 2, ""},
		{"public_key_file", Spec{Issuer: "p", PublicKeyFile: pemFile, Algorithms: []string{"ES256"}}, 1, ""},
		{"hmac_secret", Spec{Issuer: "h", HMACSecret: strings.Repeat("s", 32), Algorithms: []string{"HS256"}}, 1, ""},
		{"no key fits", Spec{Issuer: "x", PublicKeyFile: pemFile, Algorithms: []string{"RS256"}}, 0, "no key fits the allowed algorithms (RS256)"},
		{"missing file", Spec{Issuer: "m", JWKSFile: filepath.Join(dir, "none.json")}, 0, "jwks_file"},
		{"bad PEM", Spec{Issuer: "b", PublicKeyFile: write("bad.pem", []byte("nope"))}, 0, "no PEM block"},
		{"file too large", Spec{Issuer: "l", JWKSFile: write("big.json", make([]byte, 1<<20+1))}, 0, "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, err := New(tc.spec, e)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if n := len(src.Keys().All); n != tc.keys {
				t.Fatalf("%d keys", n)
			}
			if ks, retry := src.UnknownKid(context.Background(), "zz"); ks != src.Keys() || retry != 0 || src.Unavailable() != 0 {
				t.Fatal("a static source never refetches")
			}
			src.Announce()
			if got := obs.last(&obs.refresh); got != tc.spec.Issuer+" ok "+itoa(tc.keys) {
				t.Fatalf("announced %q", got)
			}
			src.Close()
		})
	}
	if _, err := New(Spec{Issuer: "r", JWKSURL: "https://idp.example/jwks"}, Env{}); err == nil || !strings.Contains(err.Error(), "Env.Feeds") {
		t.Fatalf("a remote source without Feeds: %v", err)
	}
}

func TestRemoteSourceLifecycle(t *testing.T) {
	s := newIdP(t)
	s.set("/jwks", jwks(t, "k1"), 0)
	s.set("/.well-known/openid-configuration", mustJSON(t, map[string]string{"issuer": s.URL, "jwks_uri": s.URL + "/jwks"}), 0)
	obs := &events{}
	e := env(t, obs)
	for _, spec := range []Spec{{Issuer: s.URL, JWKSURL: s.URL + "/jwks"}, {Issuer: s.URL, OIDCDiscovery: s.URL + "/.well-known/openid-configuration"}} {
		src, err := New(spec, e)
		if err != nil {
			t.Fatal(err)
		}
		if src.Keys() == nil && src.Unavailable() <= 0 {
			t.Fatal("no keys yet: a retry time is due")
		}
		waitFor(t, "keys", func() bool { return src.Keys() != nil })
		src.Announce()
		if got := obs.last(&obs.inUse); got != s.URL+" ok 1" {
			t.Fatalf("in use: %q", got)
		}
		// A new kid: the refetch finds it.
		s.set("/jwks", jwks(t, "k1", "k2"), 0)
		src.(*Remote).Backdate(time.Hour)
		ks, retry := src.UnknownKid(context.Background(), "k2")
		if retry != 0 || ks.ByKid["k2"] == nil {
			t.Fatalf("refetch for a new kid: retry %s", retry)
		}
		last, next := src.(*Remote).Schedule()
		if !next.After(last) {
			t.Fatal("the next refresh is not scheduled after the last fetch")
		}
		src.Close()
		src.Close() // idempotent
		s.set("/jwks", jwks(t, "k1"), 0)
	}
	if e.Feeds.Len() != 2 {
		t.Fatalf("feeds held: %d (one per issuer and URL)", e.Feeds.Len())
	}
}

func TestDiscoveryProblems(t *testing.T) {
	s := newIdP(t)
	s.set("/jwks", jwks(t, "k1"), 0)
	e := env(t, nil)
	for name, doc := range map[string]map[string]string{
		"other issuer":  {"issuer": "https://other.example", "jwks_uri": s.URL + "/jwks"},
		"no jwks_uri":   {"issuer": s.URL},
		"http jwks_uri": {"issuer": s.URL, "jwks_uri": "http://idp.example/jwks"},
	} {
		path := "/" + strings.ReplaceAll(name, " ", "-")
		s.set(path, mustJSON(t, doc), 0)
		r, err := NewRemote(Spec{Issuer: s.URL, OIDCDiscovery: s.URL + path}, e, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.fetchFirst(context.Background()); err == nil {
			t.Errorf("%s: accepted", name)
		}
		r.Close()
	}
	s.set("/500", nil, http.StatusInternalServerError)
	r, _ := NewRemote(Spec{Issuer: s.URL, JWKSURL: s.URL + "/500"}, e, nil)
	var se *statusError
	if err := r.fetchFirst(context.Background()); !errors.As(err, &se) || se.code != 500 {
		t.Fatalf("status error: %v", err)
	}
	r.Close()
}

func TestTemplateTenants(t *testing.T) {
	s := newIdP(t)
	s.set("/realms/acme/jwks", jwks(t, "a"), 0)
	s.set("/realms/globex/jwks", jwks(t, "g"), 0)
	obs := &events{}
	e := env(t, obs)
	tmpl, err := NewTemplate(TemplateSpec{Spec: Spec{Issuer: s.URL + "/realms/{tenant}", JWKSURL: s.URL + "/realms/{tenant}/jwks"},
		Tenants: []string{"*"}, MaxTenants: 1}, e)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.Start()
	if tmpl.Issuer() != s.URL+"/realms/{tenant}" {
		t.Fatal(tmpl.Issuer())
	}
	for iss, want := range map[string]bool{s.URL + "/realms/acme": true, s.URL + "/realms/a/b": false, s.URL + "/realms/": false, "https://x/realms/acme": false} {
		if _, ok := tmpl.Match(iss); ok != want {
			t.Errorf("Match(%q) = %v", iss, ok)
		}
	}
	ctx := context.Background()
	acme, e1 := tmpl.Lookup(ctx, s.URL+"/realms/acme", "acme", "")
	if e1 != nil || acme.Source().Keys().ByKid["a"] == nil || !tmpl.Live(acme) {
		t.Fatalf("acme: %v", e1)
	}
	if got := obs.last(&obs.tenants); got != tmpl.Issuer()+" ok 1001" {
		t.Fatalf("tenant gauges: %q", got)
	}
	// max_tenants 1: globex pushes acme out, and acme's state stops passing.
	if _, e2 := tmpl.Lookup(ctx, s.URL+"/realms/globex", "globex", ""); e2 != nil {
		t.Fatal(e2)
	}
	if tmpl.Live(acme) || tmpl.Len() != 1 || tmpl.KeyCount() != 1 {
		t.Fatalf("eviction: live %v, held %d, keys %d", tmpl.Live(acme), tmpl.Len(), tmpl.KeyCount())
	}
	// 404: unknown tenant, remembered without a new fetch.
	_, e3 := tmpl.Lookup(ctx, s.URL+"/realms/nobody", "nobody", "")
	hits := s.hits.Load()
	_, e4 := tmpl.Lookup(ctx, s.URL+"/realms/nobody", "nobody", "")
	if e3 == nil || e3.Reason != audit.ReasonUnknownIssuer || e4 != e3 || s.hits.Load() != hits {
		t.Fatalf("unknown tenant: %v then %v, %d fetches", e3, e4, s.hits.Load()-hits)
	}
	// 5xx: temporary.
	s.set("/realms/down/jwks", nil, http.StatusBadGateway)
	if _, e5 := tmpl.Lookup(ctx, s.URL+"/realms/down", "down", ""); e5 == nil || e5.Reason != audit.ReasonKeysUnavailable {
		t.Fatalf("IdP down: %v", e5)
	}
	// A caller that went away.
	gone, cancel := context.WithCancel(ctx)
	cancel()
	s.set("/realms/slow/jwks", jwks(t, "s"), 0)
	if _, e6 := tmpl.Lookup(gone, s.URL+"/realms/slow", "slow", ""); e6 == nil || e6.Reason != audit.ReasonKeysUnavailable {
		t.Fatalf("cancelled caller: %v", e6)
	}
	tmpl.Close()
	tmpl.Close()
	if tmpl.Len() != 0 {
		t.Fatal("Close keeps tenants held")
	}
	if _, e7 := tmpl.Lookup(ctx, s.URL+"/realms/acme", "acme", ""); e7 == nil {
		t.Fatal("a closed template admitted a tenant")
	}
}

func TestTemplateListedTenantsAndFile(t *testing.T) {
	s := newIdP(t)
	s.set("/t/acme/jwks", jwks(t, "a"), 0)
	path := filepath.Join(t.TempDir(), "tenants")
	if err := os.WriteFile(path, []byte("# tenants\nacme\n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tmpl, err := NewTemplate(TemplateSpec{Spec: Spec{Issuer: s.URL + "/t/{tenant}", JWKSURL: s.URL + "/t/{tenant}/jwks"},
		Tenants: []string{"globex"}, TenantsFile: path}, env(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	tmpl.Start()
	defer tmpl.Close()
	if _, e := tmpl.Lookup(context.Background(), s.URL+"/t/initech", "initech", ""); e == nil || e.Reason != audit.ReasonUnknownIssuer {
		t.Fatalf("a tenant not listed: %v", e)
	}
	acme, e := tmpl.Lookup(context.Background(), s.URL+"/t/acme", "acme", "")
	if e != nil {
		t.Fatal(e)
	}
	// acme leaves the file: its state stops passing at the next poll.
	if err := os.WriteFile(path, []byte("initech\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "acme to leave", func() bool { return !tmpl.Live(acme) })
	for _, bad := range []TemplateSpec{
		{Spec: Spec{Issuer: "https://x/no-placeholder"}},
		{Spec: Spec{Issuer: "https://x/{tenant}"}, TenantsFile: filepath.Join(t.TempDir(), "missing")},
	} {
		if _, err := NewTemplate(bad, Env{}); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	if err := os.WriteFile(path, []byte("bad name!\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewTemplate(TemplateSpec{Spec: Spec{Issuer: "https://x/{tenant}"}, TenantsFile: path}, Env{}); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("bad tenants file: %v", err)
	}
}

func TestCheckFetchURL(t *testing.T) {
	for raw, ok := range map[string]bool{
		"https://idp.example/jwks": true, "http://127.0.0.1:8080/k": true, "http://localhost/k": true, "http://[::1]/k": true,
		"http://idp.example/jwks": false, "ftp://idp.example/k": false, "/relative": false, "https://%zz": false,
	} {
		if err := CheckFetchURL(raw); (err == nil) != ok {
			t.Errorf("%s: %v", raw, err)
		}
	}
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
