package integration_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	. "github.com/onsi/gomega"
)

// caddyProc is a Caddy started by one spec or container on its own ports,
// admin endpoint, audit file and log, so it can be reloaded, scraped and
// counted without other specs' traffic.
type caddyProc struct {
	cmd                *exec.Cmd
	dir                string
	caddyfile          string
	adminURL           string
	auditPath, logPath string
	extraGlobal        string
}

// startCaddy writes a Caddyfile with the standard global options (admin
// on a free port, audit routed to its own file) followed by sites, and
// starts bin/caddy on it. sites may use %[1]s for the issuers block
// (env.issuers()). It waits until waitURL answers.
func (e *testEnv) startCaddy(name, sites, waitURL string) *caddyProc {
	return e.startCaddyGlobal(name, "", sites, waitURL)
}

// startCaddyGlobal is startCaddy with extra global options (lines such as
// `servers { trusted_proxies static 127.0.0.2/32 }`).
func (e *testEnv) startCaddyGlobal(name, extraGlobal, sites, waitURL string) *caddyProc {
	dir := filepath.Join(e.dir, name)
	Expect(os.MkdirAll(dir, 0o700)).To(Succeed())
	p := &caddyProc{
		extraGlobal: extraGlobal,
		dir:         dir,
		caddyfile:   filepath.Join(dir, "Caddyfile"),
		adminURL:    "http://" + freeAddr(),
		auditPath:   filepath.Join(dir, "audit.log"),
		logPath:     filepath.Join(dir, "caddy.log"),
	}
	p.write(e, sites)
	p.cmd = e.spawn(filepath.Join(dir, "stdout.log"), filepath.Join(e.binDir, "caddy"),
		"run", "--config", p.caddyfile, "--adapter", "caddyfile")
	if waitURL != "" {
		e.waitHTTP(waitURL)
	}
	return p
}

func (p *caddyProc) write(e *testEnv, sites string) {
	global := globalOptions(p.adminURL[len("http://"):], p.auditPath, p.logPath)
	if p.extraGlobal != "" {
		global = strings.Replace(global, "\tpersist_config off\n", "\tpersist_config off\n"+p.extraGlobal+"\n", 1)
	}
	Expect(os.WriteFile(p.caddyfile, []byte(global+fmt.Sprintf(sites, e.issuers())), 0o600)).To(Succeed())
}

// reload rewrites the Caddyfile and applies it with `caddy reload`.
func (p *caddyProc) reload(e *testEnv, sites string) {
	p.write(e, sites)
	out, err := exec.Command(filepath.Join(e.binDir, "caddy"), "reload", "--config", p.caddyfile,
		"--adapter", "caddyfile", "--address", p.adminURL[len("http://"):]).CombinedOutput()
	Expect(err).NotTo(HaveOccurred(), string(out))
}

func (p *caddyProc) stop() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _, _ = p.cmd.Process.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
	}
}

// globalOptions is the Caddyfile global block every gate in the suite runs
// with: admin on its own port, the audit trail in its own file, and Caddy's
// log with the identity assertion deleted (as the shipped Caddyfiles do).
func globalOptions(admin, auditPath, logPath string) string {
	return fmt.Sprintf(`{
	admin %s
	auto_https off
	persist_config off
	log audit {
		include http.handlers.tenant_gate.audit
		output file %s
		format json
	}
	log default {
		exclude http.handlers.tenant_gate.audit
		output file %s
		format filter {
			wrap json
			fields {
				request>headers>X-Tenant-Assertion delete
			}
		}
	}
}
`, admin, auditPath, logPath)
}
