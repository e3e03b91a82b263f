package api_test

import (
	"net/http"
	"testing"

	"github.com/tenantgate/tenantgate/backend/api"
	"github.com/tenantgate/tenantgate/backend/store"
)

func TestHealthzReportsTheStore(t *testing.T) {
	h := newHarness(t)
	r := h.raw("GET", "/healthz", nil, nil)
	expectStatus(t, r, http.StatusOK)
	m := r.json(t)
	st, _ := m["store"].(map[string]any)
	if m["status"] != "ok" || st["driver"] != "sqlite" || st["status"] != "ok" {
		t.Errorf("healthz = %s", r.body)
	}
	if _, ok := st["pool"]; ok {
		t.Errorf("sqlite reports a pool: %s", r.body)
	}
	// A store that stops answering turns /healthz into 503 problem+json.
	_ = h.store.Close()
	expectProblem(t, h.raw("GET", "/healthz", nil, nil), http.StatusServiceUnavailable, "sqlite store does not answer", "--db")
}

// onlyStore hides every method but the Store interface's.
type onlyStore struct{ store.Store }

func TestHealthzWithoutHealthChecker(t *testing.T) {
	h := newHarnessWith(t, func(c *api.Config) { c.Store = onlyStore{c.Store} })
	r := h.raw("GET", "/healthz", nil, nil)
	expectStatus(t, r, http.StatusOK)
	if m := r.json(t); m["status"] != "ok" || m["store"] != nil {
		t.Errorf("healthz = %s", r.body)
	}
}
