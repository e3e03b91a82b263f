package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// upstreamEnv makes this program serve as the tiny upstream instead: a
// separate process, so the load generator's garbage collector never pauses it.
// upstreamJWKSEnv names the issuer's JWKS file, served at /jwks.json for a
// peer that fetches keys over HTTP (oauth2-proxy).
const (
	upstreamEnv     = "TG_BENCH_UPSTREAM_LISTEN"
	upstreamJWKSEnv = "TG_BENCH_UPSTREAM_JWKS"
)

func serveUpstream(addr string) error {
	body := []byte(`{"ok":true}`)
	var jwks []byte
	if p := os.Getenv(upstreamJWKSEnv); p != "" {
		b, err := os.ReadFile(p) // #nosec G304 -- the file the parent wrote
		if err != nil {
			return err
		}
		jwks = b
	}
	srv := &http.Server{
		Addr: addr,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			if r.URL.Path == "/jwks.json" && jwks != nil {
				_, _ = w.Write(jwks)
				return
			}
			_, _ = w.Write(body)
		}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	return srv.ListenAndServe()
}

// handedOut are the addresses freeAddr returned in this run: a port the
// kernel gave once and got back when its listener closed can be given
// again, and two sites on one address make Caddy refuse the config
// ("ambiguous site definition").
var (
	handedOutMu sync.Mutex
	handedOut   = map[string]bool{}
)

func freeAddr() (string, error) {
	handedOutMu.Lock()
	defer handedOutMu.Unlock()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		addr := l.Addr().String()
		_ = l.Close()
		if !handedOut[addr] {
			handedOut[addr] = true
			return addr, nil
		}
	}
	return "", errors.New("no unused loopback port in 100 tries")
}

// stack is the upstream and the processes serving the targets: one Caddy
// with a site per target, optionally an older Caddy build with the same
// sites, and the peers found on PATH.
type stack struct {
	dir      string
	upstream string // host:port
	procs    map[string]*exec.Cmd
	order    []string          // start order, stopped in reverse
	admin    map[string]string // Caddy process -> admin host:port
	siteAddr map[string]string // target name -> host:port
}

// pid is the process id serving t, for its CPU time.
func (s *stack) pid(t target) int {
	if c := s.procs[t.proc]; c != nil && c.Process != nil {
		return c.Process.Pid
	}
	return 0
}

func (s *stack) start(name string, c *exec.Cmd) error {
	out, err := os.Create(filepath.Join(s.dir, name+".stdout"))
	if err != nil {
		return err
	}
	c.Stdout, c.Stderr = out, out
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.Start(); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	s.procs[name] = c
	s.order = append(s.order, name)
	return nil
}

func startStack(dir string, set settings, keys *benchKeys, tgts []target, p peers) (*stack, error) {
	s := &stack{dir: dir, procs: map[string]*exec.Cmd{}, admin: map[string]string{}, siteAddr: map[string]string{}}
	var err error
	if s.upstream, err = freeAddr(); err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	up := exec.Command(self) // #nosec G204 -- this very program, as the upstream
	up.Env = append(os.Environ(), upstreamEnv+"="+s.upstream, upstreamJWKSEnv+"="+keys.jwksPath)
	if err := s.start("upstream", up); err != nil {
		return s, err
	}
	for _, t := range tgts {
		if s.siteAddr[t.name], err = freeAddr(); err != nil {
			return s, err
		}
	}
	byProc := map[string][]target{}
	for _, t := range tgts {
		byProc[t.proc] = append(byProc[t.proc], t)
	}
	for _, proc := range []string{procCaddy, procCaddyBefore} {
		if len(byProc[proc]) == 0 {
			continue
		}
		bin := set.caddy
		if proc == procCaddyBefore {
			bin = set.before
		}
		if err := s.startCaddy(proc, bin, keys, byProc[proc]); err != nil {
			return s, err
		}
	}
	if ts := byProc[procOAuth2Proxy]; len(ts) > 0 {
		if err := s.startOAuth2Proxy(p.oauth2Proxy, ts[0]); err != nil {
			return s, err
		}
	}
	if ts := byProc[procHAProxy]; len(ts) > 0 {
		if err := s.startHAProxy(p.haproxy, keys, ts); err != nil {
			return s, err
		}
	}
	for _, t := range tgts {
		if err := waitUp("http://" + s.siteAddr[t.name] + healthPath(t)); err != nil {
			// The temporary directory goes with the run: say what the
			// process wrote, not only where.
			return s, fmt.Errorf("site %q did not come up: %w; the end of its process's output:\n%s", t.name, err, tail(filepath.Join(dir, t.proc+".stdout"), 1500))
		}
	}
	if err := waitUp("http://" + s.upstream + "/"); err != nil {
		return s, fmt.Errorf("upstream: %w", err)
	}
	return s, nil
}

// auditOutput is the audit log's output: through tenantgate_buffered (one
// write(2) per 10 ms, as docs/audit.md recommends and the shipped
// Caddyfiles do) when bin has that module, else straight to the file (an
// older build given as BENCH_BEFORE).
func auditOutput(bin, file string) string {
	plain := fmt.Sprintf("output file %s {\n\t\t\troll_disabled\n\t\t}", file)
	out, err := exec.Command(bin, "list-modules").Output() // #nosec G204 -- the binary under test
	if err != nil || !bytes.Contains(out, []byte("caddy.logging.writers.tenantgate_buffered")) {
		fmt.Printf("audit log of %s: one write(2) per record (no tenantgate_buffered in this build)\n", bin)
		return plain
	}
	fmt.Printf("audit log of %s: through tenantgate_buffered (flush_interval 10ms)\n", bin)
	return fmt.Sprintf("output tenantgate_buffered {\n\t\t\tflush_interval 10ms\n\t\t\toutput file %s {\n\t\t\t\troll_disabled\n\t\t\t}\n\t\t}", file)
}

// healthPath answers without a token on every target.
func healthPath(t target) string {
	if t.proc == procOAuth2Proxy {
		return "/ping"
	}
	return "/healthz"
}

// startCaddy runs one Caddy process (bin) with a site per target.
//
// The audit file is not rolled: rolling gzips the old file in the
// background, a second of CPU taken from whichever target runs then. It
// lives in the run's temporary directory (a few hundred MB), removed at the end.
func (s *stack) startCaddy(proc, bin string, keys *benchKeys, tgts []target) error {
	admin, err := freeAddr()
	if err != nil {
		return err
	}
	s.admin[proc] = admin
	rules, err := shippedRules()
	if err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, `{
	admin %s
	auto_https off
	persist_config off
	log audit {
		include http.handlers.tenant_gate.audit
		%s
		format json
	}
	log default {
		exclude http.handlers.tenant_gate.audit
		output file %s
		level WARN
	}
}
`, admin, auditOutput(bin, filepath.Join(s.dir, proc+"-audit.log")), filepath.Join(s.dir, proc+".log"))
	for _, t := range tgts {
		fmt.Fprintf(&b, "\n# %s\nhttp://%s {\n\tbind 127.0.0.1\n", t.name, s.siteAddr[t.name])
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
		if t.proxyOpts != "" {
			fmt.Fprintf(&b, "\treverse_proxy %s {\n\t\t%s\n\t}\n}\n", s.upstream, t.proxyOpts)
		} else {
			fmt.Fprintf(&b, "\treverse_proxy %s\n}\n", s.upstream)
		}
	}
	caddyfile := filepath.Join(s.dir, proc+".Caddyfile")
	if err := os.WriteFile(caddyfile, []byte(b.String()), 0o600); err != nil {
		return err
	}
	c := exec.Command(bin, "run", "--config", caddyfile, "--adapter", "caddyfile") // #nosec G204 -- the binary the Makefile built
	home := filepath.Join(s.dir, proc+"-home")
	c.Env = append(os.Environ(), "HOME="+home, "XDG_DATA_HOME="+home, "XDG_CONFIG_HOME="+home,
		"TG_BENCH_ASSERTION_SECRET="+keys.assertionSecret)
	return s.start(proc, c)
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
	deadline := time.Now().Add(30 * time.Second)
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
	for i := len(s.order) - 1; i >= 0; i-- {
		c := s.procs[s.order[i]]
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

// tail is the last n bytes of the file at path (or why it cannot be read).
func tail(path string, n int) string {
	b, err := os.ReadFile(path) // #nosec G304 -- a file of this run's temporary directory
	if err != nil {
		return err.Error()
	}
	return string(b[max(0, len(b)-n):])
}
