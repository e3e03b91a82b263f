package integration_test

import (
	"bufio"
	"encoding/json"
	"os"
	"time"

	. "github.com/onsi/gomega"
)

// auditEntry is one line of the audit file.
type auditEntry struct {
	Logger          string  `json:"logger"`
	Msg             string  `json:"msg"`
	TS              float64 `json:"ts"`
	RequestID       string  `json:"request_id"`
	ClientRequestID string  `json:"client_request_id"`
	TenantID        string  `json:"tenant_id"`
	UserID          string  `json:"user_id"`
	Issuer          string  `json:"issuer"`
	TokenID         string  `json:"token_id"`
	Method          string  `json:"method"`
	Path            string  `json:"path"`
	Route           string  `json:"route"`
	Decision        string  `json:"decision"`
	Reason          string  `json:"reason"`
	Status          int     `json:"status"`
	UpstreamStatus  int     `json:"upstream_status"`
	DurationMS      float64 `json:"duration_ms"`
	RemoteIP        string  `json:"remote_ip"`
	Binding         string  `json:"binding"`
}

func readAudit(path string) []auditEntry {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []auditEntry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var r auditEntry
		if json.Unmarshal(sc.Bytes(), &r) == nil && r.RequestID != "" {
			out = append(out, r)
		}
	}
	return out
}

// auditFor waits for the record of requestID in the audit file at path.
func auditFor(path, requestID string) auditEntry {
	var found auditEntry
	Eventually(func() bool {
		for _, r := range readAudit(path) {
			if r.RequestID == requestID {
				found = r
				return true
			}
		}
		return false
	}, 5*time.Second, 20*time.Millisecond).Should(BeTrue(), "no audit record for request %s", requestID)
	return found
}
