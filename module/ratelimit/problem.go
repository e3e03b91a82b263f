package ratelimit

import (
	"encoding/json"
	"net/http"

	"github.com/tenantgate/tenantgate/module/audit"
)

// problem is the RFC 9457 body, in the same shape as tenant_gate's.
type problem struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail"`
	Reason    string `json:"reason"`
	RequestID string `json:"request_id"`
}

func writeProblem(w http.ResponseWriter, reason audit.Reason, detail, requestID string) {
	status := reason.Status()
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	body, _ := json.Marshal(problem{
		Type:      "https://github.com/tenantgate/tenantgate#reason-" + string(reason),
		Title:     reason.Title(),
		Status:    status,
		Detail:    detail,
		Reason:    string(reason),
		RequestID: requestID,
	})
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
