package api_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/backend/api"
	"github.com/tenantgate/tenantgate/backend/hedging"
	"github.com/tenantgate/tenantgate/backend/store"
	"github.com/tenantgate/tenantgate/module/assertion"
)

// harness runs the real handler over a real SQLite file with real
// assertions signed by a key generated for the test.
type harness struct {
	t       testing.TB
	srv     *httptest.Server
	handler http.Handler
	store   *store.SQLite
	signer  *assertion.Signer
	key     ed25519.PrivateKey
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	return newHarnessWith(t, nil)
}

// newHarnessWith is newHarness with a hook to change the server's Config
// (a logger, a clock, a body limit).
func newHarnessWith(t testing.TB, configure func(*api.Config)) *harness {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := assertion.NewEd25519Signer(priv)
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := assertion.NewEd25519Verifier(pub, assertion.DefaultAudience)
	if err != nil {
		t.Fatal(err)
	}
	verifier.Issuer = assertion.DefaultIssuer
	st, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "db", "backend.db"))
	if err != nil {
		t.Fatal(err)
	}
	for name, acct := range hedging.DemoAccounts() {
		if _, err := st.SeedAccount(context.Background(), store.MustTenantID(name), acct, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	cfg := api.Config{Store: st, Verifier: verifier}
	if configure != nil {
		configure(&cfg)
	}
	srv, err := api.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, store: st, signer: signer, key: priv, handler: srv.Handler()}
	h.srv = httptest.NewServer(h.handler)
	t.Cleanup(func() {
		h.srv.Close()
		_ = st.Close()
	})
	return h
}

func (h *harness) claims(tenant, method, path string) assertion.Claims {
	return assertion.Claims{
		Issuer: assertion.DefaultIssuer, Audience: assertion.DefaultAudience,
		Tenant: tenant, Subject: "user-" + tenant, Roles: []string{"ensemble:write", "hedging:trade", "hedging:admin"},
		Method: method, Path: path, ID: store.NewID("req"),
	}
}

func (h *harness) sign(c assertion.Claims) string {
	h.t.Helper()
	raw, err := h.signer.Sign(c)
	if err != nil {
		h.t.Fatal(err)
	}
	return raw
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body is not a JSON object: %v: %s", err, r.body)
	}
	return m
}

// raw sends a request with the given headers (no assertion added).
func (h *harness) raw(method, target string, body []byte, hdr map[string]string) response {
	h.t.Helper()
	req, err := http.NewRequest(method, h.srv.URL+target, bytes.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := h.srv.Client().Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer func() { _ = res.Body.Close() }()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return response{status: res.StatusCode, header: res.Header, body: b}
}

// do sends a request as tenant with a valid assertion for it; body is
// marshalled unless it is a string or []byte.
func (h *harness) do(tenant, method, target string, body any, hdr ...string) response {
	h.t.Helper()
	var b []byte
	switch v := body.(type) {
	case nil:
	case string:
		b = []byte(v)
	case []byte:
		b = v
	default:
		var err error
		if b, err = json.Marshal(v); err != nil {
			h.t.Fatal(err)
		}
	}
	path, _, _ := strings.Cut(target, "?")
	headers := map[string]string{assertion.Header: h.sign(h.claims(tenant, method, path))}
	if b != nil {
		headers["Content-Type"] = "application/json"
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		headers[hdr[i]] = hdr[i+1]
	}
	return h.raw(method, target, b, headers)
}

func expectStatus(t testing.TB, r response, want int) {
	t.Helper()
	if r.status != want {
		t.Fatalf("status = %d, want %d; body: %s", r.status, want, r.body)
	}
}

// expectProblem checks an RFC 9457 body and that detail mentions each of words.
func expectProblem(t testing.TB, r response, status int, words ...string) map[string]any {
	t.Helper()
	expectStatus(t, r, status)
	if ct := r.header.Get("Content-Type"); ct != api.ProblemContentType {
		t.Fatalf("Content-Type = %q, want %q; body: %s", ct, api.ProblemContentType, r.body)
	}
	p := r.json(t)
	for _, k := range []string{"type", "title", "status", "detail", "request_id"} {
		if v, ok := p[k]; !ok || v == "" {
			t.Errorf("problem lacks %q: %s", k, r.body)
		}
	}
	if int(p["status"].(float64)) != status {
		t.Errorf("problem status = %v, want %d", p["status"], status)
	}
	detail, _ := p["detail"].(string)
	for _, w := range words {
		if !strings.Contains(detail, w) {
			t.Errorf("detail %q does not mention %q", detail, w)
		}
	}
	return p
}

func str(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}

func num(m map[string]any, k string) float64 {
	f, _ := m[k].(float64)
	return f
}

func list(m map[string]any, k string) []any {
	l, _ := m[k].([]any)
	return l
}
