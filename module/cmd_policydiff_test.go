package tenantgate

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

func diffFixture(t *testing.T, rules string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "Caddyfile")
	writeFile(t, p, []byte(`:8080 {
	tenant_gate {
		issuer https://idp.example {
			jwks_file /nonexistent.json
			audience api
		}
		assertion_key /nonexistent.pem
`+rules+`
	}
}
`))
	return p
}

func TestPolicyDiff(t *testing.T) {
	base := diffFixture(t, "rule GET /healthz public\nrule POST /api/v1/hedging/close roles hedging:admin\nrule GET /api/v1/ensemble/{id} roles r w")
	respelled := diffFixture(t, "rule GET,HEAD /healthz public\nrule post /api/v1/hedging/close roles hedging:admin\nrule GET /api/v1/ensemble/{ensemble_id} roles w r")
	widened := diffFixture(t, "rule GET /healthz public\nrule POST /api/v1/hedging/close authenticated\nrule GET /api/v1/ensemble/{id} roles r w")
	narrowed := diffFixture(t, "rule GET /healthz public\nrule POST /api/v1/hedging/close roles hedging:admin\nrule GET /api/v1/ensemble/{id} roles w")
	broken := diffFixture(t, "rule GET /healthz publik")

	for _, tc := range []struct {
		name     string
		old, new string
		code     int
		want     string
	}{
		{"same rules, other spelling", base, respelled, exitOK, "0 widening, 0 narrowing"},
		{"a widened route", base, widened, exitFailed, "WIDENS  POST /api/v1/hedging/close: authenticated replaces roles hedging:admin"},
		{"a narrowed route", base, narrowed, exitOK, "narrows GET /api/v1/ensemble/{id}: role removed from the any-of list: r"},
		{"a broken new config", base, broken, exitBroken, ""},
		{"a broken old config", broken, base, exitBroken, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			code, err := runPolicyDiff(&out, "caddyfile", tc.old, tc.new)
			if code != tc.code || !strings.Contains(out.String(), tc.want) {
				t.Fatalf("code %d (want %d), %v\n%s", code, tc.code, err, out.String())
			}
			if code != exitOK && err == nil {
				t.Fatal("no error with a non-zero code")
			}
		})
	}
}

func TestPolicyDiffCommand(t *testing.T) {
	base := diffFixture(t, "rule GET /a roles r")
	wide := diffFixture(t, "rule GET /a public")
	if out, err := runCommand(t, policyDiffCommand(), "--adapter", "caddyfile", base, base); err != nil || !strings.Contains(out, "0 widening") {
		t.Fatalf("%v\n%s", err, out)
	}
	if out, err := runCommand(t, policyDiffCommand(), "--adapter", "caddyfile", base, wide); err == nil || !strings.Contains(out, "public replaces roles r") {
		t.Fatalf("%v\n%s", err, out)
	}
	// Exit 2 travels as Caddy's exit error, which carries no message of its own.
	out, err := runCommand(t, policyDiffCommand(), "--adapter", "caddyfile", base, filepath.Join(t.TempDir(), "missing"))
	if err == nil || !strings.Contains(out, "error:") || !strings.Contains(err.Error(), "status 2") {
		t.Fatalf("%v\n%s", err, out)
	}
}
