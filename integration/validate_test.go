package integration_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"

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

// Issue 22: `caddy validate` checks a config without running it, so it
// fetches no key set; `caddy run` of the same config does.
var _ = Describe("caddy validate and remote keys", func() {
	It("makes no request to the JWKS or discovery server", func() {
		var hits atomic.Int64
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits.Add(1)
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"keys":[]}`))
		}))
		defer srv.Close()
		dir := GinkgoT().TempDir()
		caddyfile := filepath.Join(dir, "Caddyfile")
		// Many remote issuers: provisioning them takes long enough that a
		// fetch started at Provision reaches the server before validate
		// exits (a binary that fetched at Provision hit it about 18 times
		// a run).
		var issuers strings.Builder
		for i := range 200 {
			fmt.Fprintf(&issuers, "\t\tissuer https://idp%d.example.com {\n\t\t\tjwks_url %s/jwks%d.json\n\t\t\taudience a\n\t\t}\n", i, srv.URL, i)
		}
		Expect(os.WriteFile(caddyfile, []byte(`{
	admin off
}
http://127.0.0.1:1 {
	tenant_gate {
`+issuers.String()+`		issuer https://disco.example.com {
			oidc_discovery `+srv.URL+`/.well-known/openid-configuration
			audience alphapulse-api
		}
		assertion_alg HS256
		assertion_secret 0123456789abcdef0123456789abcdef
		rule GET /x authenticated
	}
}
`), 0o600)).To(Succeed())
		cmd := exec.Command(filepath.Join(env.binDir, "caddy"), "validate", "--config", caddyfile, "--adapter", "caddyfile")
		cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
		out, err := cmd.CombinedOutput()
		Expect(err).NotTo(HaveOccurred(), "caddy validate refused:\n%s", out)
		Expect(string(out)).To(ContainSubstring("Valid configuration"))
		Expect(hits.Load()).To(BeZero(), "caddy validate fetched keys")
	})
})
