// Package scripts_test checks the operator scripts as a user runs them:
// scripts/run.sh (`make run`) and scripts/stop.sh (`make stop`). Every run
// here uses ports it picked itself and a data directory of its own, so it
// works while 8080 (or a developer's `make run`) is busy.
package scripts_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// upLine is what run.sh prints once everything answers; nothing else may
// print it.
const upLine = "tenantgate is up"

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// freePort returns a port nothing listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().(*net.TCPAddr).Port
}

type stack struct{ gate, admin, backend int }

func newStack(t *testing.T) stack {
	s := stack{freePort(t), freePort(t), freePort(t)}
	for s.admin == s.gate || s.backend == s.gate || s.backend == s.admin {
		s = stack{freePort(t), freePort(t), freePort(t)}
	}
	return s
}

// script runs scripts/NAME with the stack's ports and the data directory.
func script(ctx context.Context, t *testing.T, name string, s stack, data string, extra ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.CommandContext(ctx, filepath.Join(repoRoot(t), "scripts", name))
	cmd.Env = append(os.Environ(),
		fmt.Sprintf("TENANTGATE_LISTEN=:%d", s.gate),
		fmt.Sprintf("TENANTGATE_ADMIN=127.0.0.1:%d", s.admin),
		fmt.Sprintf("TENANTGATE_BACKEND_LISTEN=127.0.0.1:%d", s.backend),
		"TENANTGATE_DATA="+data,
		"TENANTGATE_KEYS="+filepath.Join(data, "keys"),
		"TENANTGATE_CONFIG=", "TENANTGATE_SCHEME=", "TENANTGATE_AUDIT_LOG=",
	)
	cmd.Env = append(cmd.Env, extra...)
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// The first stumble: a port already taken. run.sh must stop before
// starting anything, name the port and say how to free it, exit non-zero,
// and never print the "up" line. Needs no binaries: the check comes first.
func TestRunFailsFastWhenAPortIsTaken(t *testing.T) {
	for _, which := range []string{"gate", "admin", "backend"} {
		t.Run(which, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = ln.Close() }()
			taken := ln.Addr().(*net.TCPAddr).Port
			s := newStack(t)
			switch which {
			case "gate":
				s.gate = taken
			case "admin":
				s.admin = taken
			case "backend":
				s.backend = taken
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			data := t.TempDir()
			out, err := script(ctx, t, "run.sh", s, data).CombinedOutput()
			if err == nil {
				t.Fatalf("run.sh exited 0 with port %d taken:\n%s", taken, out)
			}
			if bytes.Contains(out, []byte(upLine)) {
				t.Errorf("run.sh printed %q with port %d taken:\n%s", upLine, taken, out)
			}
			want := fmt.Sprintf("port %d (%s) is already in use", taken, which)
			if !bytes.Contains(out, []byte(want)) || !bytes.Contains(out, []byte("make stop")) {
				t.Errorf("output does not say %q and how to free it:\n%s", want, out)
			}
			if _, err := os.Stat(filepath.Join(data, "keys")); err == nil {
				t.Errorf("run.sh made keys before checking its ports")
			}
		})
	}
}

func needBinaries(t *testing.T) {
	t.Helper()
	for _, b := range []string{"caddy", "backend", "tgdev"} {
		if _, err := os.Stat(filepath.Join(repoRoot(t), "bin", b)); err != nil {
			if os.Getenv("TENANTGATE_REQUIRE_SERVICES") == "1" {
				t.Fatalf("bin/%s is missing (make build)", b)
			}
			t.Skipf("bin/%s is missing: run `make build` first (make test does)", b)
		}
	}
}

// waitUp reads run.sh's output until the up line, or fails.
func waitUp(t *testing.T, r io.Reader, log *bytes.Buffer) {
	t.Helper()
	found := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(r)
		ok := false
		for sc.Scan() {
			log.WriteString(sc.Text() + "\n")
			if !ok && strings.HasPrefix(sc.Text(), upLine) {
				ok = true
				found <- true
			}
		}
		if !ok {
			found <- false
		}
	}()
	select {
	case ok := <-found:
		if !ok {
			t.Fatalf("run.sh ended without %q", upLine)
		}
	case <-time.After(120 * time.Second):
		t.Fatalf("no %q within 120 s", upLine)
	}
}

func answers(url string) bool {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// The whole life of a `make run` left in the background: up only when all
// three answer, a second run refused while it lives, `make stop` ends it
// and frees every port.
func TestRunUpSecondRunRefusedAndStop(t *testing.T) {
	needBinaries(t)
	s, data := newStack(t), t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	run := script(ctx, t, "run.sh", s, data)
	pr, pw := io.Pipe()
	run.Stdout, run.Stderr = pw, pw
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	exited := make(chan error, 1)
	go func() { err := run.Wait(); _ = pw.Close(); exited <- err }()
	defer func() {
		if t.Failed() {
			t.Logf("run.sh output:\n%s", log.String())
		}
	}()
	waitUp(t, pr, &log)

	for _, url := range []string{
		fmt.Sprintf("http://localhost:%d/healthz", s.gate),
		fmt.Sprintf("http://127.0.0.1:%d/config/", s.admin),
		fmt.Sprintf("http://127.0.0.1:%d/healthz", s.backend),
	} {
		if !answers(url) {
			t.Errorf("%s does not answer after %q", url, upLine)
		}
	}
	for _, f := range []string{"run.pid", "gate.pid", "backend.pid"} {
		if _, err := os.Stat(filepath.Join(data, "run", f)); err != nil {
			t.Errorf("no pid file %s: %v", f, err)
		}
	}

	// A second run on the same data directory is refused while this one lives.
	out, err := script(ctx, t, "run.sh", newStack(t), data).CombinedOutput()
	if err == nil || bytes.Contains(out, []byte(upLine)) || !bytes.Contains(out, []byte("make stop")) {
		t.Errorf("second run: err %v, output:\n%s", err, out)
	}

	stop := script(ctx, t, "stop.sh", s, data)
	if out, err := stop.CombinedOutput(); err != nil || !bytes.Contains(out, []byte("make stop: stopped")) {
		t.Errorf("stop.sh: %v\n%s", err, out)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("run.sh after make stop: %v (want exit 0)", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run.sh still running 30 s after make stop")
	}
	for _, p := range []int{s.gate, s.admin, s.backend} {
		if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", p), time.Second); err == nil {
			_ = c.Close()
			t.Errorf("port %d still answers after make stop", p)
		}
	}
	if out, _ := script(ctx, t, "stop.sh", s, data).CombinedOutput(); !bytes.Contains(out, []byte("no `make run` is running")) {
		t.Errorf("stop.sh with nothing running:\n%s", out)
	}
}

// A gate that cannot start (here: a broken Caddyfile) is reported with the
// cause from its log, non-zero, and no up line; the backend is stopped too.
func TestRunReportsAGateThatDied(t *testing.T) {
	needBinaries(t)
	s, data := newStack(t), t.TempDir()
	bad := filepath.Join(data, "broken.Caddyfile")
	if err := os.WriteFile(bad, []byte("http://:{$TENANTGATE_LISTEN} {\n\ttenant_gate {\n\t\taudiance x\n\t}\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := script(ctx, t, "run.sh", s, data, "TENANTGATE_CONFIG="+bad).CombinedOutput()
	if err == nil || bytes.Contains(out, []byte(upLine)) {
		t.Fatalf("run.sh with a broken Caddyfile: err %v, output:\n%s", err, out)
	}
	if !bytes.Contains(out, []byte("the gate exited before it was up")) || !bytes.Contains(out, []byte("audiance")) {
		t.Errorf("output does not name the gate and its error:\n%s", out)
	}
	if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", s.backend), time.Second); err == nil {
		_ = c.Close()
		t.Errorf("the backend still listens after the gate failed")
	}
}
