package api_test

import (
	"net/http"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tenantgate/tenantgate/backend/api"
)

// /healthz tells an anonymous caller two words and nothing more; why the
// store is down goes to the log at WARN with the request id.
func TestHealthz(t *testing.T) {
	for _, kind := range []string{"sqlite", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			h := storeHarness(t, kind)
			if h == nil {
				return
			}
			r := h.raw("GET", "/healthz", nil, nil)
			expectStatus(t, r, http.StatusOK)
			if got, want := strings.TrimSpace(string(r.body)), `{"status":"ok","store":"`+kind+`"}`; got != want {
				t.Errorf("healthz = %s, want %s", got, want)
			}
		})
	}
}

func TestHealthzDegraded(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	h := newHarnessWith(t, func(c *api.Config) { c.Logger = zap.New(core) })
	_ = h.store.Close()
	r := h.raw("GET", "/healthz", nil, map[string]string{"X-Request-ID": "probe-1"})
	expectStatus(t, r, http.StatusServiceUnavailable)
	if got := strings.TrimSpace(string(r.body)); got != `{"status":"degraded","store":"sqlite"}` {
		t.Errorf("healthz = %s", got)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	warned := logs.FilterMessage("store unavailable").All()
	if len(warned) != 1 {
		t.Fatalf("%d WARN lines, want 1: %v", len(warned), logs.All())
	}
	f := warned[0].ContextMap()
	if f["request_id"] != "probe-1" || f["store"] != "sqlite" || f["error"] == "" {
		t.Errorf("log fields %v", f)
	}
}
