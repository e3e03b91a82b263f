package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/backend/store"
	"github.com/tenantgate/tenantgate/backend/store/pgtest"
)

func TestPostgresFlags(t *testing.T) {
	e := env{
		"TENANTGATE_BACKEND_ASSERTION_KEY":           "k.pem",
		"TENANTGATE_BACKEND_DB":                      "postgres://u@h/db",
		"TENANTGATE_BACKEND_DB_POOL_SIZE":            "3",
		"TENANTGATE_BACKEND_DB_STATEMENT_TIMEOUT":    "2s",
		"TENANTGATE_BACKEND_DB_ROLE":                 "app_role",
		"TENANTGATE_BACKEND_DB_MIGRATE_URL":          "postgres://owner@h/db",
		"TENANTGATE_BACKEND_DB_UNRELATED_IS_IGNORED": "x",
	}
	o, err := parseFlags(nil, e.lookup, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if want := (store.PostgresOptions{MaxConns: 3, StatementTimeout: 2 * time.Second, Role: "app_role", MigrateURL: "postgres://owner@h/db"}); o.pg != want || o.db != "postgres://u@h/db" {
		t.Errorf("from env: %+v %s, want %+v", o.pg, o.db, want)
	}
	o, err = parseFlags([]string{"--db-pool-size", "7", "--db-statement-timeout", "0", "--db-role", "flag_role"}, e.lookup, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if want := (store.PostgresOptions{MaxConns: 7, Role: "flag_role", MigrateURL: "postgres://owner@h/db"}); o.pg != want {
		t.Errorf("flags over env: %+v, want %+v", o.pg, want)
	}
	for _, bad := range [][]string{{"--db-pool-size", "0"}, {"--db-pool-size", "many"}, {"--db-pool-size", "99999999999"}, {"--db-statement-timeout", "soon"}} {
		if _, err := parseFlags(append([]string{"--assertion-key", "k"}, bad...), env{}.lookup, io.Discard); err == nil || !strings.Contains(err.Error(), strings.TrimPrefix(bad[0], "-")) {
			t.Errorf("%v: %v", bad, err)
		}
	}
	if _, err := parseFlags([]string{"--assertion-key", "k"}, env{"TENANTGATE_BACKEND_DB_POOL_SIZE": "-1"}.lookup, io.Discard); err == nil || !strings.Contains(err.Error(), "TENANTGATE_BACKEND_DB_POOL_SIZE") {
		t.Errorf("bad env pool size: %v", err)
	}
}

func TestDescribeDB(t *testing.T) {
	for in, want := range map[string]string{
		".data/backend.db":                       ".data/backend.db",
		"postgres://app:s3cret@db:5432/tg":       "postgres://app:xxxxx@db:5432/tg",
		"postgresql://db/tg?sslmode=verify-full": "postgresql://db/tg?sslmode=verify-full",
		"postgres://%zz":                         "postgres://(unparsable URL)",
	} {
		if got := describeDB(in); got != want {
			t.Errorf("describeDB(%q) = %q, want %q", in, got, want)
		}
	}
}

// withPassword returns u with a password: trust authentication ignores it,
// and the test checks that no log line repeats it.
func withPassword(t *testing.T, u string) string {
	t.Helper()
	parsed, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	parsed.User = url.UserPassword(parsed.User.Username(), "never-logged-pw")
	return parsed.String()
}

// TestServePostgres serves in process on a PostgreSQL database: /healthz
// names the store and its pool, the demo tenants are seeded, writes and
// reads go through, and the password never reaches the log.
func TestServePostgres(t *testing.T) {
	db := pgtest.New(t)
	dir := t.TempDir()
	keyPath, signer := writeKey(t, dir)
	c := &client{signer: signer, http: &http.Client{Timeout: 5 * time.Second}}
	in := serveInProcess(t, []string{"--listen", "127.0.0.1:0", "--db", withPassword(t, db.RuntimeURL(t)),
		"--db-pool-size", "3", "--assertion-key", keyPath, "--seed-demo"}, env{"TENANTGATE_BACKEND_DB_MIGRATE_URL": db.URL})
	res, err := c.http.Get(in.url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	var health map[string]any
	err = decodeJSONBody(res, &health)
	if err != nil || res.StatusCode != http.StatusOK || len(health) != 2 || health["status"] != "ok" || health["store"] != "postgres" {
		t.Errorf("healthz: %d %v %v", res.StatusCode, health, err)
	}
	if got := demoSeeds(t, in.logs.String()); len(got) != 2 || !got["acme"] || !got["globex"] {
		t.Errorf("seeded %v", got)
	}
	status, m, err := c.do(in.url, "acme", "POST", "/api/v1/ensemble/create", map[string]any{"name": "pg", "method": "majority"})
	if err != nil || status != http.StatusCreated {
		t.Fatalf("create: %d %v %v", status, err, m)
	}
	if status, _, err := c.do(in.url, "globex", "GET", "/api/v1/ensemble/"+m["ensemble_id"].(string)+"/weights", nil); err != nil || status != http.StatusNotFound {
		t.Errorf("globex reads acme's ensemble: %d %v", status, err)
	}
	if status, _, err := c.doKey(in.url, "acme", "POST", "/api/v1/hedging/execute", nil, "pg-1"); err != nil || status != http.StatusOK {
		t.Errorf("execute: %d %v", status, err)
	}
	if code := in.stop(t); code != exitOK {
		t.Errorf("exit %d:\n%s", code, in.logs.String())
	}
	logs := in.logs.String()
	if strings.Contains(logs, "never-logged-pw") || !strings.Contains(logs, `"db":"postgres://`+db.Role+`:xxxxx@`) || strings.Contains(logs, "one-machine") {
		t.Errorf("the log shows the password or not the redacted URL:\n%s", logs)
	}

	// A database that does not answer stops the start with a --db error.
	var errb syncBuffer
	code := run(context.Background(), []string{"--assertion-key", keyPath, "--db", "postgres://postgres@127.0.0.1:1/x?connect_timeout=2"}, env{}.lookup, io.Discard, &errb)
	if last := lastLine(errb.String()); code != exitFailure || !strings.HasPrefix(last, "backend: --db: store: connect to postgres") || !strings.Contains(last, "connection refused") {
		t.Errorf("unreachable database: exit %d, %q", code, last)
	}
}

// TestDurabilityAcrossSIGKILLPostgres is the SIGKILL test on PostgreSQL:
// writers run through the binary, it is killed without warning mid-stream,
// restarted on the same database, and every write acknowledged with 2xx
// must be there.
func TestDurabilityAcrossSIGKILLPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	db := pgtest.New(t)
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not in PATH")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "backend")
	if out, err := exec.Command(goBin, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	keyPath, signer := writeKey(t, dir)
	c := &client{signer: signer, http: &http.Client{Timeout: 5 * time.Second}}
	args := []string{"--db", db.RuntimeURL(t), "--db-migrate-url", db.URL, "--assertion-key", keyPath, "--seed-demo"}
	p1 := start(t, bin, args...)

	var mu sync.Mutex
	acked := map[string]string{} // ensemble id -> its agent ("" until the agent is acknowledged)
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
				acked[id] = ""
				mu.Unlock()
				agent := fmt.Sprintf("agent-%d-%d", w, i)
				status, _, err = c.do(p1.url, "acme", "POST", "/api/v1/ensemble/"+id+"/register-agent", map[string]any{"agent_id": agent, "agent_type": "t", "initial_weight": 1})
				if err != nil || status != http.StatusCreated {
					return
				}
				mu.Lock()
				acked[id] = agent
				mu.Unlock()
			}
		}(w)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		n := len(acked)
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

	p2 := start(t, bin, args...)
	found := map[string]map[string]bool{}
	cursor := ""
	for pages := 0; pages < 100; pages++ {
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
		if cursor, _ = m["next_cursor"].(string); cursor == "" {
			break
		}
	}
	lostEnsembles, lostAgents, agents := 0, 0, 0
	for id, agent := range acked {
		got, ok := found[id]
		if !ok {
			lostEnsembles++
		}
		if agent != "" {
			agents++
			if !got[agent] {
				lostAgents++
			}
		}
	}
	t.Logf("durability (postgres): acknowledged %d ensembles + %d agents before SIGKILL; after restart found %d ensembles (lost %d acknowledged ensembles, %d acknowledged agents)",
		len(acked), agents, len(found), lostEnsembles, lostAgents)
	if lostEnsembles+lostAgents > 0 {
		t.Errorf("lost %d acknowledged ensembles and %d acknowledged agents", lostEnsembles, lostAgents)
	}
	if len(acked) == 0 {
		t.Error("no write was acknowledged")
	}
}

func decodeJSONBody(res *http.Response, v any) error {
	defer func() { _ = res.Body.Close() }()
	return json.NewDecoder(res.Body).Decode(v)
}

// `backend accounts` provisions and shows an account on PostgreSQL too.
func TestAccountsOnPostgres(t *testing.T) {
	db := pgtest.New(t)
	var out, errb syncBuffer
	runtime := db.RuntimeURL(t)
	code := run(context.Background(), []string{"accounts", "set", "--db", runtime, "--tenant", "initech", "--spot", "BTC=1.5", "--cash", "1000"},
		env{"TENANTGATE_BACKEND_DB_MIGRATE_URL": db.URL}.lookup, &out, &errb)
	if code != exitOK || !strings.Contains(out.String(), `"BTC": 1.5`) {
		t.Fatalf("accounts set: exit %d\n%s\n%s", code, out.String(), errb.String())
	}
	out = syncBuffer{}
	code = run(context.Background(), []string{"accounts", "show", "--db", runtime, "--tenant", "initech"}, env{}.lookup, &out, &errb)
	if code != exitOK || !strings.Contains(out.String(), `"cash_usd": 1000`) {
		t.Errorf("accounts show: exit %d\n%s\n%s", code, out.String(), errb.String())
	}
	code = run(context.Background(), []string{"accounts", "show", "--db", runtime, "--tenant", "acme"}, env{}.lookup, &out, &errb)
	if code != exitFailure {
		t.Errorf("accounts show of a tenant without one: exit %d", code)
	}
}

// The runtime DSN must not be the owner's (or a superuser's): the backend
// refuses to start and says why. The same URL for both is the one-machine
// mode: it starts, with a warning.
func TestPostgresOwnerDSN(t *testing.T) {
	db := pgtest.New(t)
	keyPath, _ := writeKey(t, t.TempDir())
	var errb syncBuffer
	code := run(context.Background(), []string{"--assertion-key", keyPath, "--listen", "127.0.0.1:0", "--db", db.URL}, env{}.lookup, io.Discard, &errb)
	if last := lastLine(errb.String()); code != exitFailure || !strings.Contains(last, "superuser") || !strings.Contains(last, "--db") {
		t.Errorf("owner DSN as --db: exit %d, %q", code, last)
	}
	in := serveInProcess(t, []string{"--listen", "127.0.0.1:0", "--db", db.URL, "--db-migrate-url", db.URL, "--db-role", db.Role,
		"--assertion-key", keyPath}, env{})
	found := false
	for _, line := range logLines(t, in.logs.String()) {
		if line["level"] == "warn" && strings.Contains(line["msg"].(string), "one-machine mode") {
			found = true
		}
	}
	if !found {
		t.Errorf("no one-machine warning:\n%s", in.logs.String())
	}
}
