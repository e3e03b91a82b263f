package main

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// upstreamEnv makes this program serve as the tiny upstream instead: a
// separate process, so the load generator's garbage collector never pauses it.
const upstreamEnv = "TG_BENCH_UPSTREAM_LISTEN"

func serveUpstream(addr string) error {
	body := []byte(`{"ok":true}`)
	srv := &http.Server{
		Addr: addr,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(body)
		}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	return srv.ListenAndServe()
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// stack is the upstream and one Caddy process with a site per target.
type stack struct {
	dir                string
	upstream, caddy    *exec.Cmd
	adminAddr          string
	siteAddr           map[string]string // target name -> host:port
	auditPath, logPath string
}

// The audit file is not rolled: rolling gzips the old file in the
// background, a second of CPU taken from whichever target runs then. It
// lives in the run's temporary directory (a few hundred MB), removed at the end.
func startStack(dir, caddyBin string, keys *benchKeys, tgts []target) (*stack, error) {
	s := &stack{dir: dir, siteAddr: map[string]string{},
		auditPath: filepath.Join(dir, "audit.log"), logPath: filepath.Join(dir, "caddy.log")}
	upAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	s.upstream = exec.Command(self) // #nosec G204 -- this very program, as the upstream
	s.upstream.Env = append(os.Environ(), upstreamEnv+"="+upAddr)
	s.upstream.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.upstream.Start(); err != nil {
		return nil, fmt.Errorf("upstream: %w", err)
	}
	if s.adminAddr, err = freeAddr(); err != nil {
		return nil, err
	}
	rules, err := shippedRules()
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	fmt.Fprintf(&b, `{
	admin %s
	auto_https off
	persist_config off
	log audit {
		include http.handlers.tenant_gate.audit
		output file %s {
			roll_disabled
		}
		format json
	}
	log default {
		exclude http.handlers.tenant_gate.audit
		output file %s
		level WARN
	}
}
`, s.adminAddr, s.auditPath, s.logPath)
	for _, t := range tgts {
		addr, err := freeAddr()
		if err != nil {
			return nil, err
		}
		s.siteAddr[t.name] = addr
		fmt.Fprintf(&b, "\n# %s\nhttp://%s {\n\tbind 127.0.0.1\n", t.name, addr)
		if t.gate != "" {
			fmt.Fprintf(&b, `	tenant_gate {
		issuer %s {
			jwks_file %s
			audience %s
		}
		algorithms RS256 EdDSA
		%s
%s	}
`, benchIssuer, keys.jwksPath, benchAudience, t.gate, rules)
		}
		if t.extra != "" {
			fmt.Fprintf(&b, "\t%s\n", t.extra)
		}
		fmt.Fprintf(&b, "\treverse_proxy %s\n}\n", upAddr)
	}
	caddyfile := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(caddyfile, []byte(b.String()), 0o600); err != nil {
		return nil, err
	}
	s.caddy = exec.Command(caddyBin, "run", "--config", caddyfile, "--adapter", "caddyfile") // #nosec G204 -- the binary the Makefile built
	s.caddy.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir,
		"TG_BENCH_ASSERTION_SECRET="+keys.assertionSecret)
	out, err := os.Create(filepath.Join(dir, "caddy.stdout"))
	if err != nil {
		return nil, err
	}
	s.caddy.Stdout, s.caddy.Stderr = out, out
	s.caddy.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.caddy.Start(); err != nil {
		return nil, fmt.Errorf("caddy: %w", err)
	}
	for _, t := range tgts {
		if err := waitUp("http://" + s.siteAddr[t.name] + "/healthz"); err != nil {
			return s, fmt.Errorf("site %q did not come up (see %s): %w", t.name, out.Name(), err)
		}
	}
	if err := waitUp("http://" + upAddr + "/"); err != nil {
		return s, fmt.Errorf("upstream: %w", err)
	}
	return s, nil
}

// shippedRules returns the rule lines of caddyfile/Caddyfile, so the gate
// sites match against the table users run.
func shippedRules() (string, error) {
	f, err := os.Open(filepath.Join("caddyfile", "Caddyfile"))
	if err != nil {
		return "", fmt.Errorf("run from the repository root: %w", err)
	}
	defer f.Close()
	var b strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); strings.HasPrefix(line, "rule ") {
			b.WriteString("\t\t" + line + "\n")
		}
	}
	return b.String(), sc.Err()
}

func waitUp(url string) error {
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(url) // #nosec G107 -- loopback URL we built
		if err == nil {
			resp.Body.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *stack) stop() {
	for _, c := range []*exec.Cmd{s.caddy, s.upstream} {
		if c == nil || c.Process == nil {
			continue
		}
		_ = c.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _, _ = c.Process.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = c.Process.Kill()
			<-done
		}
	}
}
