package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/module/assertion"
)

// process is a running bin/backend.
type process struct {
	cmd    *exec.Cmd
	url    string
	logs   *syncBuffer
	exited chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

func start(t *testing.T, bin string, args ...string) *process {
	t.Helper()
	addr := freePort(t)
	cmd := exec.Command(bin, append([]string{"--listen", addr}, args...)...)
	p := &process{cmd: cmd, url: "http://" + addr, logs: &syncBuffer{}, exited: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = p.logs, p.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.exited
	})
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		res, err := http.Get(p.url + "/healthz")
		if err == nil {
			_ = res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return p
			}
		}
		select {
		case err := <-p.exited:
			p.exited <- err // for the cleanup's receive, which would otherwise wait forever
			t.Fatalf("backend exited: %v\n%s", err, p.logs.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("backend did not become healthy:\n%s", p.logs.String())
	return nil
}

type client struct {
	signer *assertion.Signer
	http   *http.Client
}

func (c *client) do(base, tenant, method, path string, body any) (int, map[string]any, error) {
	return c.doKey(base, tenant, method, path, body, "")
}

// doKey is do with an Idempotency-Key header (none if key is "").
func (c *client) doKey(base, tenant, method, path string, body any, key string) (int, map[string]any, error) {
	raw, err := c.signer.Sign(assertion.Claims{Issuer: "tenantgate", Audience: "backend", Tenant: tenant, Subject: "u", Method: method,
		Roles: []string{"ensemble:read", "ensemble:write", "hedging:read", "hedging:trade", "hedging:admin"},
		Path:  strings.SplitN(path, "?", 2)[0], ID: fmt.Sprintf("req-%d", time.Now().UnixNano())})
	if err != nil {
		return 0, nil, err
	}
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, base+path, rd)
	req.Header.Set(assertion.Header, raw)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	res, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer func() { _ = res.Body.Close() }()
	var m map[string]any
	if err := json.NewDecoder(res.Body).Decode(&m); err != nil {
		return res.StatusCode, nil, err
	}
	return res.StatusCode, m, nil
}

// TestDurabilityAcrossSIGKILL builds the binary, writes through it from
// several goroutines, kills it with SIGKILL mid-stream, restarts it on the
// same file and checks that every write acknowledged with 2xx is there.
func TestDurabilityAcrossSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not in PATH")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "backend")
	build := exec.Command(goBin, "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	pemBytes, _ := assertion.EncodePublicKeyPEM(pub)
	keyPath := filepath.Join(dir, "assertion.pub.pem")
	if err := os.WriteFile(keyPath, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	signer, _ := assertion.NewEd25519Signer(priv)
	c := &client{signer: signer, http: &http.Client{Timeout: 5 * time.Second}}
	db := filepath.Join(dir, "data", "backend.db")

	p1 := start(t, bin, "--db", db, "--assertion-key", keyPath, "--seed-demo")

	// Writers: create an ensemble, then register an agent in it; record
	// what was acknowledged.
	type ack struct{ ensemble, agent string }
	var mu sync.Mutex
	ensembles := map[string]bool{}
	var agents []ack
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				status, m, err := c.do(p1.url, "acme", "POST", "/api/v1/ensemble/create", map[string]any{"name": fmt.Sprintf("w%d-%d", w, i), "method": "majority"})
				if err != nil || status != http.StatusCreated {
					return
				}
				id := m["ensemble_id"].(string)
				mu.Lock()
				ensembles[id] = true
				mu.Unlock()
				agent := fmt.Sprintf("agent-%d-%d", w, i)
				status, _, err = c.do(p1.url, "acme", "POST", "/api/v1/ensemble/"+id+"/register-agent", map[string]any{"agent_id": agent, "agent_type": "t", "initial_weight": 1})
				if err != nil || status != http.StatusCreated {
					return
				}
				mu.Lock()
				agents = append(agents, ack{id, agent})
				mu.Unlock()
			}
		}(w)
	}
	// Let writes flow, then kill without warning while they are in flight.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		n := len(ensembles)
		mu.Unlock()
		if n >= 150 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := p1.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p1.exited
	cancel()
	wg.Wait()
	p1.exited <- nil // for the cleanup's receive

	// The log lines carry request_id and tenant_id.
	checkLogs(t, p1.logs.String())

	p2 := start(t, bin, "--db", db, "--assertion-key", keyPath, "--seed-demo")
	found := map[string]map[string]bool{}
	cursor := ""
	for {
		path := "/api/v1/ensemble/?limit=100"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		status, m, err := c.do(p2.url, "acme", "GET", path, nil)
		if err != nil || status != http.StatusOK {
			t.Fatalf("list: %d %v", status, err)
		}
		for _, it := range m["items"].([]any) {
			e := it.(map[string]any)
			set := map[string]bool{}
			for _, a := range e["agents"].([]any) {
				set[a.(map[string]any)["agent_id"].(string)] = true
			}
			found[e["ensemble_id"].(string)] = set
		}
		cursor, _ = m["next_cursor"].(string)
		if cursor == "" {
			break
		}
	}
	lostEnsembles, lostAgents := 0, 0
	for id := range ensembles {
		if _, ok := found[id]; !ok {
			lostEnsembles++
		}
	}
	for _, a := range agents {
		if !found[a.ensemble][a.agent] {
			lostAgents++
		}
	}
	t.Logf("durability: acknowledged %d ensembles + %d agents before SIGKILL; after restart found %d ensembles (lost %d acknowledged ensembles, %d acknowledged agents)",
		len(ensembles), len(agents), len(found), lostEnsembles, lostAgents)
	if lostEnsembles+lostAgents > 0 {
		t.Errorf("lost %d acknowledged ensembles and %d acknowledged agents", lostEnsembles, lostAgents)
	}
	if len(ensembles) == 0 {
		t.Error("no write was acknowledged")
	}
	// Seeding again did not reset the demo account, and SIGTERM shuts down cleanly.
	if status, m, err := c.do(p2.url, "acme", "GET", "/api/v1/hedging/analysis", nil); err != nil || status != 200 || len(m["assets"].([]any)) != 3 {
		t.Errorf("analysis after restart: %d %v %v", status, err, m)
	}
	if err := p2.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p2.exited:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v\n%s", err, p2.logs.String())
		}
		p2.exited <- nil
	case <-time.After(10 * time.Second):
		t.Error("no exit 10s after SIGTERM")
	}
}

func checkLogs(t *testing.T, logs string) {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(logs))
	requests := 0
	for sc.Scan() {
		var line map[string]any
		if json.Unmarshal(sc.Bytes(), &line) != nil {
			t.Errorf("log line is not JSON: %s", sc.Text())
			continue
		}
		if line["msg"] != "request" || line["path"] == "/healthz" {
			continue
		}
		requests++
		if id, _ := line["request_id"].(string); !strings.HasPrefix(id, "req-") {
			t.Errorf("request line without the assertion's jti as request_id: %s", sc.Text())
		}
		if line["tenant_id"] != "acme" {
			t.Errorf("request line without tenant_id: %s", sc.Text())
		}
	}
	if requests == 0 {
		t.Error("no request log lines")
	}
}
