package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"

	"github.com/tenantgate/tenantgate/backend/api"
	"github.com/tenantgate/tenantgate/module/assertion"

	_ "modernc.org/sqlite" // to inspect the database the command wrote
)

// env is a fake environment for run and parseFlags.
type env map[string]string

func (e env) lookup(name string) (string, bool) {
	v, ok := e[name]
	return v, ok
}

// wantRoutes is the `backend routes` output documented in backend/README.md.
const wantRoutes = `GET /healthz public
GET /api/v1/whoami authenticated
GET /api/v1/ensemble/ roles ensemble:read ensemble:write
GET /api/v1/ensemble/agent-rankings roles ensemble:read ensemble:write
POST /api/v1/ensemble/create roles ensemble:write
POST /api/v1/ensemble/{ensemble_id}/register-agent roles ensemble:write
POST /api/v1/ensemble/{ensemble_id}/predict roles ensemble:read ensemble:write
POST /api/v1/ensemble/{ensemble_id}/outcomes roles ensemble:write
GET /api/v1/ensemble/{ensemble_id}/performance roles ensemble:read ensemble:write
GET /api/v1/ensemble/{ensemble_id}/weights roles ensemble:read ensemble:write
POST /api/v1/ensemble/{ensemble_id}/optimize-weights roles ensemble:write
GET /api/v1/hedging/analysis roles hedging:read hedging:trade hedging:admin
POST /api/v1/hedging/execute roles hedging:trade hedging:admin
POST /api/v1/hedging/close roles hedging:admin
`

func TestRoutesSubcommand(t *testing.T) {
	var out, errb bytes.Buffer
	// Flags and environment play no part: routes needs no key.
	if code := run(context.Background(), []string{"routes"}, env{"TENANTGATE_BACKEND_SEED_DEMO": "maybe"}.lookup, &out, &errb); code != exitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if out.String() != wantRoutes {
		t.Errorf("routes output:\n%s\nwant (as in backend/README.md):\n%s", out.String(), wantRoutes)
	}
	if n := strings.Count(out.String(), "\n"); n != len(api.Routes()) {
		t.Errorf("%d lines for %d routes", n, len(api.Routes()))
	}
	if errb.Len() != 0 {
		t.Errorf("stderr: %s", errb.String())
	}

	out.Reset()
	errb.Reset()
	if code := run(context.Background(), []string{"routes", "--json"}, env{}.lookup, &out, &errb); code != exitUsage {
		t.Errorf("routes with an argument: exit %d, want %d", code, exitUsage)
	}
	if out.Len() != 0 || !strings.Contains(errb.String(), "routes takes no arguments") {
		t.Errorf("routes with an argument: stdout %q, stderr %q", out.String(), errb.String())
	}
}

func TestDisplayPattern(t *testing.T) {
	for in, want := range map[string]string{
		"/api/v1/ensemble/{$}":       "/api/v1/ensemble/",
		"/files/{path...}":           "/files/**",
		"/api/v1/ensemble/{id}/x":    "/api/v1/ensemble/{id}/x",
		"/api/v1/tenants/{t}/{r...}": "/api/v1/tenants/{t}/**",
	} {
		if got := api.DisplayPattern(in); got != want {
			t.Errorf("DisplayPattern(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestFlagsDefaults(t *testing.T) {
	o, err := parseFlags([]string{"--assertion-key", "k.pem"}, env{}.lookup, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := options{listen: "127.0.0.1:9001", db: ".data/backend.db", assertionKey: "k.pem", assertionAudience: "backend",
		assertionIssuer: "tenantgate", seedDemo: false, logLevel: zapcore.InfoLevel, idempotencyTTL: 24 * time.Hour, pg: defaultPostgresOptions}
	if o != want {
		t.Errorf("options = %+v, want %+v", o, want)
	}
}

func TestFlagsEnvironmentAndOverride(t *testing.T) {
	e := env{
		"TENANTGATE_BACKEND_LISTEN":             "127.0.0.1:7777",
		"TENANTGATE_BACKEND_DB":                 "/env/backend.db",
		"TENANTGATE_BACKEND_ASSERTION_KEY":      "/env/key.pem",
		"TENANTGATE_BACKEND_ASSERTION_AUDIENCE": "env-aud",
		"TENANTGATE_BACKEND_ASSERTION_ISSUER":   "env-iss",
		"TENANTGATE_BACKEND_SEED_DEMO":          "true",
		"TENANTGATE_BACKEND_LOG_LEVEL":          "warn",
		"BACKEND_DB":                            "/unprefixed/is/ignored.db",
	}
	o, err := parseFlags(nil, e.lookup, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := options{listen: "127.0.0.1:7777", db: "/env/backend.db", assertionKey: "/env/key.pem", assertionAudience: "env-aud",
		assertionIssuer: "env-iss", seedDemo: true, logLevel: zapcore.WarnLevel, idempotencyTTL: 24 * time.Hour, pg: defaultPostgresOptions}
	if o != want {
		t.Errorf("from env: %+v, want %+v", o, want)
	}
	// The command line wins over the environment, flag by flag.
	o, err = parseFlags([]string{"--assertion-key", "/flag/key.pem", "--seed-demo=false", "--log-level", "debug"}, e.lookup, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want.assertionKey, want.seedDemo, want.logLevel = "/flag/key.pem", false, zapcore.DebugLevel
	if o != want {
		t.Errorf("flags over env: %+v, want %+v", o, want)
	}
	o, err = parseFlags([]string{"--listen", ":1"}, e.lookup, io.Discard)
	if err != nil || o.listen != ":1" {
		t.Errorf("--listen over env: %+v %v", o, err)
	}
}

// Usage errors: a clear message on stderr, exit 2, and nothing served.
func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  env
		want []string
	}{
		{"missing key", nil, env{}, []string{"--assertion-key", "TENANTGATE_BACKEND_ASSERTION_KEY", "is required"}},
		{"missing key, serve", []string{"serve"}, env{}, []string{"--assertion-key", "is required"}},
		{"empty key from env", nil, env{"TENANTGATE_BACKEND_ASSERTION_KEY": ""}, []string{"--assertion-key", "is required"}},
		{"bad bool in env", []string{"--assertion-key", "k"}, env{"TENANTGATE_BACKEND_SEED_DEMO": "maybe"}, []string{`TENANTGATE_BACKEND_SEED_DEMO="maybe"`}},
		{"flag without value", []string{"--listen"}, env{}, []string{"flag needs an argument", "-listen"}},
		{"unknown flag", []string{"--port", "1"}, env{}, []string{"flag provided but not defined", "-port"}},
		{"stray argument", []string{"--assertion-key", "k", "extra"}, env{}, []string{`unexpected argument "extra"`, `"routes"`}},
		{"bad log level", []string{"--assertion-key", "k", "--log-level", "loud"}, env{}, []string{"--log-level", "loud"}},
		{"bad log level from env", []string{"--assertion-key", "k"}, env{"TENANTGATE_BACKEND_LOG_LEVEL": "verbose"}, []string{"--log-level", "verbose"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run(context.Background(), tc.args, tc.env.lookup, &out, &errb); code != exitUsage {
				t.Errorf("exit %d, want %d; stderr: %s", code, exitUsage, errb.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(errb.String(), w) {
					t.Errorf("stderr does not mention %q:\n%s", w, errb.String())
				}
			}
			if out.Len() != 0 {
				t.Errorf("stdout: %q", out.String())
			}
		})
	}
}

func TestHelp(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"-h"}, env{}.lookup, &out, &errb); code != exitOK {
		t.Errorf("-h: exit %d", code)
	}
	for _, w := range []string{"usage: backend [serve] [flags]", "backend routes", "TENANTGATE_BACKEND_LISTEN", "-assertion-key", "-seed-demo", "-log-level"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("usage does not mention %q:\n%s", w, out.String())
		}
	}
}

// writeKey writes a fresh Ed25519 public key as PEM and returns its path and
// a signer for the matching private key.
func writeKey(t *testing.T, dir string) (string, *assertion.Signer) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pemBytes, err := assertion.EncodePublicKeyPEM(pub)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "assertion.pub.pem")
	if err := os.WriteFile(path, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	signer, err := assertion.NewEd25519Signer(priv)
	if err != nil {
		t.Fatal(err)
	}
	return path, signer
}

// instance is run() serving in this process.
type instance struct {
	url    string
	logs   *syncBuffer
	cancel context.CancelFunc
	done   chan int
}

// serveInProcess starts run with args and the environment e, and waits for
// the "backend listening" log line.
func serveInProcess(t *testing.T, args []string, e env) *instance {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	in := &instance{logs: &syncBuffer{}, cancel: cancel, done: make(chan int, 1)}
	go func() { in.done <- run(ctx, args, e.lookup, io.Discard, in.logs) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-in.done:
		// run's own bound on a graceful stop is shutdownTimeout; waiting
		// less would blame it for the machine's load.
		case <-time.After(shutdownTimeout + 10*time.Second):
			t.Errorf("run did not return %s after cancel", shutdownTimeout+10*time.Second)
		}
	})
	deadline := time.After(10 * time.Second)
	for {
		for _, line := range logLines(t, in.logs.String()) {
			if line["msg"] == "backend listening" {
				in.url = "http://" + line["addr"].(string)
				return in
			}
		}
		select {
		case code := <-in.done:
			in.done <- code
			t.Fatalf("run returned %d before listening:\n%s", code, in.logs.String())
		case <-deadline:
			t.Fatalf("no \"backend listening\" line:\n%s", in.logs.String())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// stop cancels the context (what SIGTERM does in main) and returns the exit status.
func (in *instance) stop(t *testing.T) int {
	t.Helper()
	in.cancel()
	select {
	case code := <-in.done:
		in.done <- code // for the cleanup
		return code
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return 10s after cancel")
		return -1
	}
}

func logLines(t *testing.T, logs string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(logs))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Errorf("log line is not JSON: %s", sc.Text())
			continue
		}
		out = append(out, m)
	}
	return out
}

// demoSeeds returns tenant -> created from the "demo account" log lines.
func demoSeeds(t *testing.T, logs string) map[string]bool {
	t.Helper()
	seeds := map[string]bool{}
	for _, l := range logLines(t, logs) {
		if l["msg"] == "demo account" {
			seeds[l["tenant_id"].(string)] = l["created"].(bool)
		}
	}
	return seeds
}

func migrationsApplied(t *testing.T, db string) (int, int64) {
	t.Helper()
	conn, err := sql.Open("sqlite", "file:"+db+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	var n int
	var at int64
	if err := conn.QueryRow(`SELECT count(*), coalesce(max(applied_at), 0) FROM schema_migrations`).Scan(&n, &at); err != nil {
		t.Fatal(err)
	}
	return n, at
}

// TestServeSeedAndRestart serves in process twice on one database file:
// the first run creates the directory, applies the migrations and seeds both
// demo tenants; a trade goes through; the second run applies nothing again,
// seeds nothing again and finds the traded state. Cancelling the context
// shuts down cleanly with exit 0.
func TestServeSeedAndRestart(t *testing.T) {
	dir := t.TempDir()
	keyPath, signer := writeKey(t, dir)
	db := filepath.Join(dir, "data", "nested", "backend.db")
	e := env{"TENANTGATE_BACKEND_ASSERTION_KEY": keyPath, "TENANTGATE_BACKEND_SEED_DEMO": "true"}
	c := &client{signer: signer, http: &http.Client{Timeout: 5 * time.Second}}

	in := serveInProcess(t, []string{"serve", "--listen", "127.0.0.1:0", "--db", db}, e)
	if got := demoSeeds(t, in.logs.String()); len(got) != 2 || !got["acme"] || !got["globex"] {
		t.Errorf("first start seeded %v, want acme and globex created", got)
	}
	res, err := c.http.Get(in.url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Errorf("healthz: %d", res.StatusCode)
	}
	// Assertions verify with the key named in the environment.
	status, m, err := c.do(in.url, "acme", "GET", "/api/v1/hedging/analysis", nil)
	if err != nil || status != http.StatusOK {
		t.Fatalf("analysis: %d %v", status, err)
	}
	if adj := m["adjustments"].([]any); len(adj) != 1 || adj[0].(map[string]any)["asset"] != "SOL" {
		t.Errorf("acme demo adjustments = %v, want one SOL sell", adj)
	}
	if status, m, err = c.doKey(in.url, "acme", "POST", "/api/v1/hedging/execute", nil, "restart-1"); err != nil || status != http.StatusOK {
		t.Fatalf("execute: %d %v %v", status, err, m)
	}
	if code := in.stop(t); code != exitOK {
		t.Errorf("exit %d after cancel:\n%s", code, in.logs.String())
	}
	if !strings.Contains(in.logs.String(), `"msg":"shutting down"`) {
		t.Errorf("no shutdown line:\n%s", in.logs.String())
	}
	checkLogs(t, in.logs.String())
	n1, at1 := migrationsApplied(t, db)
	if n1 != 2 {
		t.Errorf("schema_migrations rows after first start = %d, want 2 (one per migration)", n1)
	}

	// Second start on the same file, seed flag now on the command line.
	in2 := serveInProcess(t, []string{"--listen", "127.0.0.1:0", "--db", db, "--seed-demo"}, env{"TENANTGATE_BACKEND_ASSERTION_KEY": keyPath})
	if got := demoSeeds(t, in2.logs.String()); len(got) != 2 || got["acme"] || got["globex"] {
		t.Errorf("second start seeded %v, want both present and not created", got)
	}
	status, m, err = c.do(in2.url, "acme", "GET", "/api/v1/hedging/analysis", nil)
	if err != nil || status != http.StatusOK {
		t.Fatalf("analysis after restart: %d %v", status, err)
	}
	if adj := m["adjustments"].([]any); len(adj) != 0 {
		t.Errorf("after the executed hedge and a reseed, adjustments = %v, want none (state kept)", adj)
	}
	// The idempotency key survived the restart too.
	status, _, err = c.doKey(in2.url, "acme", "POST", "/api/v1/hedging/execute", nil, "restart-1")
	if err != nil || status != http.StatusOK {
		t.Errorf("replay after restart: %d %v", status, err)
	}
	if code := in2.stop(t); code != exitOK {
		t.Errorf("second exit %d:\n%s", code, in2.logs.String())
	}
	if n2, at2 := migrationsApplied(t, db); n2 != n1 || at2 != at1 {
		t.Errorf("schema_migrations changed on restart: %d rows at %d, then %d rows at %d", n1, at1, n2, at2)
	}
}

func TestServeWithoutSeedHasNoAccounts(t *testing.T) {
	dir := t.TempDir()
	keyPath, signer := writeKey(t, dir)
	in := serveInProcess(t, []string{"--listen", "127.0.0.1:0", "--db", filepath.Join(dir, "b.db"), "--assertion-key", keyPath, "--log-level", "debug"}, env{})
	if got := demoSeeds(t, in.logs.String()); len(got) != 0 {
		t.Errorf("seeded without --seed-demo: %v", got)
	}
	c := &client{signer: signer, http: &http.Client{Timeout: 5 * time.Second}}
	status, m, err := c.do(in.url, "acme", "GET", "/api/v1/hedging/analysis", nil)
	if err != nil || status != http.StatusNotFound || !strings.Contains(fmt.Sprint(m["detail"]), "accounts set") {
		t.Fatalf("analysis without an account: %d %v %v", status, m, err)
	}
	// An assertion for another audience is refused: --assertion-audience default is "backend".
	raw, _ := signer.Sign(assertion.Claims{Issuer: "tenantgate", Audience: "other", Tenant: "acme", Subject: "u", Method: "GET", Path: "/api/v1/whoami", ID: "x"})
	req, _ := http.NewRequest("GET", in.url+"/api/v1/whoami", nil)
	req.Header.Set(assertion.Header, raw)
	res, err := c.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Errorf("other audience: %d, want 401", res.StatusCode)
	}
	if code := in.stop(t); code != exitOK {
		t.Errorf("exit %d", code)
	}
}

func TestServeCustomIssuerAndAudience(t *testing.T) {
	dir := t.TempDir()
	keyPath, signer := writeKey(t, dir)
	in := serveInProcess(t, []string{"--listen", "127.0.0.1:0", "--db", filepath.Join(dir, "b.db"), "--assertion-key", keyPath,
		"--assertion-issuer", "gate-2", "--assertion-audience", "svc"}, env{})
	c := &client{signer: signer, http: &http.Client{Timeout: 5 * time.Second}}
	for _, tc := range []struct {
		iss, aud string
		want     int
	}{{"gate-2", "svc", 200}, {"tenantgate", "svc", 401}, {"gate-2", "backend", 401}} {
		raw, _ := signer.Sign(assertion.Claims{Issuer: tc.iss, Audience: tc.aud, Tenant: "acme", Subject: "u", Method: "GET", Path: "/api/v1/whoami", ID: "x"})
		req, _ := http.NewRequest("GET", in.url+"/api/v1/whoami", nil)
		req.Header.Set(assertion.Header, raw)
		res, err := c.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = res.Body.Close()
		if res.StatusCode != tc.want {
			t.Errorf("iss %s aud %s: %d, want %d", tc.iss, tc.aud, res.StatusCode, tc.want)
		}
	}
}

// Failures once the flags parse: a clear message naming the flag, exit 1,
// and no listening line.
func TestServeFailures(t *testing.T) {
	dir := t.TempDir()
	keyPath, _ := writeKey(t, dir)
	notADir := filepath.Join(dir, "file")
	if err := os.WriteFile(notADir, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = busy.Close() }()
	db := filepath.Join(dir, "ok.db")

	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"key file missing", []string{"--assertion-key", filepath.Join(dir, "nope.pem"), "--db", db}, []string{"--assertion-key", "nope.pem", "no such file"}},
		{"key file not PEM", []string{"--assertion-key", garbage, "--db", db}, []string{"--assertion-key", "no PEM block"}},
		{"db directory under a file", []string{"--assertion-key", keyPath, "--db", filepath.Join(notADir, "sub", "backend.db")}, []string{"--db", "create directory", "not a directory"}},
		{"db is a directory", []string{"--assertion-key", keyPath, "--db", dir}, []string{"--db", dir}},
		{"listen address busy", []string{"--assertion-key", keyPath, "--db", db, "--listen", busy.Addr().String()}, []string{"--listen", busy.Addr().String(), "address already in use"}},
		{"listen address malformed", []string{"--assertion-key", keyPath, "--db", db, "--listen", "nonsense"}, []string{"--listen", "nonsense"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var errb syncBuffer
			code := run(context.Background(), tc.args, env{}.lookup, io.Discard, &errb)
			if code != exitFailure {
				t.Errorf("exit %d, want %d", code, exitFailure)
			}
			last := lastLine(errb.String())
			if !strings.HasPrefix(last, "backend: ") {
				t.Errorf("last stderr line %q is not the error", last)
			}
			for _, w := range tc.want {
				if !strings.Contains(last, w) {
					t.Errorf("error %q does not mention %q", last, w)
				}
			}
			if strings.Contains(errb.String(), "backend listening") {
				t.Errorf("listened despite the failure:\n%s", errb.String())
			}
		})
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

func TestNewLoggerLevelAndFormat(t *testing.T) {
	var buf bytes.Buffer
	log := newLogger(zapcore.WarnLevel, &buf)
	log.Info("hidden")
	log.Warn("shown")
	lines := logLines(t, buf.String())
	if len(lines) != 1 || lines[0]["msg"] != "shown" || lines[0]["level"] != "warn" {
		t.Fatalf("lines = %v", lines)
	}
	ts, _ := lines[0]["ts"].(string)
	if _, err := time.Parse(time.RFC3339Nano, ts); err != nil {
		t.Errorf("ts %q is not RFC 3339: %v", ts, err)
	}
	if _, ok := lines[0]["caller"]; !ok {
		t.Errorf("no caller: %v", lines[0])
	}
}

// An empty --assertion-issuer or --assertion-audience (flag or environment)
// is a usage error that names the flag: the backend never starts with a
// check that every assertion, or none, would pass.
func TestEmptyIssuerOrAudienceRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  env
		flag string
	}{
		{"empty issuer flag", []string{"--assertion-key", "k.pem", "--assertion-issuer", ""}, env{}, "--assertion-issuer"},
		{"blank issuer env", []string{"--assertion-key", "k.pem"}, env{"TENANTGATE_BACKEND_ASSERTION_ISSUER": " "}, "--assertion-issuer"},
		{"empty audience flag", []string{"--assertion-key", "k.pem", "--assertion-audience", ""}, env{}, "--assertion-audience"},
		{"empty audience env", []string{"--assertion-key", "k.pem"}, env{"TENANTGATE_BACKEND_ASSERTION_AUDIENCE": ""}, "--assertion-audience"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var errb bytes.Buffer
			if code := run(context.Background(), tc.args, tc.env.lookup, io.Discard, &errb); code != exitUsage {
				t.Errorf("exit %d, want %d (usage)", code, exitUsage)
			}
			if msg := errb.String(); !strings.Contains(msg, tc.flag) || !strings.Contains(msg, "must not be empty") {
				t.Errorf("stderr %q does not name %s", msg, tc.flag)
			}
		})
	}
	if _, err := parseFlags([]string{"--assertion-key", "k.pem", "--idempotency-retention", "1s"}, env{}.lookup, io.Discard); err == nil ||
		!strings.Contains(err.Error(), "--idempotency-retention") {
		t.Errorf("retention 1s: %v", err)
	}
}

// With --assertion-secret-file (also TENANTGATE_BACKEND_ASSERTION_SECRET_FILE)
// the backend trusts HS256 assertions made with that secret, and only those.
func TestServeHS256Assertion(t *testing.T) {
	dir := t.TempDir()
	secret := strings.Repeat("q", 40)
	secretPath := filepath.Join(dir, "secret")
	if err := os.WriteFile(secretPath, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	signer, err := assertion.NewHMACSigner([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	wrong, _ := assertion.NewHMACSigner([]byte(strings.Repeat("r", 40)))
	_, edSigner := writeKey(t, dir)
	in := serveInProcess(t, []string{"--listen", "127.0.0.1:0", "--db", filepath.Join(dir, "b.db")},
		env{"TENANTGATE_BACKEND_ASSERTION_SECRET_FILE": secretPath})
	hc := &http.Client{Timeout: 5 * time.Second}
	for _, tc := range []struct {
		name string
		s    *assertion.Signer
		want int
	}{{"right secret", signer, 200}, {"other secret", wrong, 401}, {"EdDSA", edSigner, 401}} {
		raw, _ := tc.s.Sign(assertion.Claims{Issuer: "tenantgate", Audience: "backend", Tenant: "acme", Subject: "u", Method: "GET", Path: "/api/v1/whoami", ID: "x"})
		req, _ := http.NewRequest("GET", in.url+"/api/v1/whoami", nil)
		req.Header.Set(assertion.Header, raw)
		res, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = res.Body.Close()
		if res.StatusCode != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, res.StatusCode, tc.want)
		}
	}
	if code := in.stop(t); code != exitOK {
		t.Errorf("exit %d", code)
	}
}

func TestAssertionSecretFlags(t *testing.T) {
	dir := t.TempDir()
	short := filepath.Join(dir, "short")
	if err := os.WriteFile(short, []byte("too short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var errb syncBuffer
	if code := run(context.Background(), []string{"--assertion-key", "k.pem", "--assertion-secret-file", short}, env{}.lookup, io.Discard, &errb); code != exitUsage ||
		!strings.Contains(errb.String(), "exclude each other") {
		t.Errorf("both given: exit %d, %s", code, errb.String())
	}
	errb = syncBuffer{}
	if code := run(context.Background(), []string{"--assertion-secret-file", short, "--db", filepath.Join(dir, "b.db")}, env{}.lookup, io.Discard, &errb); code != exitFailure ||
		!strings.Contains(errb.String(), "--assertion-secret-file") || !strings.Contains(errb.String(), "at least 32") {
		t.Errorf("short secret: exit %d, %s", code, errb.String())
	}
	o, err := parseFlags([]string{"--assertion-secret-file", short}, env{}.lookup, io.Discard)
	if err != nil || o.assertionSecret != short || o.assertionKey != "" {
		t.Errorf("parse: %+v %v", o, err)
	}
}
