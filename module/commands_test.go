package tenantgate

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

const commandsCaddyfile = `:8080 {
	tenant_gate {
		issuer https://idp {
			jwks_file /dev/null
			audience a
		}
		assertion_key /dev/null
		rule GET /healthz public
		rule POST /api/v1/orders/{id}/cancel roles trade
	}
	reverse_proxy 127.0.0.1:9001
}
`

func runCommand(t *testing.T, c *cobra.Command, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	c.SetOut(&out)
	c.SetErr(&out)
	c.SetArgs(args)
	err := c.Execute()
	return out.String(), err
}

func TestExplainCommand(t *testing.T) {
	cf := filepath.Join(t.TempDir(), "Caddyfile")
	writeFile(t, cf, []byte(commandsCaddyfile))
	out, err := runCommand(t, explainCommand(), "--config", cf, "--adapter", "caddyfile", "post", "/api/v1/orders/7/cancel")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "roles trade") || !strings.Contains(out, `id="7"`) {
		t.Fatalf("explain output:\n%s", out)
	}
	if _, err := runCommand(t, explainCommand(), "GET", "/x"); err == nil {
		t.Fatal("explain without --config succeeded")
	}
}

func TestCoverageCommand(t *testing.T) {
	dir := t.TempDir()
	cf := filepath.Join(dir, "Caddyfile")
	writeFile(t, cf, []byte(commandsCaddyfile))
	routes := filepath.Join(dir, "routes.txt")
	writeFile(t, routes, []byte("GET /healthz public\nPOST /api/v1/orders/{order}/cancel\n"))
	out, err := runCommand(t, coverageCommand(), "--config", cf, "--adapter", "caddyfile", "--routes", routes)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	f, _ := os.OpenFile(routes, os.O_APPEND|os.O_WRONLY, 0)
	_, _ = f.WriteString("DELETE /api/v1/orders/{order}\n")
	_ = f.Close()
	out, err = runCommand(t, coverageCommand(), "--config", cf, "--adapter", "caddyfile", "--routes", routes)
	if err == nil || !strings.Contains(out, "DELETE /api/v1/orders/{order}") {
		t.Fatalf("uncovered route not reported: %v\n%s", err, out)
	}
	if _, err := runCommand(t, coverageCommand(), "--config", cf, "--adapter", "caddyfile"); err == nil {
		t.Fatal("coverage without --routes succeeded")
	}
}

func TestLoadRuleTablesNeedsAGate(t *testing.T) {
	cf := filepath.Join(t.TempDir(), "Caddyfile")
	writeFile(t, cf, []byte(":8080 {\n\trespond ok\n}\n"))
	if _, err := runCommand(t, explainCommand(), "--config", cf, "--adapter", "caddyfile", "GET", "/"); err == nil ||
		!strings.Contains(err.Error(), "no tenant_gate") {
		t.Fatalf("err = %v", err)
	}
}
