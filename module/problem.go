package tenantgate

import (
	"encoding/json"
	"net/http"

	"github.com/tenantgate/tenantgate/module/audit"
)

// problem is an RFC 9457 problem details body. It never carries the token
// or key material: detail texts come from the gate's own messages.
type problem struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail"`
	Reason    string `json:"reason"`
	RequestID string `json:"request_id"`
}

// writeProblem answers a denial. 401s carry WWW-Authenticate as RFC 6750
// and RFC 9449 ask (challenge.go); dpop says the request used the DPoP
// scheme.
func (g *Gate) writeProblem(w http.ResponseWriter, reason audit.Reason, detail, requestID string, dpop bool) int {
	status := reason.Status()
	h := w.Header()
	g.challenges(h, reason, dpop)
	if status == http.StatusServiceUnavailable && h.Get("Retry-After") == "" {
		// The caller may have set when the keys are fetched next.
		h.Set("Retry-After", "5")
	}
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
	return status
}
