package api_test

import (
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/tenantgate/tenantgate/module/assertion"
)

// A second use of an assertion is 401 assertion_replayed on both stores,
// whether the first use ran a transaction (execute, a read) or none
// (whoami), and whatever the first answer was.
func TestAssertionReplayed(t *testing.T) {
	for _, kind := range []string{"sqlite", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			h := storeHarness(t, kind)
			if h == nil {
				return
			}
			cases := []struct {
				method, path, body string
				first              int
			}{
				{"GET", "/api/v1/whoami", "", http.StatusOK},
				{"GET", "/api/v1/hedging/analysis", "", http.StatusOK},
				{"GET", "/api/v1/ensemble/ens_missing/weights", "", http.StatusNotFound},
				{"POST", "/api/v1/ensemble/create", `{"name":"x","method":"majority","agents":[]}`, http.StatusCreated},
				{"POST", "/api/v1/ensemble/create", `{"name":`, http.StatusBadRequest},
			}
			for _, c := range cases {
				raw := h.sign(h.claims("acme", c.method, c.path))
				send := func() response {
					hdr := map[string]string{assertion.Header: raw}
					if c.body != "" {
						hdr["Content-Type"] = "application/json"
					}
					return h.raw(c.method, c.path, []byte(c.body), hdr)
				}
				expectStatus(t, send(), c.first)
				p := expectProblem(t, send(), http.StatusUnauthorized, "already used")
				if str(p, "type") != "urn:tenantgate:problem:assertion_replayed" {
					t.Errorf("%s %s: type %v", c.method, c.path, p["type"])
				}
			}
		})
	}
}

// 50 concurrent executes with one assertion (each with its own
// Idempotency-Key and body): exactly one trades.
func TestAssertionReplayedConcurrently(t *testing.T) {
	for _, kind := range []string{"sqlite", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			h := storeHarness(t, kind)
			if h == nil {
				return
			}
			raw := h.sign(h.claims("acme", "POST", "/api/v1/hedging/execute"))
			statuses := make([]int, 50)
			var wg sync.WaitGroup
			for i := range statuses {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r := h.raw("POST", "/api/v1/hedging/execute", []byte(`{"orders":[{"asset":"BTC","side":"sell","quantity":0.001}]}`),
						map[string]string{assertion.Header: raw, "Content-Type": "application/json", "Idempotency-Key": fmt.Sprintf("k-%d", i)})
					statuses[i] = r.status
				}()
			}
			wg.Wait()
			ok := 0
			for _, s := range statuses {
				switch s {
				case http.StatusOK:
					ok++
				case http.StatusUnauthorized:
				default:
					t.Errorf("status %d", s)
				}
			}
			if ok != 1 {
				t.Errorf("%d of 50 accepted, want 1", ok)
			}
		})
	}
}
