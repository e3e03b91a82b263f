package tenantgate

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// BenchmarkPolicyTest10000Cases runs a 10,000-case file (every rule of a
// 1,000-rule gate, allowed and refused, with tokens) through the real
// handler: the closing note's number. `go test -run '^$' -bench
// PolicyTest10000 -benchtime 1x ./module/`
func BenchmarkPolicyTest10000Cases(b *testing.B) {
	dir := b.TempDir()
	var rules, cases strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&rules, "\t\trule POST /api/v1/svc%d/{id}/run roles svc%d:write\n", i, i)
	}
	cases.WriteString("cases:\n")
	for i := range 10000 {
		svc := i % 1000
		role, expect := fmt.Sprintf("svc%d:write", svc), "allow"
		if i%2 == 1 {
			role, expect = "other", "deny"
		}
		fmt.Fprintf(&cases, "  - {name: case %d, method: POST, path: /api/v1/svc%d/x%d/run, claims: {tenant_id: acme, sub: u%d, roles: [%q]}, expect: %s}\n",
			i, svc, i, i, role, expect)
	}
	config := filepath.Join(dir, "Caddyfile")
	writeFileB(b, config, ":8080 {\n\ttenant_gate {\n\t\tissuer https://idp {\n\t\t\tjwks_file x\n\t\t\taudience api\n\t\t}\n\t\tassertion_key x\n"+rules.String()+"\t}\n}\n")
	file := filepath.Join(dir, "cases.yaml")
	writeFileB(b, file, cases.String())
	b.ResetTimer()
	for b.Loop() {
		var out bytes.Buffer
		code, err := runPolicyTest(&out, policyTestOptions{config: config, adapter: "caddyfile", gate: 1, files: []string{file}})
		if code != exitOK || !strings.Contains(out.String(), "10000 passed, 0 failed") {
			b.Fatalf("code %d, %v\n%s", code, err, out.String()[:min(out.Len(), 2000)])
		}
	}
}

func writeFileB(b *testing.B, path, data string) {
	b.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		b.Fatal(err)
	}
}
