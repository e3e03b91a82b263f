package tenantgate

import (
	"net/http"

	"github.com/tenantgate/tenantgate/module/audit"
)

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
	return audit.WriteProblem(w, reason, detail, requestID)
}
