package tenantgate

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tenantgate/tenantgate/module/audit"
	"github.com/tenantgate/tenantgate/module/verify"
)

// fakeVerifier stands in for module/verify: it returns a fixed identity
// and remembers the last request it saw.
type fakeVerifier struct {
	id   *verify.Identity
	err  *verify.Error
	seen *verify.Request
}

func (f *fakeVerifier) Verify(_ context.Context, req *verify.Request) (verify.Result, *verify.Error) {
	f.seen = req
	return verify.Result{Identity: f.id, Binding: verify.BindingBearer}, f.err
}

func fakeGate(t *testing.T, c *captured, mutate func(*Gate)) (*Gate, *fakeVerifier) {
	t.Helper()
	g := newTestGateWith(t, c.l, mutate)
	f := &fakeVerifier{id: &verify.Identity{Tenant: "acme", Subject: "alice", Issuer: testIssuer}}
	g.verifier = f
	return g, f
}

func TestExchangeFinishesOnceWhenNextPanics(t *testing.T) {
	c := newCaptured()
	g, _ := fakeGate(t, c, nil)
	r := newTestRequest(context.Background(), "GET", "/api/x", "tok")
	func() {
		defer func() {
			if p := recover(); p != "boom" {
				t.Fatalf("panic %v was not passed on", p)
			}
		}()
		_ = g.ServeHTTP(httptest.NewRecorder(), r, caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			panic("boom")
		}))
	}()
	if rec := c.only(t); rec["status"] != 500.0 || rec["decision"] != "allow" {
		t.Fatalf("record %v", rec)
	}
}

func TestExchangeAnswersHandlerErrorsWithProblem(t *testing.T) {
	for _, tc := range []struct {
		name    string
		next    caddyhttp.HandlerFunc
		status  int
		problem bool
	}{
		{"413 before anything was written", func(w http.ResponseWriter, r *http.Request) error {
			return caddyhttp.Error(http.StatusRequestEntityTooLarge, &http.MaxBytesError{Limit: 1})
		}, 413, true},
		{"a plain error is a 500", func(w http.ResponseWriter, r *http.Request) error {
			return errors.New("no status")
		}, 500, true},
		{"an error after the header went out is left alone", func(w http.ResponseWriter, r *http.Request) error {
			w.WriteHeader(http.StatusOK)
			return caddyhttp.Error(http.StatusBadGateway, errors.New("mid-body"))
		}, 502, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCaptured()
			g, _ := fakeGate(t, c, nil)
			w := httptest.NewRecorder()
			err := g.ServeHTTP(w, newTestRequest(context.Background(), "GET", "/api/x", "tok"), tc.next)
			if err == nil {
				t.Fatal("the error must still reach Caddy (its error log, handle_errors)")
			}
			if rec := c.only(t); rec["status"] != float64(tc.status) {
				t.Fatalf("record %v, want status %d", rec, tc.status)
			}
			if !tc.problem {
				if w.Header().Get("Content-Type") == "application/problem+json" {
					t.Fatal("a problem was written after the response began")
				}
				return
			}
			var p statusProblem
			if w.Code != tc.status || w.Header().Get("Content-Type") != "application/problem+json" || json.Unmarshal(w.Body.Bytes(), &p) != nil {
				t.Fatalf("%d %v %s", w.Code, w.Header(), w.Body)
			}
			if p.Status != tc.status || p.Title != http.StatusText(tc.status) || p.Detail == "" || p.RequestID == "" || p.RequestID != w.Header().Get(HeaderRequestID) {
				t.Fatalf("problem %+v", p)
			}
		})
	}
	// With handle_errors routes on the site, those answer: the gate writes nothing.
	c := newCaptured()
	g, _ := fakeGate(t, c, nil)
	g.siteHandlesErrors = true
	w := httptest.NewRecorder()
	_ = g.ServeHTTP(w, newTestRequest(context.Background(), "GET", "/api/x", "tok"), caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		return caddyhttp.Error(http.StatusRequestEntityTooLarge, errors.New("big"))
	}))
	if w.Body.Len() != 0 || c.only(t)["status"] != 413.0 {
		t.Fatalf("body %q", w.Body)
	}
}

// decide reads the request and changes nothing: the credential was taken
// by begin, and the verifier sees the proofs begin kept.
func TestDecideOnlyReads(t *testing.T) {
	c := newCaptured()
	g, f := fakeGate(t, c, nil)
	r := newTestRequest(context.Background(), "GET", "/api/x", "")
	r.Header.Set("Authorization", "DPoP tok")
	r.Header.Set("DPoP", "proof")
	x := g.begin(httptest.NewRecorder(), r)
	before := r.Header.Clone()
	v := g.decide(r, &x.cred)
	if v.reason != audit.ReasonOK || !v.dpop {
		t.Fatalf("verdict %+v", v)
	}
	if len(r.Header) != len(before) {
		t.Fatalf("decide changed the headers: %v -> %v", before, r.Header)
	}
	if r.Header.Get("Authorization") != "" || r.Header.Get("DPoP") != "" {
		t.Fatalf("begin left the credential on the request: %v", r.Header)
	}
	if f.seen == nil || f.seen.Token != "tok" || f.seen.Header.Get("DPoP") != "proof" {
		t.Fatalf("the verifier saw %+v", f.seen)
	}
}

func TestTakeCredential(t *testing.T) {
	g := &Gate{TokenCookie: "tg", TokenQuery: "access_token"}
	for _, tc := range []struct {
		name       string
		auth       []string
		wantToken  string
		wantReason audit.Reason
		kept       []string
	}{
		{"bearer any case", []string{"bEaReR  abc "}, "abc", "", nil},
		{"dpop", []string{"DPOP abc"}, "abc", "", nil},
		{"basic stays", []string{"Basic dTpw"}, "", audit.ReasonMissingToken, []string{"Basic dTpw"}},
		{"empty bearer is taken", []string{"Bearer "}, "", audit.ReasonMissingToken, nil},
		{"two: tokens go, basic stays", []string{"Basic dTpw", "Bearer abc", "dpop def"}, "", audit.ReasonMalformedToken, []string{"Basic dTpw"}},
		{"two tokens", []string{"Bearer abc", "Bearer def"}, "", audit.ReasonMalformedToken, nil},
		{"cookie", nil, "from-cookie", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/x?access_token=from-query", nil)
			r.Header["Authorization"] = tc.auth
			r.Header.Set("Cookie", "tg=from-cookie; a=b")
			c := g.takeCredential(r)
			if c.token != tc.wantToken || c.reason != tc.wantReason {
				t.Fatalf("credential %+v", c)
			}
			if got := r.Header["Authorization"]; strings.Join(got, "|") != strings.Join(tc.kept, "|") {
				t.Fatalf("Authorization left: %q, want %q", got, tc.kept)
			}
			if r.Header.Get("Cookie") != "a=b" || r.URL.RawQuery != "" {
				t.Fatalf("cookie %q query %q", r.Header.Get("Cookie"), r.URL.RawQuery)
			}
		})
	}
}

func TestCertPeers(t *testing.T) {
	peers, err := parseCertPeers([]string{"10.0.0.0/8", "192.0.2.7", "fd00::/8"})
	if err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string]bool{
		"10.1.2.3:1":          true,
		"[::ffff:10.9.9.9]:1": true, // an IPv4 peer on a dual-stack listener
		"192.0.2.7:1":         true,
		"192.0.2.8:1":         false,
		"[fd00::1]:1":         true,
		"[2001:db8::1]:1":     false,
		"not an address":      false,
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = addr
		// X-Forwarded-For never counts: only the immediate peer.
		r.Header.Set("X-Forwarded-For", "10.0.0.1")
		if got := peers.trusts(r); got != want {
			t.Errorf("%s: trusted %v, want %v", addr, got, want)
		}
	}
	if certPeers(nil).trusts(httptest.NewRequest("GET", "/", nil)) {
		t.Error("no client_cert_from trusts nobody")
	}
	for _, bad := range []string{"10.0.0.0/33", "proxy.internal", ""} {
		if _, err := parseCertPeers([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if got := parseClientCert(nil); got == nil || len(got) != 0 {
		t.Error("no header from a listed peer must be an empty, non-nil certificate")
	}
}

// Without dpop_public_url a DPoP request passes only for one of the site's
// host names; a gate under a server with none warns at Provision.
func TestDPoPHostMustBeTheSites(t *testing.T) {
	srv := &caddyhttp.Server{Routes: caddyhttp.RouteList{
		{MatcherSets: caddyhttp.MatcherSets{{&caddyhttp.MatchHost{"api.example"}}}},
		{MatcherSets: caddyhttp.MatcherSets{{caddyhttp.MatchHost{"*.tenants.example"}}}},
		{}, // a catch-all route
	}}
	hosts, ok := serverHosts(srv)
	if !ok || len(hosts) != 2 {
		t.Fatalf("hosts %v %v", hosts, ok)
	}
	for host, want := range map[string]bool{
		"api.example": true, "API.example:8443": true, "acme.tenants.example": true,
		"other-rs.example": false, "api.example.evil": false,
	} {
		r := newTestRequest(context.Background(), "GET", "/", "")
		r.Host = host
		if got := hosts.serves(r); got != want {
			t.Errorf("Host %s: served %v, want %v", host, got, want)
		}
	}
	if hosts.serves(httptest.NewRequest("GET", "http://api.example/", nil)) {
		t.Error("without a replacer the matchers cannot run: not served")
	}
	if _, ok := serverHosts(nil); ok {
		t.Error("no server, no hosts")
	}

	// Provision under a catch-all server: a warning.
	core, logs := observer.New(zapcore.WarnLevel)
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.WithValue(context.Background(), caddyhttp.ServerCtxKey,
		&caddyhttp.Server{Routes: caddyhttp.RouteList{{}}})})
	defer cancel()
	g := &Gate{logger: zap.New(core)}
	g.provisionSiteHosts(ctx)
	if logs.FilterMessageSnippet("dpop_public_url").Len() != 1 {
		t.Fatalf("no warning: %v", logs.All())
	}

	// A DPoP request naming a Host the site does not serve never reaches
	// the proof check with that host.
	c := newCaptured()
	gate, f := fakeGate(t, c, nil)
	f.id, f.err = nil, &verify.Error{Reason: audit.ReasonBadDPoPProof, Detail: "htu"}
	gate.siteHosts = hosts
	r := newTestRequest(context.Background(), "GET", "http://other-rs.example/api/x", "")
	r.Header.Set("Authorization", "DPoP tok")
	w := httptest.NewRecorder()
	_ = gate.ServeHTTP(w, r, caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		t.Fatal("forwarded")
		return nil
	}))
	if f.seen.URL.Host != "" || w.Code != 401 || !strings.Contains(w.Body.String(), "not a host name of this site") {
		t.Fatalf("verifier saw host %q; answer %d %s", f.seen.URL.Host, w.Code, w.Body)
	}
	// The site's own name keeps its host.
	r = newTestRequest(context.Background(), "GET", "http://api.example/api/x", "")
	r.Header.Set("Authorization", "DPoP tok")
	_ = gate.ServeHTTP(httptest.NewRecorder(), r, nil)
	if f.seen.URL.Host != "api.example" {
		t.Fatalf("verifier saw host %q", f.seen.URL.Host)
	}
}
