package ratelimit

import (
	"net/http"

	"github.com/tenantgate/tenantgate/module/audit"
)

func writeProblem(w http.ResponseWriter, reason audit.Reason, detail, requestID string) {
	audit.WriteProblem(w, reason, detail, requestID)
}
