package integration_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// Policy as tested code, through the real binary: `caddy tenant-gate test`
// runs decision cases through the real handler, `diff` compares rule tables.
var _ = Describe("caddy tenant-gate test and diff", func() {
	shipped := func() string { return filepath.Join(repoRoot(), "caddyfile", "Caddyfile") }

	// run starts bin/caddy and returns its combined output and exit code.
	run := func(args ...string) (string, int) {
		out, err := exec.Command(filepath.Join(env.binDir, "caddy"), append([]string{"tenant-gate"}, args...)...).CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return string(out), ee.ExitCode()
		}
		Expect(err).NotTo(HaveOccurred())
		return string(out), 0
	}
	write := func(name, content string) string {
		p := filepath.Join(GinkgoT().TempDir(), name)
		Expect(os.WriteFile(p, []byte(content), 0o600)).To(Succeed())
		return p
	}
	// edited is the shipped Caddyfile with one rule line replaced.
	edited := func(oldRule, newRule string) string {
		data, err := os.ReadFile(shipped())
		Expect(err).NotTo(HaveOccurred())
		changed := strings.Replace(string(data), oldRule, newRule, 1)
		Expect(changed).NotTo(Equal(string(data)), "the shipped Caddyfile no longer has %q", oldRule)
		return write("Caddyfile", changed)
	}
	const closeRule = "rule POST /api/v1/hedging/close roles hedging:admin"

	It("passes the shipped case file against the shipped Caddyfile", func() {
		junit := filepath.Join(GinkgoT().TempDir(), "junit.xml")
		out, code := run("test", "--config", shipped(), "--adapter", "caddyfile", "--junit", junit,
			filepath.Join(repoRoot(), "caddyfile", "Caddyfile.cases.yaml"))
		Expect(code).To(Equal(0), out)
		Expect(out).To(MatchRegexp(`\n(\d{2,}) passed, 0 failed\n`))
		xml, err := os.ReadFile(junit)
		Expect(err).NotTo(HaveOccurred())
		Expect(string(xml)).To(ContainSubstring(`<testcase name="a trader must never close hedges"`))
		Expect(string(xml)).NotTo(ContainSubstring("<failure"))
	})

	It("names a failing case with expected and got reason, and exits 1", func() {
		// One word more and every trader could close all hedges.
		loose := edited(closeRule, closeRule+" hedging:trade")
		junit := filepath.Join(GinkgoT().TempDir(), "junit.xml")
		out, code := run("test", "--config", loose, "--adapter", "caddyfile", "--junit", junit,
			filepath.Join(repoRoot(), "caddyfile", "Caddyfile.cases.yaml"))
		Expect(code).To(Equal(1), out)
		Expect(out).To(ContainSubstring("FAIL a trader must never close hedges (" + filepath.Join(repoRoot(), "caddyfile", "Caddyfile.cases.yaml") + ":"))
		Expect(out).To(ContainSubstring("expected: deny reason=missing_role status=403"))
		Expect(out).To(ContainSubstring(`got:      allow reason=ok status=200 rule="rule POST /api/v1/hedging/close roles hedging:admin hedging:trade"`))
		Expect(out).To(MatchRegexp(`\n\d+ passed, 1 failed\n`))
		xml, err := os.ReadFile(junit)
		Expect(err).NotTo(HaveOccurred())
		Expect(string(xml)).To(ContainSubstring(`failures="1"`))
	})

	It("runs only the cases --run selects", func() {
		out, code := run("test", "--config", shipped(), "--adapter", "caddyfile", "--run", "close",
			filepath.Join(repoRoot(), "caddyfile", "Caddyfile.cases.yaml"))
		Expect(code).To(Equal(0), out)
		Expect(out).To(ContainSubstring("\n2 passed, 0 failed\n"))
	})

	DescribeTable("exits 2 on a broken case file, naming file:line",
		func(content, want string) {
			cases := write("cases.yaml", content)
			out, code := run("test", "--config", shipped(), "--adapter", "caddyfile", cases)
			Expect(code).To(Equal(2), out)
			Expect(out).To(ContainSubstring(cases + want))
		},
		Entry("not YAML", "cases:\n  - {method: GET\n", ":1: did not find expected"),
		Entry("no cases", "tests:\n  - {method: GET, path: /healthz, expect: public}\n", ":1: no `cases` key"),
		Entry("a case without method", "cases:\n  - name: x\n    path: /healthz\n    expect: public\n", ":2: case \"x\": missing `method`"),
		Entry("a case without path", "cases:\n  - name: x\n    method: GET\n    expect: public\n", ":2: case \"x\": missing `path`"),
		Entry("a case without expect", "cases:\n  - name: x\n    method: GET\n    path: /healthz\n", ":2: case \"x\": missing `expect`"),
		Entry("an unknown expect word", "cases:\n  - name: x\n    method: GET\n    path: /healthz\n    expect: permit\n", ":5: case \"x\": unknown `expect` \"permit\""),
		Entry("claims that are not an object", "cases:\n  - name: x\n    method: GET\n    path: /healthz\n    claims: [acme]\n    expect: public\n", ":5: `claims` must be an object"),
		Entry("an unknown key", "cases:\n  - name: x\n    method: GET\n    path: /healthz\n    expect: public\n    statuss: 200\n", ":6: field statuss not found"),
	)

	It("exits 2 with Caddy's message when the config does not adapt", func() {
		cases := filepath.Join(repoRoot(), "caddyfile", "Caddyfile.cases.yaml")
		broken := write("Caddyfile", ":8080 {\n\ttenant_gate {\n\t\trule GET /x publik\n\t}\n}\n")
		out, code := run("test", "--config", broken, "--adapter", "caddyfile", cases)
		Expect(code).To(Equal(2), out)
		Expect(out).To(ContainSubstring(`unknown requirement "publik"`))

		notCaddy := write("Caddyfile", ":8080 {\n\tno_such_directive\n}\n")
		out, code = run("test", "--config", notCaddy, "--adapter", "caddyfile", cases)
		Expect(code).To(Equal(2), out)
		Expect(out).To(ContainSubstring("unrecognized directive: no_such_directive"))

		out, code = run("diff", "--adapter", "caddyfile", shipped(), notCaddy)
		Expect(code).To(Equal(2), out)
		Expect(out).To(ContainSubstring("unrecognized directive: no_such_directive"))
	})

	It("diff catches a widened route and exits 1", func() {
		out, code := run("diff", "--adapter", "caddyfile", shipped(), edited(closeRule, "rule POST /api/v1/hedging/close authenticated"))
		Expect(code).To(Equal(1), out)
		Expect(out).To(ContainSubstring("WIDENS  POST /api/v1/hedging/close: authenticated replaces roles hedging:admin"))
		Expect(out).To(ContainSubstring("1 widening, 0 narrowing"))

		out, code = run("diff", "--adapter", "caddyfile", shipped(), edited("rule GET /healthz public", "rule GET /healthz public\n\t\trule DELETE /api/v1/ensemble/{ensemble_id} roles ensemble:write"))
		Expect(code).To(Equal(1), out)
		Expect(out).To(ContainSubstring("WIDENS  DELETE /api/v1/ensemble/{ensemble_id}: newly reachable"))
	})

	It("diff passes a narrowed route and a respelled one", func() {
		out, code := run("diff", "--adapter", "caddyfile", shipped(),
			edited("rule GET /api/v1/hedging/analysis roles hedging:read hedging:trade hedging:admin", "rule GET /api/v1/hedging/analysis roles hedging:admin"))
		Expect(code).To(Equal(0), out)
		Expect(out).To(ContainSubstring("narrows GET /api/v1/hedging/analysis: role removed from the any-of list: hedging:read hedging:trade"))
		Expect(out).To(ContainSubstring("0 widening, 1 narrowing"))

		out, code = run("diff", "--adapter", "caddyfile", shipped(),
			edited("rule GET /api/v1/ensemble/{ensemble_id}/weights roles ensemble:read ensemble:write", "rule GET,HEAD /api/v1/ensemble/{id}/weights roles ensemble:write ensemble:read"))
		Expect(code).To(Equal(0), out)
		Expect(out).To(ContainSubstring("0 widening, 0 narrowing"))
	})
})
