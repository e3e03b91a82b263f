package api_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/tenantgate/tenantgate/module/assertion"
)

// The benchmarks call the full handler (logging, trust middleware with
// Ed25519 verification, JSON, SQLite with synchronous=FULL) without a
// network hop. One assertion is signed up front and reused: the backend
// does not track jti, and signing is the gate's cost, not ours.

func BenchmarkPredict(b *testing.B) {
	h := newHarness(b)
	id := createEnsemble(b, h, "acme", map[string]any{"name": "bench", "method": "confidence_weighted",
		"agents": []map[string]any{{"agent_id": "a", "agent_type": "t"}, {"agent_id": "b", "agent_type": "t"}, {"agent_id": "c", "agent_type": "t"}}})
	path := "/api/v1/ensemble/" + id + "/predict"
	raw := h.sign(h.claims("acme", "POST", path))
	body := []byte(`{"symbol":"BTC-USD","signals":[{"agent_id":"a","signal":0.5,"confidence":0.8},{"agent_id":"b","signal":-0.2,"confidence":0.5},{"agent_id":"c","signal":0.9,"confidence":0.1}]}`)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req := httptest.NewRequest("POST", path, bytes.NewReader(body))
		req.Header.Set(assertion.Header, raw)
		rec := httptest.NewRecorder()
		h.handler.ServeHTTP(rec, req)
		if rec.Code != http.StatusCreated {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

func BenchmarkAnalysis(b *testing.B) {
	h := newHarness(b)
	const path = "/api/v1/hedging/analysis"
	raw := h.sign(h.claims("globex", "GET", path))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := httptest.NewRequest("GET", path, nil)
			req.Header.Set(assertion.Header, raw)
			rec := httptest.NewRecorder()
			h.handler.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				b.Errorf("status %d: %s", rec.Code, rec.Body)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}
