package integration_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// Issue 22: one run of `caddy validate` names every problem, each at its
// line, with no knock-on errors.
var _ = Describe("caddy validate of a Caddyfile with five mistakes", func() {
	It("reports five messages, each with its file and line", func() {
		dir := GinkgoT().TempDir()
		caddyfile := filepath.Join(dir, "Caddyfile")
		Expect(os.WriteFile(caddyfile, []byte(`http://127.0.0.1:1 {
	tenant_gate {
		issuer https://idp.example.com {
			jwks_file /etc/tenantgate/jwks.json
			audiance alphapulse-api
		}
		issuer https://nokeys.example.com {
			audience alphapulse-api
		}
		issuer https://hmac.example.com {
			hmac_secret short
			audience alphapulse-api
		}
		algorithms none RS256 HS256
		assertion_key /etc/tenantgate/assertion.pem
		rule GET /x rolez admin
		rule GET /y authenticated
	}
}
`), 0o600)).To(Succeed())
		cmd := exec.Command(filepath.Join(env.binDir, "caddy"), "validate", "--config", caddyfile, "--adapter", "caddyfile")
		cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
		out, err := cmd.CombinedOutput()
		Expect(err).To(HaveOccurred(), "caddy validate accepted:\n%s", out)
		var msgs []string
		for _, line := range strings.Split(string(out), "\n") {
			var entry struct{ Msg string }
			if json.Unmarshal([]byte(line), &entry) == nil && entry.Msg != "" {
				msgs = append(msgs, entry.Msg)
			}
		}
		text := strings.Join(msgs, "\n")
		GinkgoWriter.Println(text)
		var problems []string
		for _, l := range strings.Split(text, "\n") {
			if strings.Contains(l, ", at "+caddyfile+":") {
				problems = append(problems, l)
			}
		}
		want := []string{
			`unrecognized issuer subdirective "audiance", at ` + caddyfile + ":5",
			`issuer "https://nokeys.example.com": no key source`,
			`issuer "https://hmac.example.com": hmac_secret is 5 bytes, need at least 32`,
			`algorithms: "none" is never allowed, at ` + caddyfile + ":14",
			`rule 1: unknown requirement "rolez"`,
		}
		lines := []string{":5", ":7", ":10", ":14", ":16"}
		Expect(problems).To(HaveLen(5), "want five problems, got:\n%s", text)
		for i, w := range want {
			Expect(problems[i]).To(ContainSubstring(w))
			Expect(problems[i]).To(HaveSuffix(caddyfile + lines[i]))
		}
		Expect(text).NotTo(ContainSubstring(`"admin"`), "knock-on error for the rule's role")
	})
})
