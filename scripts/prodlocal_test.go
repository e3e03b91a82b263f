package scripts_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// directives returns the lines of a Caddyfile that start with one of the
// given words, trimmed: the parts production.local must share with production.
func directives(t *testing.T, path string, words ...string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		for _, w := range words {
			if strings.HasPrefix(line, w+" ") {
				out = append(out, line)
			}
		}
	}
	return out
}

// production.local.Caddyfile is only worth trying while it is production's
// shape: the same rules, limits and gate options.
func TestProductionLocalKeepsProductionsShape(t *testing.T) {
	root := repoRoot(t)
	prod := filepath.Join(root, "caddyfile", "production.Caddyfile")
	local := filepath.Join(root, "caddyfile", "production.local.Caddyfile")
	words := []string{"rule", "limit", "algorithms", "tenant_claim", "user_claim", "roles_claim", "leeway",
		"max_token_bytes", "mode", "assertion_audience", "token_type", "audience", "on_store_error", "timeout", "max_size"}
	a, b := directives(t, prod, words...), directives(t, local, words...)
	if strings.Join(a, "\n") != strings.Join(b, "\n") {
		t.Errorf("production.local.Caddyfile drifted from production.Caddyfile:\nproduction:\n  %s\nlocal:\n  %s",
			strings.Join(a, "\n  "), strings.Join(b, "\n  "))
	}
}

// `make run-prod-local` as the README gives it: HTTPS on loopback with
// Caddy's local CA, a dev token with typ at+jwt passes token_type at+jwt,
// and a request without one is 401.
func TestRunProdLocal(t *testing.T) {
	needBinaries(t)
	s, data := newStack(t), t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	run := script(ctx, t, "run.sh", s, data,
		"TENANTGATE_CONFIG=caddyfile/production.local.Caddyfile", "TENANTGATE_SCHEME=https")
	pr, pw := io.Pipe()
	run.Stdout, run.Stderr = pw, pw
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	go func() { _ = run.Wait(); _ = pw.Close() }()
	defer func() {
		_, _ = script(context.Background(), t, "stop.sh", s, data).CombinedOutput()
		if t.Failed() {
			t.Logf("run.sh output:\n%s", log.String())
		}
	}()
	waitUp(t, pr, &log)

	ca, err := os.ReadFile(filepath.Join(data, "xdg", "caddy", "pki", "authorities", "local", "root.crt"))
	if err != nil {
		t.Fatalf("the local CA the banner names: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		t.Fatal("root.crt holds no certificate")
	}
	client := http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	tok, err := exec.CommandContext(ctx, filepath.Join(repoRoot(t), "bin", "tgdev"), "token", "--dir", filepath.Join(data, "keys"),
		"--tenant", "acme", "--roles", "ensemble:read").Output()
	if err != nil {
		t.Fatal(err)
	}
	url := fmt.Sprintf("https://localhost:%d/api/v1/whoami", s.gate)
	for _, tc := range []struct {
		auth string
		want int
	}{{"Bearer " + strings.TrimSpace(string(tok)), 200}, {"", 401}} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", url, err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s (token sent: %t): %d %s, want %d", url, tc.auth != "", resp.StatusCode, body, tc.want)
		}
	}
	if _, err := os.Stat(filepath.Join(data, "audit.log")); err != nil {
		t.Errorf("no audit log under the data directory: %v", err)
	}
}
