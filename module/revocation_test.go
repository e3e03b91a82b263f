package tenantgate

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tenantgate/tenantgate/module/revocation"
)

// isolatedStore gives a unit gate a revocation store of its own (a prefix
// no other test uses), so revocations do not leak between tests.
func isolatedStore(t *testing.T) func(*Gate) {
	return func(g *Gate) { g.SharedStorePrefix = "unit-" + t.Name() }
}

func revoke(t *testing.T, g *Gate, body string) revocation.Entry {
	t.Helper()
	e, err := revocation.ParseRequest(strings.NewReader(body), time.Now(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := g.revocations.Revoke(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	return e
}

func TestRevokedTokenIsRefusedCacheHitsIncluded(t *testing.T) {
	for _, tc := range []struct{ name, body string }{
		{"jti", `{"jti":"j1"}`},
		{"jti and iss", `{"jti":"j1","iss":"` + unitIssuer + `"}`},
		{"sub", `{"sub":"alice"}`},
		{"tenant", `{"tenant":"acme"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := newUnitGate(t, isolatedStore(t))
			tok := u.token(t, "acme")
			get := func() *httptest.ResponseRecorder {
				r := httptest.NewRequest("GET", "/api/whoami", nil)
				r.Header.Set("Authorization", "Bearer "+tok)
				w, _ := u.serve(r, &upstream{})
				return w
			}
			if w := get(); w.Code != 200 {
				t.Fatalf("before: %d", w.Code)
			}
			if u.g.keys.CachedTokens() != 1 {
				t.Fatal("token not cached")
			}
			time.Sleep(1100 * time.Millisecond) // iat is in whole seconds: revoke a token issued before now
			revoke(t, u.g, tc.body)
			w := get()
			if w.Code != 401 || problemOf(t, w).Reason != "token_revoked" {
				t.Fatalf("after: %d %s", w.Code, w.Body)
			}
			if got := w.Header().Values("WWW-Authenticate"); len(got) == 0 || !strings.Contains(got[0], `Bearer realm="tenantgate", error="invalid_token"`) {
				t.Fatalf("WWW-Authenticate %q", got)
			}
			// Another tenant's and a newer token are untouched (except by jti,
			// which every unit token shares).
			if tc.name == "tenant" || tc.name == "sub" {
				// A token of the revocation's own second counts as older.
				time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second + 10*time.Millisecond)))
				tok = u.token(t, "acme")
				if w := get(); w.Code != 200 {
					t.Fatalf("a token issued after the revocation: %d", w.Code)
				}
			}
		})
	}
}

func TestRevokedDPoPRequestGetsTheDPoPChallenge(t *testing.T) {
	u := newUnitGate(t, isolatedStore(t))
	r := httptest.NewRequest("GET", "/api/whoami", nil)
	r.Header.Set("Authorization", "DPoP x")
	w := httptest.NewRecorder()
	u.g.writeProblem(w, "token_revoked", "revoked", "id", true, 0)
	if got := w.Header().Get("WWW-Authenticate"); !strings.HasPrefix(got, "DPoP ") || !strings.Contains(got, `error="invalid_token"`) {
		t.Fatalf("%q", got)
	}
}

func TestReportModeRecordsRevokedAsWouldDeny(t *testing.T) {
	u := newUnitGate(t, func(g *Gate) { isolatedStore(t)(g); g.Mode = ModeReport })
	revoke(t, u.g, `{"jti":"j1"}`)
	r := httptest.NewRequest("GET", "/api/whoami", nil)
	r.Header.Set("Authorization", "Bearer "+u.token(t, "acme"))
	up := &upstream{}
	w, _ := u.serve(r, up)
	if w.Code != 200 || !up.called {
		t.Fatalf("%d", w.Code)
	}
	if up.header.Get("X-Tenant-ID") != "" {
		t.Fatal("a revoked token's identity was injected")
	}
}

func TestStoresAreSharedAcrossConfigs(t *testing.T) {
	a := newUnitGate(t, isolatedStore(t))
	b := newUnitGate(t, isolatedStore(t))
	if a.g.revocations != b.g.revocations {
		t.Fatal("two configs with the same shared_store hold two stores")
	}
	revoke(t, a.g, `{"tenant":"globex"}`)
	_ = a.g.Cleanup()
	if b.g.revocations.Set().Len() != 1 {
		t.Fatal("a config's cleanup dropped the entries another still uses")
	}
}

// The admin API writes to every live store of the process: the names it
// revokes here are used by no other test.
func TestAdminAPI(t *testing.T) {
	u := newUnitGate(t, isolatedStore(t))
	h := adminRevocations{}
	if len(h.Routes()) != 1 || h.Routes()[0].Pattern != "/tenant-gate/revocations" {
		t.Fatal(h.Routes())
	}
	call := func(method, body string) (*httptest.ResponseRecorder, error) {
		r := httptest.NewRequest(method, "/tenant-gate/revocations", strings.NewReader(body))
		r.RemoteAddr = "192.0.2.7:5555"
		w := httptest.NewRecorder()
		return w, h.handle(w, r)
	}
	w, err := call("POST", `{"sub":"admin-api-test-user","reason":"phished"}`)
	if err != nil || w.Code != 201 {
		t.Fatalf("%d %v", w.Code, err)
	}
	var got revocationResponse
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || got.Sub != "admin-api-test-user" || got.Source != "admin_api" || got.Shared || got.Expires.IsZero() {
		t.Fatalf("%s %v", w.Body, err)
	}
	for _, bad := range []string{`{}`, `{"jti":"a","sub":"b"}`, `{"tenant":"a b"}`, `{"jti":"a","x":1}`,
		`{"sub":"s","before":"` + time.Now().Add(time.Hour).Format(time.RFC3339) + `"}`, `{"jti":"` + strings.Repeat("a", 1<<20) + `"}`} {
		_, err := call("POST", bad)
		var apiErr caddy.APIError
		if err == nil || !asAPIError(err, &apiErr) || apiErr.HTTPStatus != 400 {
			t.Errorf("%.40s: %v", bad, err)
		}
	}
	if n := u.g.revocations.Set().Len(); n != 1 {
		t.Fatalf("bad bodies stored entries: %d", n)
	}
	w, err = call("GET", "")
	var list []revocation.Entry
	if err != nil || json.Unmarshal(w.Body.Bytes(), &list) != nil || len(list) == 0 || list[0].Sub != "admin-api-test-user" {
		t.Fatalf("%s %v", w.Body, err)
	}
	if _, err := call("DELETE", ""); err == nil {
		t.Fatal("DELETE allowed")
	}
}

func TestAdminAPIFullIs507(t *testing.T) {
	u := newUnitGate(t, func(g *Gate) { isolatedStore(t)(g); g.RevocationMaxEntries = 1 })
	revoke(t, u.g, `{"jti":"admin-full-first"}`)
	r := httptest.NewRequest("POST", "/tenant-gate/revocations", strings.NewReader(`{"jti":"admin-full-second"}`))
	err := adminRevocations{}.handle(httptest.NewRecorder(), r)
	var apiErr caddy.APIError
	if !asAPIError(err, &apiErr) || apiErr.HTTPStatus != http.StatusInsufficientStorage {
		t.Fatalf("%v", err)
	}
}

func asAPIError(err error, dst *caddy.APIError) bool {
	e, ok := err.(caddy.APIError)
	if ok {
		*dst = e
	}
	return ok
}

func TestSharedStateCaddyfile(t *testing.T) {
	d := caddyfile.NewTestDispenser(`tenant_gate {
		shared_store redis://127.0.0.1:6379/0
		shared_store_prefix fleet-a:
		revocation_retention 48h
		revocation_max_entries 5000
		backchannel_logout_path /oidc/backchannel-logout
		ssf_receiver_path /ssf/events
		dpop_nonce
	}`)
	var g Gate
	if err := g.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	want := SharedState{SharedStore: "redis://127.0.0.1:6379/0", SharedStorePrefix: "fleet-a:", RevocationRetention: caddy.Duration(48 * time.Hour),
		RevocationMaxEntries: 5000, BackchannelLogoutPath: "/oidc/backchannel-logout", SSFReceiverPath: "/ssf/events", DPoPNonce: true}
	if g.SharedState != want {
		t.Fatalf("%+v", g.SharedState)
	}
	raw, _ := json.Marshal(g)
	for _, k := range []string{`"shared_store":`, `"revocation_retention":`, `"dpop_nonce":true`} {
		if !strings.Contains(string(raw), k) {
			t.Errorf("JSON lacks %s: %s", k, raw)
		}
	}
	for _, bad := range []string{"revocation_retention soon", "revocation_retention", "dpop_nonce yes", "shared_store", "revocation_max_entries 0"} {
		var g Gate
		if err := g.UnmarshalCaddyfile(caddyfile.NewTestDispenser("tenant_gate {\n" + bad + "\n}")); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestUnsupportedOptionsFailValidation(t *testing.T) {
	for _, mutate := range []func(*Gate){
		func(g *Gate) { g.BackchannelLogoutPath = "bcl" },
		func(g *Gate) { g.SSFReceiverPath = "/ssf?x" },
		func(g *Gate) { g.RevocationMaxEntries = -1 },
		func(g *Gate) { g.SharedStorePrefix = "a b" },
	} {
		g := Gate{}
		mutate(&g)
		if g.validateSharedState() == nil {
			t.Errorf("%+v validated", g.SharedState)
		}
	}
}

func TestBadSharedStoreURLFailsProvision(t *testing.T) {
	g := &Gate{SharedState: SharedState{SharedStore: "http://user:secret@x"}}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	err := g.provisionRevocations(ctx, 0)
	if err == nil || strings.Contains(err.Error(), "secret") {
		t.Fatalf("%v", err)
	}
}

func TestRevocationMetrics(t *testing.T) {
	u := newUnitGate(t, isolatedStore(t))
	revoke(t, u.g, `{"tenant":"initech"}`)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(revocationMetrics.entries)
	n, err := testutil.GatherAndCount(reg, "tenantgate_revocations")
	if err != nil || n != len(revocation.Kinds) {
		t.Fatalf("%d series, %v", n, err)
	}
	revocationObserver{}.StoreError("write")
	revocationObserver{}.Propagated(time.Millisecond)
	if testutil.ToFloat64(revocationMetrics.storeErrors.WithLabelValues("write")) < 1 {
		t.Fatal("error not counted")
	}
}

func TestSharedStoreURLFromPlaceholder(t *testing.T) {
	t.Setenv("TG_UNIT_BAD_STORE", "http://user:secret@x")
	g := &Gate{SharedState: SharedState{SharedStore: "{env.TG_UNIT_BAD_STORE}"}}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := g.provisionRevocations(ctx, 0); err == nil || !strings.Contains(err.Error(), "shared_store http://user:xxxxx@x") {
		t.Fatalf("the placeholder was not expanded: %v", err)
	}
}
