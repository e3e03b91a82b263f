package tenantgate

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tenantgate/tenantgate/module/audit"
)

const testChainKey = "chain-key-for-tests-0123456789abcdef"

// fileAuditLogger is an audit logger writing JSON lines to w, as Caddy's
// `format json` does.
func fileAuditLogger(w zapcore.WriteSyncer) *zap.Logger {
	enc := zapcore.NewJSONEncoder(zapcore.EncoderConfig{TimeKey: "ts", LevelKey: "level", NameKey: "logger",
		MessageKey: "msg", EncodeTime: zapcore.EpochTimeEncoder, EncodeLevel: zapcore.LowercaseLevelEncoder})
	return zap.New(zapcore.NewCore(enc, w, zapcore.InfoLevel)).Named(audit.LoggerName)
}

// TestChainedRecordsVerify: two gates with one key (two blocks, or an old
// and a new config) write one chain; when both are gone the closing record
// is written and the whole log verifies, in both formats.
func TestChainedRecordsVerify(t *testing.T) {
	for _, format := range []string{"native", "ocsf"} {
		t.Run(format, func(t *testing.T) {
			t.Setenv("TG_TEST_CHAIN_KEY", testChainKey)
			path := filepath.Join(t.TempDir(), "audit.log")
			f, err := os.Create(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			l := fileAuditLogger(f)
			mk := func() *Gate {
				return newTestGateWith(t, l, func(g *Gate) {
					g.AuditChainKey, g.AuditFormat = "{env.TG_TEST_CHAIN_KEY}", format
				})
			}
			a, b := mk(), mk()
			if a.chain == nil || a.chain != b.chain {
				t.Fatal("two gates with one key do not share the chain")
			}
			next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error { return nil })
			for i := range 3 {
				g := []*Gate{a, b, a}[i]
				for _, target := range []string{"/healthz", "/api/x", "/nowhere"} {
					_ = g.ServeHTTP(httptest.NewRecorder(), newTestRequest(context.Background(), "GET", target, testToken(t, "acme")), next)
				}
				if i == 1 {
					_ = a.Cleanup() // the old config goes; b keeps the chain
					a = mk()
				}
			}
			_ = a.Cleanup()
			_ = b.Cleanup()
			rep, err := audit.VerifyFiles([][]byte{[]byte(testChainKey)}, []string{path}, false)
			if err != nil {
				t.Fatal(err)
			}
			if !rep.OK() || len(rep.Chains) != 1 || rep.Chains[0].Last != 10 || rep.Chains[0].End != audit.ChainEndReconfigured {
				raw, _ := os.ReadFile(path)
				t.Fatalf("report %+v %v\n%s", rep, rep.Breaks, raw)
			}
			raw, _ := os.ReadFile(path)
			if format == "ocsf" && !strings.Contains(string(raw), `"class_uid":6003`) {
				t.Fatalf("no OCSF record:\n%s", raw)
			}
		})
	}
}

func TestAuditOptionErrors(t *testing.T) {
	t.Setenv("TG_TEST_SHORT", "short")
	for _, c := range []struct {
		key, format, want string
	}{
		{"{env.TG_TEST_UNSET_X}", "", "resolves to nothing"},
		{"{env.TG_TEST_SHORT}", "", "5 bytes: at least 32"},
		{"", "cef", `audit_format "cef"`},
	} {
		g := &Gate{AuditChainKey: c.key, AuditFormat: c.format}
		if err := g.provisionAudit(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: got %v, want %q", c, err, c.want)
		}
	}
}

func TestAuditCaddyfileOptions(t *testing.T) {
	t.Setenv("TG_TEST_CHAIN_KEY", testChainKey)
	for _, c := range []struct{ src, want string }{
		{"tenant_gate {\n audit_chain_key {env.TG_TEST_CHAIN_KEY}\n audit_format ocsf\n}", ""},
		{"tenant_gate {\n\n audit_chain_key tooshort\n}", "at least 32 are required (e.g. {file./etc/tenantgate/audit.key} holding `openssl rand -base64 48`), at Testfile:3"},
		{"tenant_gate {\n audit_chain_key {env.TG_TEST_NOT_SET_Y}\n}", "resolves to nothing"},
		{"tenant_gate {\n audit_format xml\n}", `audit_format "xml"`},
		{"tenant_gate {\n audit_format\n}", "wrong argument count"},
	} {
		g := new(Gate)
		err := parseAuditOnly(g, c.src)
		if c.want == "" {
			if err != nil || g.AuditFormat != "ocsf" || g.AuditChainKey == "" {
				t.Errorf("%q: %v %+v", c.src, err, g)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v, want %q", c.src, err, c.want)
		}
	}
}

// parseAuditOnly runs the directive parser and keeps only errors about the
// audit options (the block has no issuer or rules).
func parseAuditOnly(g *Gate, src string) error {
	return g.UnmarshalCaddyfile(caddyfile.NewTestDispenser(src))
}

func TestSpanCarriesDecision(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	ctx, span := tp.Tracer("test").Start(context.Background(), "request")
	g := newTestGate(t, zap.NewNop())
	r := newTestRequest(ctx, "GET", "/nowhere", "")
	_ = g.ServeHTTP(httptest.NewRecorder(), r, caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil }))
	span.End()
	got := map[string]string{}
	for _, kv := range rec.Ended()[0].Attributes() {
		got[string(kv.Key)] = kv.Value.AsString()
	}
	if got["tenantgate.decision"] != "deny" || got["tenantgate.reason"] != "no_route" {
		t.Fatalf("span attributes %v", got)
	}
	// Without tracing, nothing is set and the record has no trace id.
	plain := &audit.Record{}
	traceRecord(newTestRequest(context.Background(), "GET", "/", ""), plain)
	annotateSpan(plain)
	if plain.TraceID != "" || plain.Span != nil {
		t.Fatalf("trace fields without tracing: %+v", plain)
	}
}

// cpuNow is the process's user+system CPU time (see module/audit's
// benchmarks: wall time on a loaded machine measures the queue).
func cpuNow() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchmarkAuditFile writes chained records to a real file through w.
func benchmarkAuditFile(b *testing.B, wrap func(*os.File) zapcore.WriteSyncer) {
	f, err := os.Create(filepath.Join(b.TempDir(), "audit.log"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	l := fileAuditLogger(wrap(f))
	c, _ := audit.NewChain([]byte(testChainKey))
	rec := &audit.Record{RequestID: "6955d633-c034-48b4-aa21-776f79ba06a7", TenantID: "acme", UserID: "alice",
		Issuer: "https://idp.test", Method: "GET", Path: "/api/v1/x", Route: "/api/**", Decision: audit.DecisionAllow,
		Reason: audit.ReasonOK, Status: 200, UpstreamStatus: 200, DurationMS: 0.42, RemoteIP: "192.0.2.1", Binding: "bearer"}
	b.ReportAllocs()
	start := cpuNow()
	for b.Loop() {
		c.Write(l, "request", rec)
	}
	b.ReportMetric(float64(cpuNow()-start)/float64(b.N), "cpu-ns/op")
}

// BenchmarkAuditFileDirect is today's path: one write(2) per record.
func BenchmarkAuditFileDirect(b *testing.B) {
	benchmarkAuditFile(b, func(f *os.File) zapcore.WriteSyncer { return zapcore.AddSync(f) })
}

// BenchmarkAuditFileBuffered goes through tenantgate_buffered's buffer.
func BenchmarkAuditFileBuffered(b *testing.B) {
	benchmarkAuditFile(b, func(f *os.File) zapcore.WriteSyncer {
		lb := newLineBuffer(f, DefaultFlushInterval, DefaultBufferBytes)
		b.Cleanup(func() { _ = lb.Close() })
		return zapcore.AddSync(lb)
	})
}
