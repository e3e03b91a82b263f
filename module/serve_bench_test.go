package tenantgate

// Direct ServeHTTP tests of what the gate writes to the audit trail and
// metrics, and benchmarks of what that costs per request.

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tenantgate/tenantgate/module/assertion"
	"github.com/tenantgate/tenantgate/module/audit"
	"github.com/tenantgate/tenantgate/module/rules"

	"github.com/tenantgate/tenantgate/module/verify"
)

const (
	testIssuer   = "https://hmac.test"
	testAudience = "api"
)

var testSecret = func() []byte {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return b
}()

// newTestGate provisions a Gate the way Caddy does (HS256 issuer, Ed25519
// assertion key, a public and an authenticated rule) and then points its
// audit trail at auditLog.
func newTestGate(tb testing.TB, auditLog *zap.Logger) *Gate {
	tb.Helper()
	return newTestGateWith(tb, auditLog, nil)
}

// newTestGateWith is newTestGate with mutate applied to the config before
// it is provisioned.
func newTestGateWith(tb testing.TB, auditLog *zap.Logger, mutate func(*Gate)) *Gate {
	tb.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	pemBytes, err := assertion.EncodePrivateKeyPEM(priv)
	if err != nil {
		tb.Fatal(err)
	}
	keyPath := filepath.Join(tb.TempDir(), "assertion.pem")
	if err := os.WriteFile(keyPath, pemBytes, 0o600); err != nil {
		tb.Fatal(err)
	}
	g := &Gate{
		Settings: verify.Settings{
			Issuers:    []Issuer{{Issuer: testIssuer, Audiences: []string{testAudience}, HMACSecret: string(testSecret)}},
			Algorithms: []string{"HS256"},
		},
		AssertionKey: keyPath,
		Rules: []rules.Rule{
			{Methods: []string{"GET"}, Pattern: "/healthz", Public: true},
			{Methods: []string{"*"}, Pattern: "/api/**", Authenticated: true},
		},
	}
	if mutate != nil {
		mutate(g)
	}
	// caddy.Context without a config: Logger() falls back to a dev logger,
	// replaced right after.
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	tb.Cleanup(cancel)
	if err := g.Provision(ctx); err != nil {
		tb.Fatal(err)
	}
	if err := g.Validate(); err != nil {
		tb.Fatal(err)
	}
	g.logger = zap.NewNop()
	g.auditLog = auditLog
	return g
}

func testToken(tb testing.TB, tenant string) string {
	tb.Helper()
	now := time.Now()
	payload, _ := json.Marshal(map[string]any{
		"iss": testIssuer, "aud": testAudience, "sub": "user-" + tenant, "tenant_id": tenant,
		"roles": []string{"reader"}, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "jti": "jti-" + tenant,
	})
	tok, err := jws.Sign(payload, jws.WithKey(jwa.HS256, testSecret))
	if err != nil {
		tb.Fatal(err)
	}
	return string(tok)
}

// newTestRequest prepares a request as Caddy's server does for handlers:
// vars (for the request uuid and client_ip) and a replacer in the context.
func newTestRequest(ctx context.Context, method, target, token string) *http.Request {
	r := httptest.NewRequestWithContext(ctx, method, target, nil)
	vars := map[string]any{caddyhttp.ClientIPVarKey: "192.0.2.1"}
	ctx = context.WithValue(r.Context(), caddyhttp.VarsCtxKey, vars)
	ctx = context.WithValue(ctx, caddyhttp.ExtraLogFieldsCtxKey, new(caddyhttp.ExtraLogFields))
	r = r.WithContext(ctx)
	caddyhttp.NewTestReplacer(r)
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	return r
}

// captured is an audit logger that keeps every record it gets.
type captured struct {
	mu   sync.Mutex
	buf  strings.Builder
	l    *zap.Logger
	recs []map[string]any
}

func newCaptured() *captured {
	c := &captured{}
	enc := zapcore.NewJSONEncoder(zapcore.EncoderConfig{TimeKey: "ts", MessageKey: "msg", NameKey: "logger", EncodeTime: zapcore.EpochTimeEncoder})
	c.l = zap.New(zapcore.NewCore(enc, zapcore.AddSync(writerFunc(func(p []byte) (int, error) {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.buf.Write(p)
		var m map[string]any
		if err := json.Unmarshal(p, &m); err == nil {
			c.recs = append(c.recs, m)
		}
		return len(p), nil
	})), zapcore.InfoLevel)).Named(audit.LoggerName)
	return c
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func (c *captured) only(t *testing.T) map[string]any {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.recs) != 1 {
		t.Fatalf("%d audit records, want exactly 1:\n%s", len(c.recs), c.buf.String())
	}
	return c.recs[0]
}

func TestServeHTTPWritesOneRecord(t *testing.T) {
	okNext := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.WriteHeader(http.StatusCreated)
		return nil
	})
	cases := []struct {
		name, path, token  string
		next               caddyhttp.Handler
		decision, reason   string
		status, upstream   int
		tenant, wantHeader string
	}{
		{name: "public", path: "/healthz", next: okNext, decision: "public", reason: "public", status: 201},
		{name: "allow", path: "/api/x", token: "acme", next: okNext, decision: "allow", reason: "ok", status: 201, tenant: "acme"},
		{name: "missing token", path: "/api/x", next: okNext, decision: "deny", reason: "missing_token", status: 401},
		{name: "no route", path: "/nowhere", next: okNext, decision: "deny", reason: "no_route", status: 403},
		{name: "bad path", path: "/api/../healthz", next: okNext, decision: "deny", reason: "bad_path", status: 400},
		{name: "next fails", path: "/api/x", token: "acme", decision: "allow", reason: "ok", status: 502, tenant: "acme",
			next: caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error {
				return caddyhttp.Error(http.StatusBadGateway, fmt.Errorf("dial: refused"))
			})},
		{name: "next writes nothing", path: "/api/x", token: "acme", decision: "allow", reason: "ok", status: 200, tenant: "acme",
			next: caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newCaptured()
			g := newTestGate(t, c.l)
			tok := ""
			if tc.token != "" {
				tok = testToken(t, tc.token)
			}
			r := newTestRequest(context.Background(), http.MethodGet, tc.path, tok)
			r.Header.Set("X-Request-ID", "client-1")
			w := httptest.NewRecorder()
			_ = g.ServeHTTP(w, r, tc.next)
			rec := c.only(t)
			for k, want := range map[string]any{
				"decision": tc.decision, "reason": tc.reason, "status": float64(tc.status),
				"tenant_id": tc.tenant, "client_request_id": "client-1", "remote_ip": "192.0.2.1",
			} {
				if rec[k] != want {
					t.Errorf("%s = %#v, want %#v (%v)", k, rec[k], want, rec)
				}
			}
			id, _ := rec["request_id"].(string)
			if id == "" || id == "client-1" {
				t.Errorf("request_id %q: want the gate's own", id)
			}
			if got := w.Header().Values("X-Request-ID"); len(got) != 1 || got[0] != id {
				t.Errorf("response X-Request-ID %v, want [%s]", got, id)
			}
			if strings.Contains(c.buf.String(), "eyJ") {
				t.Errorf("a token reached the audit trail: %s", c.buf.String())
			}
		})
	}
}

// An upstream that echoes X-Request-ID (the backend does) must not give
// the client two copies: reverse_proxy adds upstream headers to ours.
func TestServeHTTPOneRequestIDWhenUpstreamEchoesIt(t *testing.T) {
	g := newTestGate(t, zap.NewNop())
	r := newTestRequest(context.Background(), http.MethodGet, "/api/x", testToken(t, "acme"))
	w := httptest.NewRecorder()
	_ = g.ServeHTTP(w, r, caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Add("X-Request-ID", r.Header.Get("X-Request-ID"))
		_, err := io.WriteString(w, "hello")
		return err
	}))
	if got := w.Header().Values("X-Request-ID"); len(got) != 1 {
		t.Errorf("X-Request-ID %v: want one value", got)
	}
}

// reverse_proxy panics with http.ErrAbortHandler when a streamed response
// cannot be finished; the record is still written, with a status saying why.
func TestServeHTTPRecordsAbortedResponses(t *testing.T) {
	cases := []struct {
		name        string
		clientGone  bool
		panicWith   any
		wantStatus  float64
		wroteHeader bool
	}{
		{name: "client disconnected mid-body", clientGone: true, panicWith: http.ErrAbortHandler, wroteHeader: true, wantStatus: 499},
		{name: "upstream broke off mid-body", panicWith: http.ErrAbortHandler, wroteHeader: true, wantStatus: 502},
		{name: "handler bug", panicWith: "boom", wantStatus: 500},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newCaptured()
			g := newTestGate(t, c.l)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			r := newTestRequest(ctx, http.MethodGet, "/api/x", testToken(t, "acme"))
			next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
				if tc.wroteHeader {
					w.WriteHeader(http.StatusOK)
					_, _ = io.WriteString(w, "first bytes")
				}
				if tc.clientGone {
					cancel()
				}
				panic(tc.panicWith)
			})
			func() {
				defer func() {
					if p := recover(); p != tc.panicWith {
						t.Errorf("panic %v not passed on", p)
					}
				}()
				_ = g.ServeHTTP(httptest.NewRecorder(), r, next)
			}()
			rec := c.only(t)
			if rec["status"] != tc.wantStatus || rec["decision"] != "allow" {
				t.Errorf("record %v: want status %v", rec, tc.wantStatus)
			}
		})
	}
}

// Before the upstream answers, reverse_proxy itself records 499 for a
// client that went away and returns nil; the gate keeps that status.
func TestServeHTTPClientGoneBeforeHeaders(t *testing.T) {
	c := newCaptured()
	g := newTestGate(t, c.l)
	r := newTestRequest(context.Background(), http.MethodGet, "/api/x", testToken(t, "acme"))
	_ = g.ServeHTTP(httptest.NewRecorder(), r, caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.WriteHeader(StatusClientClosedRequest)
		return nil
	}))
	if rec := c.only(t); rec["status"] != 499.0 {
		t.Errorf("status %v, want 499", rec["status"])
	}
}

func TestTenantLabelCap(t *testing.T) {
	tl := newTenantLabels()
	tl.raiseMax(3)
	got := map[string]bool{}
	for _, tenant := range []string{"", "a", "b", "c", "d", "a", ""} {
		got[tl.label(tenant)] = true
	}
	want := map[string]bool{"_none": true, "a": true, "b": true, "_other": true}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("labels %v, want %v", got, want)
	}
	tl.raiseMax(2) // a cap is never lowered while the process runs
	if l := tl.label("b"); l != "b" {
		t.Errorf("b became %q", l)
	}
}

// Several tenant_gate blocks and every reload register the same collectors
// on the config's registry: never an error, and one set of series.
func TestGateMetricsRegisterTwiceAndOnNewRegistries(t *testing.T) {
	reg1 := prometheus.NewPedanticRegistry()
	if _, err := newGateMetrics(reg1, 1000); err != nil {
		t.Fatal(err)
	}
	if _, err := newGateMetrics(reg1, 1000); err != nil {
		t.Fatalf("second tenant_gate block: %v", err)
	}
	m, err := newGateMetrics(prometheus.NewPedanticRegistry(), 1000) // a reload
	if err != nil {
		t.Fatal(err)
	}
	counter := func() float64 {
		var d dto.Metric
		if err := m.requests.WithLabelValues("deny", "no_route", "_none").Write(&d); err != nil {
			t.Fatal(err)
		}
		return d.GetCounter().GetValue()
	}
	before := counter()
	m.observe(audit.DecisionDeny, audit.ReasonNoRoute, "", time.Millisecond)
	if got := counter(); got != before+1 {
		t.Errorf("requests_total %v, want %v", got, before+1)
	}
	families, err := reg1.Gather()
	if err != nil {
		t.Fatalf("pedantic gather: %v", err)
	}
	found := false
	for _, f := range families {
		found = found || f.GetName() == "tenantgate_requests_total"
	}
	if !found {
		t.Error("the first registry lost the counter")
	}
}

// discardWriter is a ResponseWriter that keeps nothing, so a benchmark
// measures the gate and not the recorder.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(int)             {}

// BenchmarkServeHTTP measures one request through the gate with the audit
// trail on a JSON core to io.Discard and the Prometheus metrics on, against
// a Nop audit logger and no metrics. The difference is the per-request
// cost of audit + metrics.
func BenchmarkServeHTTP(b *testing.B) {
	jsonAudit := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()),
		zapcore.AddSync(io.Discard), zapcore.InfoLevel)).Named(audit.LoggerName)
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.WriteHeader(http.StatusOK)
		return nil
	})
	tok := testToken(b, "acme")
	requests := []struct{ name, path, token string }{
		{"public", "/healthz", ""},
		{"allow", "/api/x", tok},
		{"deny_no_route", "/nowhere", ""},
	}
	variants := []struct {
		name    string
		log     *zap.Logger
		metrics bool
	}{
		{"baseline_nop_no_metrics", zap.NewNop(), false},
		{"audit_json", jsonAudit, false},
		{"metrics", zap.NewNop(), true},
		{"audit_json+metrics", jsonAudit, true},
	}
	for _, rq := range requests {
		for _, v := range variants {
			b.Run(rq.name+"/"+v.name, func(b *testing.B) {
				g := newTestGate(b, v.log)
				if !v.metrics {
					g.metrics = nil
				}
				w := &discardWriter{h: http.Header{}}
				b.ReportAllocs()
				for b.Loop() {
					r := newTestRequest(context.Background(), http.MethodGet, rq.path, rq.token)
					clear(w.h)
					_ = g.ServeHTTP(w, r, next)
				}
			})
		}
	}
}

// The dashboard queries only metrics the gate exports.
func TestDashboardQueriesKnownMetrics(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "deploy", "grafana", "tenantgate.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, c := range []prometheus.Collector{processMetrics.requests, processMetrics.authTime,
		processMetrics.jwksRefresh, processMetrics.jwksKeys, processMetrics.jwksLast,
		processMetrics.cacheHits, processMetrics.cacheMisses, processMetrics.cacheEntries,
		processBindingMetrics.decisions, processBindingMetrics.replay, processMetrics.rateLimited} {
		ch := make(chan *prometheus.Desc, 1)
		c.Describe(ch)
		d := (<-ch).String() // Desc{fqName: "tenantgate_…", …}
		name := strings.SplitN(strings.SplitN(d, `fqName: "`, 2)[1], `"`, 2)[0]
		known[name], known[name+"_bucket"] = true, true
	}
	for _, name := range rateLimitMetricNames(t) {
		known[name] = true
	}
	if len(dash.Panels) < 8 {
		t.Fatalf("%d panels", len(dash.Panels))
	}
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			for _, word := range strings.FieldsFunc(tg.Expr, func(r rune) bool {
				return !(r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9')
			}) {
				if strings.HasPrefix(word, "tenantgate_") && !known[word] {
					t.Errorf("panel %q queries unknown metric %s", p.Title, word)
				}
			}
		}
	}
}

// BenchmarkServeHTTPAllowed is an allowed request with the full feature set
// (audit JSON, metrics), per assertion algorithm and with the
// verified-token cache on (every request a hit) or off (every request a
// full verification).
func BenchmarkServeHTTPAllowed(b *testing.B) {
	jsonAudit := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()),
		zapcore.AddSync(io.Discard), zapcore.InfoLevel)).Named(audit.LoggerName)
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.WriteHeader(http.StatusOK)
		return nil
	})
	tok := testToken(b, "acme")
	b.Setenv("TG_BENCH_ASSERTION_SECRET", strings.Repeat("s", 32))
	off := 0
	for _, v := range []struct {
		name   string
		mutate func(*Gate)
	}{
		{"cached/EdDSA_assertion", func(*Gate) {}},
		{"cached/HS256_assertion", func(g *Gate) {
			g.AssertionKey, g.AssertionAlg, g.AssertionSecret = "", "HS256", "{env.TG_BENCH_ASSERTION_SECRET}"
		}},
		{"cache_off/EdDSA_assertion", func(g *Gate) { g.TokenCache = &off }},
	} {
		b.Run(v.name, func(b *testing.B) {
			g := newTestGateWith(b, jsonAudit, v.mutate)
			w := &discardWriter{h: http.Header{}}
			b.ReportAllocs()
			start := cpuNow() // wall time on a loaded machine measures the queue
			for b.Loop() {
				r := newTestRequest(context.Background(), http.MethodGet, "/api/x", tok)
				clear(w.h)
				_ = g.ServeHTTP(w, r, next)
			}
			b.ReportMetric(float64(cpuNow()-start)/float64(b.N), "cpu-ns/op")
		})
	}
}
