package tenantgate

import (
	"context"
	"net/http"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
)

// The {http.auth.*} placeholders a later handler reads come from the
// exchange's provider: the verified identity once it is injected, the
// binding, nothing else; a later handler's own Set still wins.
func TestAuthPlaceholders(t *testing.T) {
	g := newTestGate(t, zap.NewNop())
	got := map[string]string{}
	unset := map[string]bool{}
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
		for _, k := range []string{"http.auth.tenant_id", "http.auth.user.id", "http.auth.user.roles", "http.auth.binding"} {
			got[k], _ = repl.GetString(k)
		}
		for _, k := range []string{"http.auth.user.email", "http.auth.", "http.other"} {
			_, ok := repl.Get(k)
			unset[k] = !ok
		}
		repl.Set("http.auth.tenant_id", "overridden")
		got["after set"], _ = repl.GetString("http.auth.tenant_id")
		w.WriteHeader(http.StatusOK)
		return nil
	})
	r := newTestRequest(context.Background(), http.MethodGet, "/api/x", testToken(t, "acme"))
	w := &discardWriter{h: http.Header{}}
	if err := g.ServeHTTP(w, r, next); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"http.auth.tenant_id": "acme", "http.auth.user.id": "user-acme",
		"http.auth.user.roles": "reader", "http.auth.binding": "bearer", "after set": "overridden"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	for k, ok := range unset {
		if !ok {
			t.Errorf("%s answered, want unset", k)
		}
	}
	for k, v := range map[string]string{"X-Tenant-Id": "acme", "X-User-Id": "user-acme", "X-User-Roles": "reader"} {
		if vs := r.Header[k]; len(vs) != 1 || vs[0] != v {
			t.Errorf("request header %s = %q, want [%q]", k, vs, v)
		}
	}
	if vs := r.Header[keyRequestID]; len(vs) != 1 || vs[0] == "" || w.h.Get(keyRequestID) != vs[0] {
		t.Errorf("request id toward upstream %q, to the client %q", vs, w.h.Get(keyRequestID))
	}
}

// A request refused before the identity is injected answers no identity
// placeholder.
func TestAuthPlaceholdersDenied(t *testing.T) {
	g := newTestGate(t, zap.NewNop())
	r := newTestRequest(context.Background(), http.MethodGet, "/api/x", "not-a-token")
	w := &discardWriter{h: http.Header{}}
	called := false
	_ = g.ServeHTTP(w, r, caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error {
		called = true
		return nil
	}))
	if called {
		t.Fatal("a bad token reached next")
	}
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	for _, k := range []string{"http.auth.tenant_id", "http.auth.user.id", "http.auth.user.roles"} {
		if v, ok := repl.Get(k); ok {
			t.Errorf("%s = %v after a denial", k, v)
		}
	}
}
