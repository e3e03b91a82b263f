package audit

import (
	"encoding/json"
	"net/http"
)

// Problem is an RFC 9457 problem details body. It never carries the token
// or key material: detail texts come from the handlers' own messages.
type Problem struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail"`
	Reason    string `json:"reason"`
	RequestID string `json:"request_id"`
}

// WriteProblem answers a denial for reason with its status and a
// problem+json body, the one shape tenant_gate and tenant_rate_limit share.
// Headers the caller set before (challenges, Retry-After) are kept.
func WriteProblem(w http.ResponseWriter, reason Reason, detail, requestID string) int {
	status := reason.Status()
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	body, _ := json.Marshal(Problem{
		Type:      "https://github.com/tenantgate/tenantgate#reason-" + string(reason),
		Title:     reason.Title(),
		Status:    status,
		Detail:    detail,
		Reason:    string(reason),
		RequestID: requestID,
	})
	w.WriteHeader(status)
	_, _ = w.Write(body)
	return status
}
