package keysource

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/module/audit"
	"github.com/tenantgate/tenantgate/module/verify/verr"
)

// failures counts temporary IdP failures as the gate's metric would.
type failures struct {
	events
	fmu sync.Mutex
	n   map[string]int // "issuer class"
}

func (f *failures) IdPTemporaryFailure(issuer, class string) {
	f.fmu.Lock()
	defer f.fmu.Unlock()
	f.n[issuer+" "+class]++
}

func (f *failures) count(key string) int {
	f.fmu.Lock()
	defer f.fmu.Unlock()
	return f.n[key]
}

// clock is a settable Env.Now.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func wantTemporary(t *testing.T, e *verr.Error, detail string, retry time.Duration) {
	t.Helper()
	if e == nil || e.Reason != audit.ReasonKeysUnavailable || !strings.Contains(e.Detail, detail) || e.RetryAfter != retry {
		t.Fatalf("want keys_unavailable %q, Retry-After %s; got %+v", detail, retry, e)
	}
}

func TestTemporaryFailuresAreNotUnknownTenants(t *testing.T) {
	s := newIdP(t)
	obs := &failures{n: map[string]int{}}
	clk := &clock{now: time.Unix(1_000_000, 0)}
	e := env(t, obs)
	e.Now = clk.Now
	tmpl, err := NewTemplate(TemplateSpec{Spec: Spec{Issuer: s.URL + "/realms/{tenant}", JWKSURL: s.URL + "/realms/{tenant}/jwks"},
		Tenants: []string{"*"}}, e)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.Start()
	t.Cleanup(tmpl.Close)
	ctx := context.Background()
	lookup := func(tenant string) *verr.Error {
		_, e := tmpl.Lookup(ctx, s.URL+"/realms/"+tenant, tenant, "")
		return e
	}

	// 429 with the IdP's Retry-After: 503, honoured, no fetch until then,
	// and the tenant passes as soon as the IdP answers again.
	s.set("/realms/acme/jwks", nil, http.StatusTooManyRequests)
	s.setRetry("/realms/acme/jwks", "3")
	wantTemporary(t, lookup("acme"), "(429)", 3*time.Second)
	hits := s.hits.Load()
	clk.add(time.Second)
	wantTemporary(t, lookup("acme"), "(429)", 2*time.Second)
	if s.hits.Load() != hits {
		t.Fatal("a remembered temporary failure fetched again")
	}
	s.set("/realms/acme/jwks", jwks(t, "a"), 0)
	clk.add(2 * time.Second)
	if e := lookup("acme"); e != nil {
		t.Fatalf("after recovery: %v", e)
	}
	// A huge Retry-After is bounded.
	s.set("/realms/busy/jwks", nil, http.StatusTooManyRequests)
	s.setRetry("/realms/busy/jwks", "86400")
	wantTemporary(t, lookup("busy"), "(429)", maxIdPRetryAfter)

	// A WAF's 403 and a 5xx: temporary, backoff 1 s then 2 s.
	s.set("/realms/waf/jwks", nil, http.StatusForbidden)
	wantTemporary(t, lookup("waf"), "(4xx)", time.Second)
	clk.add(time.Second)
	wantTemporary(t, lookup("waf"), "(4xx)", 2*time.Second)
	s.set("/realms/down/jwks", nil, http.StatusBadGateway)
	wantTemporary(t, lookup("down"), "(5xx)", time.Second)

	// 404 and 410: unknown, remembered for a minute with no fetch.
	for _, code := range []int{http.StatusNotFound, http.StatusGone} {
		s.set("/realms/gone/jwks", nil, code)
		clk.add(NegativeTTLUnknown)
		if e := lookup("gone"); e == nil || e.Reason != audit.ReasonUnknownIssuer {
			t.Fatalf("%d: %v", code, e)
		}
		hits := s.hits.Load()
		if e := lookup("gone"); e == nil || e.Reason != audit.ReasonUnknownIssuer || s.hits.Load() != hits {
			t.Fatalf("%d remembered: %v", code, e)
		}
	}

	iss := tmpl.Issuer()
	// Outcomes are reported just after the requests waiting on a fetch
	// were answered: wait for the counts.
	waitFor(t, "the failures counted", func() bool {
		// At least: a fetch retried by a refresher under load counts too.
		return obs.count(iss+" 429") >= 2 && obs.count(iss+" 4xx") >= 2 && obs.count(iss+" 5xx") >= 1
	})
	if obs.count(iss+" invalid") != 0 || obs.count(iss+" ") != 0 {
		t.Fatal("an invalid or unnamed class counted")
	}
	obs.fmu.Lock()
	defer obs.fmu.Unlock()
	for k := range obs.n {
		if !strings.HasPrefix(k, iss+" ") {
			t.Fatalf("a series per tenant: %q", k)
		}
	}
}

func TestDiscoveryIssuerMismatchIsUnknown(t *testing.T) {
	s := newIdP(t)
	s.set("/realms/evil/.well-known/openid-configuration", mustJSON(t, map[string]string{
		"issuer": s.URL + "/realms/other", "jwks_uri": s.URL + "/realms/evil/jwks"}), 0)
	tmpl, err := NewTemplate(TemplateSpec{Spec: Spec{Issuer: s.URL + "/realms/{tenant}",
		OIDCDiscovery: s.URL + "/realms/{tenant}/.well-known/openid-configuration"}, Tenants: []string{"*"}}, env(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tmpl.Close)
	if _, e := tmpl.Lookup(context.Background(), s.URL+"/realms/evil", "evil", ""); e == nil || e.Reason != audit.ReasonUnknownIssuer {
		t.Fatalf("issuer mismatch: %v", e)
	}
}

func TestTimeoutAndRefusedAreTemporary(t *testing.T) {
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	t.Cleanup(slow.Close)
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	obs := &failures{n: map[string]int{}}
	for _, c := range []struct{ base, detail, class string }{
		{slow.URL, "timed out", ClassTimeout},
		{deadURL, "could not be reached", ClassNetwork},
	} {
		e := env(t, obs)
		e.Client = &http.Client{Timeout: 50 * time.Millisecond}
		tmpl, err := NewTemplate(TemplateSpec{Spec: Spec{Issuer: c.base + "/r/{tenant}", JWKSURL: c.base + "/r/{tenant}/jwks"},
			Tenants: []string{"*"}}, e)
		if err != nil {
			t.Fatal(err)
		}
		_, ve := tmpl.Lookup(context.Background(), c.base+"/r/acme", "acme", "")
		wantTemporary(t, ve, c.detail, time.Second)
		waitFor(t, c.class+" counted", func() bool { return obs.count(tmpl.Issuer()+" "+c.class) >= 1 })
		tmpl.Close()
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	for v, want := range map[string]time.Duration{
		"": 0, "x": 0, "-5": 0, "4": 4 * time.Second, "100": maxIdPRetryAfter,
		now.Add(7 * time.Second).UTC().Format(http.TimeFormat): 7 * time.Second,
	} {
		if got := parseRetryAfter(v, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %s, want %s", v, got, want)
		}
	}
	if describe(ClassInvalid) == describe(ClassServer) {
		t.Fatal("classes described alike")
	}
}

// A plain issuer with no keys says in its 503 why its fetches fail.
func TestLastFailureNamesTheClass(t *testing.T) {
	s := newIdP(t)
	s.set("/jwks", nil, http.StatusServiceUnavailable)
	r, err := NewRemote(Spec{Issuer: s.URL, JWKSURL: s.URL + "/jwks"}, env(t, nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	waitFor(t, "a failed fetch", func() bool { return r.LastFailure() != "" })
	if got := r.LastFailure(); !strings.Contains(got, "(5xx)") {
		t.Fatalf("5xx: %q", got)
	}
	s.set("/jwks", nil, http.StatusNotFound)
	waitFor(t, "a 404", func() bool { return strings.Contains(r.LastFailure(), "status 404") })
	s.set("/jwks", jwks(t, "a"), 0)
	waitFor(t, "recovery", func() bool { return r.LastFailure() == "" && r.Keys() != nil })
}
