package integration_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// The shipped Caddyfile must cover every route the backend serves: a new
// endpoint without a rule breaks the build here.
var _ = Describe("caddy tenant-gate coverage", func() {
	var routesFile string
	BeforeEach(func() {
		out, err := exec.Command(filepath.Join(env.binDir, "backend"), "routes").Output()
		Expect(err).NotTo(HaveOccurred())
		Expect(string(out)).To(ContainSubstring("POST /api/v1/hedging/execute"))
		routesFile = filepath.Join(GinkgoT().TempDir(), "routes.txt")
		Expect(os.WriteFile(routesFile, out, 0o600)).To(Succeed())
	})

	coverage := func(config string) (string, error) {
		out, err := exec.Command(filepath.Join(env.binDir, "caddy"), "tenant-gate", "coverage",
			"--config", config, "--adapter", "caddyfile", "--routes", routesFile).CombinedOutput()
		return string(out), err
	}

	It("covers every backend route with a rule in caddyfile/Caddyfile", func() {
		out, err := coverage(filepath.Join(repoRoot(), "caddyfile", "Caddyfile"))
		Expect(err).NotTo(HaveOccurred(), out)
		Expect(out).To(MatchRegexp(`(\d+) routes, (\d+) covered without problems, 0 with problems`))
	})

	It("covers every backend route in caddyfile/production.Caddyfile", func() {
		out, err := coverage(filepath.Join(repoRoot(), "caddyfile", "production.Caddyfile"))
		Expect(err).NotTo(HaveOccurred(), out)
	})

	It("fails when the backend gains a route that has no rule", func() {
		f, err := os.OpenFile(routesFile, os.O_APPEND|os.O_WRONLY, 0)
		Expect(err).NotTo(HaveOccurred())
		_, _ = f.WriteString("DELETE /api/v1/ensemble/{ensemble_id}\n")
		Expect(f.Close()).To(Succeed())
		out, err := coverage(filepath.Join(repoRoot(), "caddyfile", "Caddyfile"))
		Expect(err).To(HaveOccurred())
		Expect(out).To(ContainSubstring("DELETE /api/v1/ensemble/{ensemble_id}"))
		Expect(out).To(ContainSubstring("not covered"))
	})

	It("fails when a route is covered only by a public rule it was not marked for", func() {
		cf := filepath.Join(GinkgoT().TempDir(), "Caddyfile")
		Expect(os.WriteFile(cf, []byte(`:0 {
	tenant_gate {
		issuer https://idp { 
			jwks_file /dev/null
			audience a
		}
		assertion_key /dev/null
		rule * /** public
	}
}
`), 0o600)).To(Succeed())
		out, err := coverage(cf)
		Expect(err).To(HaveOccurred())
		Expect(out).To(ContainSubstring("public"))
	})

	It("fails when a gate rule would admit a caller the backend's roles refuse", func() {
		shipped, err := os.ReadFile(filepath.Join(repoRoot(), "caddyfile", "Caddyfile"))
		Expect(err).NotTo(HaveOccurred())
		// One loose line ahead of the shipped hedging rules: every
		// authenticated user of every tenant could close all hedges.
		loose := strings.Replace(string(shipped), "\t\trule GET /api/v1/hedging/analysis",
			"\t\trule POST /api/v1/hedging/** authenticated\n\t\trule GET /api/v1/hedging/analysis", 1)
		Expect(loose).NotTo(Equal(string(shipped)))
		cf := filepath.Join(GinkgoT().TempDir(), "Caddyfile")
		Expect(os.WriteFile(cf, []byte(loose), 0o600)).To(Succeed())
		out, err := coverage(cf)
		Expect(err).To(HaveOccurred(), out)
		Expect(out).To(ContainSubstring("POST /api/v1/hedging/close roles hedging:admin"))
		Expect(out).To(ContainSubstring("admits callers without a role, but the backend needs one of [hedging:admin]"))
		Expect(out).To(ContainSubstring("2 with problems")) // execute and close
	})

	It("explains which rule decides a request", func() {
		out, err := exec.Command(filepath.Join(env.binDir, "caddy"), "tenant-gate", "explain",
			"--config", filepath.Join(repoRoot(), "caddyfile", "Caddyfile"), "--adapter", "caddyfile",
			"POST", "/api/v1/hedging/close").CombinedOutput()
		Expect(err).NotTo(HaveOccurred(), string(out))
		Expect(string(out)).To(ContainSubstring("POST /api/v1/hedging/close roles hedging:admin"))
	})
})
