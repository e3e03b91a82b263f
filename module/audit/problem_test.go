package audit

import (
	"encoding/json"
	"net/http/httptest"
	"testing"
)

func TestWriteProblem(t *testing.T) {
	w := httptest.NewRecorder()
	w.Header().Set("Retry-After", "3") // set by the caller, must survive
	if got := WriteProblem(w, ReasonRateLimited, "slow down", "req-1"); got != 429 {
		t.Fatalf("status %d, want 429", got)
	}
	if w.Code != 429 || w.Header().Get("Content-Type") != "application/problem+json" || w.Header().Get("Retry-After") != "3" {
		t.Fatalf("code %d, headers %v", w.Code, w.Header())
	}
	var p Problem
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
		t.Fatal(err)
	}
	want := Problem{Type: "https://github.com/tenantgate/tenantgate#reason-rate_limited", Title: ReasonRateLimited.Title(),
		Status: 429, Detail: "slow down", Reason: "rate_limited", RequestID: "req-1"}
	if p != want {
		t.Errorf("body %+v, want %+v", p, want)
	}
}
