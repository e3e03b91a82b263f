package api_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/backend/api"
	"github.com/tenantgate/tenantgate/module/assertion"
)

func TestHealthzIsPublic(t *testing.T) {
	h := newHarness(t)
	r := h.raw("GET", "/healthz", nil, nil)
	expectStatus(t, r, http.StatusOK)
	if r.json(t)["status"] != "ok" {
		t.Errorf("body = %s", r.body)
	}
}

func TestWhoami(t *testing.T) {
	h := newHarness(t)
	c := h.claims("acme", "GET", "/api/v1/whoami")
	c.ID = "req-123"
	r := h.raw("GET", "/api/v1/whoami?x=1", nil, map[string]string{
		assertion.Header: h.sign(c),
		"X-Request-ID":   "something-else",
		"X-Tenant-ID":    "globex", // never read
		"X-User-ID":      "mallory",
	})
	expectStatus(t, r, http.StatusOK)
	m := r.json(t)
	if str(m, "tenant_id") != "acme" || str(m, "user_id") != "user-acme" || str(m, "request_id") != "req-123" {
		t.Errorf("whoami = %s", r.body)
	}
	if roles := list(m, "roles"); len(roles) != 3 || roles[0] != "ensemble:write" {
		t.Errorf("roles = %v", roles)
	}
	if got := r.header.Get("X-Request-ID"); got != "req-123" {
		t.Errorf("X-Request-ID = %q, want the assertion's jti", got)
	}
}

// Every way of not having a valid assertion is 401, whatever X-Tenant-ID says.
func TestUnauthenticated(t *testing.T) {
	h := newHarness(t)
	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	otherSigner, _ := assertion.NewEd25519Signer(otherKey)
	const path = "/api/v1/ensemble/"
	ok := func() assertion.Claims { return h.claims("acme", "GET", path) }

	cases := map[string]func() string{
		"none":    func() string { return "" },
		"garbage": func() string { return "not.a.jws" },
		"other key": func() string {
			raw, _ := otherSigner.Sign(ok())
			return raw
		},
		"tampered payload": func() string {
			raw := h.sign(ok())
			parts := strings.Split(raw, ".")
			forged := h.sign(h.claims("globex", "GET", path))
			return parts[0] + "." + strings.Split(forged, ".")[1] + "." + parts[2]
		},
		"expired": func() string {
			c := ok()
			c.IssuedAt = time.Now().Add(-2 * time.Minute)
			c.Expiry = c.IssuedAt.Add(30 * time.Second)
			return h.sign(c)
		},
		"other path": func() string {
			c := ok()
			c.Path = "/api/v1/whoami"
			return h.sign(c)
		},
		"other method": func() string {
			c := ok()
			c.Method = "POST"
			return h.sign(c)
		},
		"path with query": func() string {
			c := ok()
			c.Path = path + "?limit=1"
			return h.sign(c)
		},
		"other audience": func() string {
			c := ok()
			c.Audience = "billing"
			return h.sign(c)
		},
		"other issuer": func() string {
			c := ok()
			c.Issuer = "evil-gate"
			return h.sign(c)
		},
		"malformed tenant": func() string {
			c := ok()
			c.Tenant = "acme/../globex"
			return h.sign(c)
		},
	}
	for name, mk := range cases {
		t.Run(name, func(t *testing.T) {
			hdr := map[string]string{"X-Tenant-ID": "acme", "X-User-ID": "admin", "X-User-Roles": "admin"}
			if raw := mk(); raw != "" {
				hdr[assertion.Header] = raw
			}
			r := h.raw("GET", path, nil, hdr)
			expectProblem(t, r, http.StatusUnauthorized, "gate")
		})
	}

	t.Run("two assertions", func(t *testing.T) {
		req, _ := http.NewRequest("GET", h.srv.URL+path, nil)
		req.Header.Add(assertion.Header, h.sign(ok()))
		req.Header.Add(assertion.Header, h.sign(ok()))
		res, err := h.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = res.Body.Close()
		if res.StatusCode != http.StatusUnauthorized {
			t.Errorf("status = %d", res.StatusCode)
		}
	})

	// Every protected route refuses a request without an assertion.
	for _, rt := range api.Routes() {
		if rt.Public {
			continue
		}
		target := strings.ReplaceAll(strings.TrimSuffix(rt.Pattern, "{$}"), "{ensemble_id}", "ens_x")
		r := h.raw(rt.Method, target, []byte("{}"), map[string]string{"X-Tenant-ID": "acme"})
		if r.status != http.StatusUnauthorized {
			t.Errorf("%s %s without assertion: %d", rt.Method, target, r.status)
		}
	}
}

func TestMuxErrorsAreProblems(t *testing.T) {
	h := newHarness(t)
	r := h.raw("GET", "/nope", nil, nil)
	expectProblem(t, r, http.StatusNotFound, "/nope", "routes")
	r = h.raw("DELETE", "/healthz", nil, nil)
	p := expectProblem(t, r, http.StatusMethodNotAllowed, "DELETE", "GET")
	if r.header.Get("Allow") == "" {
		t.Errorf("405 without Allow: %v", p)
	}
}
