package tenantgate

import (
	"encoding/json"
	"net/http"
	"strconv"

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
// asks: no error code when no token was sent, invalid_token otherwise.
func (g *Gate) writeProblem(w http.ResponseWriter, reason audit.Reason, detail, requestID string) int {
	status := reason.Status()
	h := w.Header()
	switch status {
	case http.StatusUnauthorized:
		if reason == audit.ReasonMissingToken {
			h.Set("WWW-Authenticate", `Bearer realm="`+g.Realm+`"`)
		} else {
			h.Set("WWW-Authenticate", `Bearer realm="`+g.Realm+`", error="invalid_token", error_description=`+strconv.Quote(string(reason)))
		}
	case http.StatusForbidden:
		if reason == audit.ReasonMissingRole {
			h.Set("WWW-Authenticate", `Bearer realm="`+g.Realm+`", error="insufficient_scope"`)
		}
	case http.StatusServiceUnavailable:
		// The caller may have set when the keys are fetched next.
		if h.Get("Retry-After") == "" {
			h.Set("Retry-After", "5")
		}
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
