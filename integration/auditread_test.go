package integration_test

import (
	"bufio"
	"encoding/json"
	"os"
	"time"

	. "github.com/onsi/gomega"
)

// auditRecord is one line of the audit log as written by the gate.
type auditRecord struct {
	RequestID      string  `json:"request_id"`
	TenantID       string  `json:"tenant_id"`
	UserID         string  `json:"user_id"`
	Issuer         string  `json:"issuer"`
	TokenID        string  `json:"token_id"`
	Method         string  `json:"method"`
	Path           string  `json:"path"`
	Route          string  `json:"route"`
	Decision       string  `json:"decision"`
	Reason         string  `json:"reason"`
	Status         int     `json:"status"`
	UpstreamStatus int     `json:"upstream_status"`
	DurationMS     float64 `json:"duration_ms"`
	RemoteIP       string  `json:"remote_ip"`
	Logger         string  `json:"logger"`
}

func readAudit(path string) []auditRecord {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []auditRecord
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var r auditRecord
		if json.Unmarshal(sc.Bytes(), &r) == nil && r.RequestID != "" {
			out = append(out, r)
		}
	}
	return out
}

// auditFor waits for the record of requestID in the audit file at path.
func auditFor(path, requestID string) auditRecord {
	var found auditRecord
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
