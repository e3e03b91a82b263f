package tenantgate

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/tenantgate/tenantgate/module/audit"
)

// writeProblem answers a denial. 401s carry WWW-Authenticate as RFC 6750
// and RFC 9449 ask (challenge.go); dpop says the request used the DPoP
// scheme. retryAfter, for a 503, is when the keys are fetched next.
func (g *Gate) writeProblem(w http.ResponseWriter, reason audit.Reason, detail, requestID string, dpop bool, retryAfter time.Duration) int {
	status := reason.Status()
	h := w.Header()
	g.challenges(h, reason, dpop)
	if retryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(int((retryAfter+time.Second-1)/time.Second)))
	} else if status == http.StatusServiceUnavailable {
		h.Set("Retry-After", "5")
	}
	return audit.WriteProblem(w, reason, detail, requestID)
}

// statusProblem is the problem+json body of an answer that is no decision
// of the gate but an HTTP failure of a later handler (RFC 9457 about:blank:
// the title is the status text).
type statusProblem struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail"`
	RequestID string `json:"request_id"`
}

// statusDetails say what the failures a later handler returns mean for the
// client, without the handler's error text (which may name upstream
// addresses).
var statusDetails = map[int]string{
	http.StatusRequestEntityTooLarge: "the request body is larger than this route accepts",
	http.StatusBadGateway:            "the upstream could not be reached or gave no valid answer",
	http.StatusServiceUnavailable:    "the upstream is not available; retry shortly",
	http.StatusGatewayTimeout:        "the upstream did not answer in time",
}

// writeStatusProblem answers an error of a later handler that reached the
// gate before anything was written: problem+json with the error's status.
func writeStatusProblem(w http.ResponseWriter, status int, requestID string) int {
	detail, ok := statusDetails[status]
	if !ok {
		detail = "the request failed: " + http.StatusText(status)
	}
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Del("Content-Length")
	body, _ := json.Marshal(statusProblem{
		Type:      "about:blank",
		Title:     http.StatusText(status),
		Status:    status,
		Detail:    detail,
		RequestID: requestID,
	})
	w.WriteHeader(status)
	_, _ = w.Write(body)
	return status
}
