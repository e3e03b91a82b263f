package integration_test

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// otlpReceiver is a minimal OTLP/HTTP trace receiver (protobuf), standing
// in for an OpenTelemetry Collector.
type otlpReceiver struct {
	srv   *httptest.Server
	mu    sync.Mutex
	spans []*tracepb.Span
}

func newOTLPReceiver() *otlpReceiver {
	o := &otlpReceiver{}
	o.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		var req coltrace.ExportTraceServiceRequest
		if err != nil || r.URL.Path != "/v1/traces" || proto.Unmarshal(body, &req) != nil {
			http.Error(w, "bad export", http.StatusBadRequest)
			return
		}
		o.mu.Lock()
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				o.spans = append(o.spans, ss.Spans...)
			}
		}
		o.mu.Unlock()
		out, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	}))
	return o
}

// spanAttrs returns the string attributes of the span with the trace id
// (hex), or nil.
func (o *otlpReceiver) spanAttrs(traceID string) map[string]string {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, s := range o.spans {
		if fmt.Sprintf("%x", s.TraceId) != traceID {
			continue
		}
		attrs := map[string]string{}
		for _, kv := range s.Attributes {
			attrs[kv.Key] = kv.Value.GetStringValue()
		}
		if attrs["tenantgate.decision"] != "" {
			return attrs
		}
	}
	return nil
}

// chainSites: two sites sharing one audit_chain_key (one chain), the first
// writing native records, the second OCSF, both traced.
func chainSites(nativeAddr, ocsfAddr, keyFile, realm string) string {
	site := func(addr, format string) string {
		return fmt.Sprintf(`
http://%s {
	tracing {
		span tenantgate
	}
	tenant_gate {
%%[1]s
		realm %s
		audit_chain_key {file.%s}
		audit_format %s
		rule GET /public/** public
		rule *   /echo/**   authenticated
	}
	reverse_proxy %s
}
`, addr, realm, keyFile, format, strings.TrimPrefix(env.echo.URL, "http://"))
	}
	return site(nativeAddr, "native") + site(ocsfAddr, "ocsf")
}

// chainGlobal routes the audit trail through the buffered writer.
func chainGlobal(admin, auditPath, logPath string) string {
	return fmt.Sprintf(`{
	admin %s
	auto_https off
	persist_config off
	log audit {
		include http.handlers.tenant_gate.audit
		output tenantgate_buffered {
			flush_interval 10ms
			output file %s
		}
		format json
	}
	log default {
		exclude http.handlers.tenant_gate.audit
		output file %s
	}
}
`, admin, auditPath, logPath)
}

// verifyAudit runs `caddy tenant-gate audit verify` and returns its exit
// code and output.
func verifyAudit(args ...string) (int, string) {
	cmd := exec.Command(filepath.Join(env.binDir, "caddy"), append([]string{"tenant-gate", "audit", "verify"}, args...)...)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(out)
	}
	Expect(err).NotTo(HaveOccurred(), string(out))
	return 0, string(out)
}

var _ = Describe("audit chain, OCSF and tracing", Ordered, func() {
	var (
		dir, keyFile, auditPath string
		otlp                    *otlpReceiver
		lines                   []string
		sent                    = map[string]bool{} // client request ids
		deniedID                string
	)

	BeforeAll(func() {
		dir = filepath.Join(env.dir, "auditchain")
		Expect(os.MkdirAll(dir, 0o700)).To(Succeed())
		key := make([]byte, 48)
		_, _ = rand.Read(key)
		keyFile = filepath.Join(dir, "audit.key")
		Expect(os.WriteFile(keyFile, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600)).To(Succeed())
		auditPath = filepath.Join(dir, "audit.log")
		otlp = newOTLPReceiver()
		DeferCleanup(otlp.srv.Close)

		nativeAddr, ocsfAddr, admin := freeAddr(), freeAddr(), freeAddr()
		caddyfile := filepath.Join(dir, "Caddyfile")
		write := func(realm string) {
			src := chainGlobal(admin, auditPath, filepath.Join(dir, "caddy.log")) +
				fmt.Sprintf(chainSites(nativeAddr, ocsfAddr, keyFile, realm), env.issuers())
			Expect(os.WriteFile(caddyfile, []byte(src), 0o600)).To(Succeed())
		}
		write("one")
		logf, err := os.Create(filepath.Join(dir, "stdout.log"))
		Expect(err).NotTo(HaveOccurred())
		cmd := exec.Command(filepath.Join(env.binDir, "caddy"), "run", "--config", caddyfile, "--adapter", "caddyfile")
		cmd.Stdout, cmd.Stderr, cmd.Dir = logf, logf, dir
		cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir,
			"TG_TEST_HMAC="+string(env.hmacSecret),
			"OTEL_TRACES_EXPORTER=otlp", "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
			"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="+otlp.srv.URL+"/v1/traces", "OTEL_BSP_SCHEDULE_DELAY=100")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		Expect(cmd.Start()).To(Succeed())
		DeferCleanup(func() { _ = cmd.Process.Kill() })
		env.waitHTTP("http://" + nativeAddr + "/public/ready")

		tok := sign(env.rsaKey, env.baseClaims("acme", "reader"), nil)
		n := 0
		traffic := func() {
			for _, base := range []string{"http://" + nativeAddr, "http://" + ocsfAddr} {
				for _, c := range []struct{ path, token string }{{"/echo/a", tok}, {"/echo/b", ""}, {"/public/c", ""}, {"/nowhere", tok}} {
					n++
					id := fmt.Sprintf("chain-%d", n)
					sent[id] = true
					if c.token == "" && deniedID == "" {
						deniedID = id
					}
					do("GET", base+c.path, c.token, map[string][]string{"X-Request-ID": {id}}, "")
				}
			}
		}
		traffic()
		// A reload (realm changed, so Caddy applies it) in the middle: the chain goes on.
		write("two")
		out, err := exec.Command(filepath.Join(env.binDir, "caddy"), "reload", "--config", caddyfile,
			"--adapter", "caddyfile", "--address", admin).CombinedOutput()
		Expect(err).NotTo(HaveOccurred(), string(out))
		traffic()
		// A graceful stop writes the closing record and flushes the buffer.
		Expect(cmd.Process.Signal(syscall.SIGTERM)).To(Succeed())
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		Eventually(done, 15*time.Second).Should(Receive())

		f, err := os.Open(auditPath)
		Expect(err).NotTo(HaveOccurred())
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			lines = append(lines, sc.Text())
		}
	})

	// tampered writes the audit log with change applied and verifies it.
	tampered := func(name string, change func([]string) []string) (int, string, string) {
		cp := append([]string(nil), lines...)
		path := filepath.Join(dir, name+".log")
		Expect(os.WriteFile(path, []byte(strings.Join(change(cp), "\n")+"\n"), 0o600)).To(Succeed())
		code, out := verifyAudit("--key-file", keyFile, path)
		return code, out, path
	}
	// recordLine finds the index of the record for a client request id.
	recordLine := func(id string) int {
		for i, l := range lines {
			if strings.Contains(l, `"client_request_id":"`+id+`"`) {
				return i
			}
		}
		Fail("no record for " + id)
		return -1
	}

	It("keeps every record across a reload and a stop, in one closed chain that verifies", func() {
		got := map[string]bool{}
		for _, l := range lines {
			for id := range sent {
				if strings.Contains(l, `"client_request_id":"`+id+`"`) {
					Expect(got[id]).To(BeFalse(), "two records for %s", id)
					got[id] = true
				}
			}
		}
		Expect(got).To(HaveLen(len(sent)), "records lost")
		Expect(lines[len(lines)-1]).To(ContainSubstring(`"chain_end":"shutdown"`))
		code, out := verifyAudit("--key-file", keyFile, auditPath)
		Expect(code).To(Equal(0), out)
		Expect(out).To(MatchRegexp(`OK: \d+ chained records in 1 chain\(s\)`))
		Expect(out).To(ContainSubstring("closed (shutdown)"))
	})

	It("names an edited field", func() {
		i := recordLine("chain-1")
		code, out, path := tampered("edited", func(l []string) []string {
			l[i] = strings.Replace(l[i], `"tenant_id":"acme"`, `"tenant_id":"globex"`, 1)
			return l
		})
		Expect(code).NotTo(Equal(0))
		Expect(out).To(ContainSubstring(fmt.Sprintf("%s:%d: changed record", path, i+1)))
	})

	It("names a deleted line", func() {
		i := recordLine("chain-3")
		code, out, path := tampered("deleted", func(l []string) []string { return append(l[:i:i], l[i+1:]...) })
		Expect(code).NotTo(Equal(0))
		Expect(out).To(MatchRegexp(`seq \d+ at %s:%d: gap: seq \d+ is missing`, regexpQuote(path), i+1))
	})

	It("names two swapped lines", func() {
		i := recordLine("chain-2")
		code, out, path := tampered("swapped", func(l []string) []string { l[i], l[i+1] = l[i+1], l[i]; return l })
		Expect(code).NotTo(Equal(0))
		Expect(out).To(ContainSubstring(fmt.Sprintf("at %s:%d: out of order", path, i+1)))
	})

	It("names an inserted, forged line", func() {
		i := recordLine("chain-4")
		code, out, path := tampered("inserted", func(l []string) []string {
			forged := strings.Replace(l[i], `"decision":"deny"`, `"decision":"allow"`, 1)
			return append(l[:i:i], append([]string{forged}, l[i:]...)...)
		})
		Expect(code).NotTo(Equal(0))
		Expect(out).To(ContainSubstring(fmt.Sprintf("at %s:%d: inserted record", path, i+1)))
	})

	It("names a log cut off after its last record, and refuses a wrong key", func() {
		code, out, _ := tampered("truncated", func(l []string) []string { return l[:len(l)-1] })
		Expect(code).NotTo(Equal(0))
		Expect(out).To(ContainSubstring("no closing record"))
		wrong := filepath.Join(dir, "wrong.key")
		Expect(os.WriteFile(wrong, []byte(strings.Repeat("k", 40)), 0o600)).To(Succeed())
		code, out = verifyAudit("--key-file", wrong, auditPath)
		Expect(code).NotTo(Equal(0))
		Expect(out).To(ContainSubstring("no key verifies this chain"))
		code, out = verifyAudit("--key-file", keyFile, keyFile)
		Expect(code).NotTo(Equal(0))
		Expect(out).To(ContainSubstring("not a JSON log"))
	})

	It("writes OCSF API Activity records with the required fields", func() {
		var ocsf map[string]any
		Expect(json.Unmarshal([]byte(lines[recordLine("chain-6")]), &ocsf)).To(Succeed())
		Expect(ocsf).To(HaveKeyWithValue("class_uid", 6003.0))
		Expect(ocsf).To(HaveKeyWithValue("category_uid", 6.0))
		Expect(ocsf).To(HaveKeyWithValue("activity_id", 2.0))
		Expect(ocsf).To(HaveKeyWithValue("type_uid", 600302.0))
		Expect(ocsf).To(HaveKeyWithValue("status_id", 2.0))
		Expect(ocsf).To(HaveKeyWithValue("status_detail", "missing_token"))
		Expect(ocsf).To(HaveKey("time"))
		Expect(ocsf).To(HaveKey("severity_id"))
		get := func(path string) any {
			var v any = ocsf
			for _, k := range strings.Split(path, ".") {
				m, ok := v.(map[string]any)
				Expect(ok).To(BeTrue(), path)
				v = m[k]
			}
			return v
		}
		Expect(get("metadata.product.name")).To(Equal("tenantgate"))
		Expect(get("metadata.version")).To(MatchRegexp(`^1\.\d+\.\d+$`))
		Expect(get("http_request.http_method")).To(Equal("GET"))
		Expect(get("http_request.url.path")).To(Equal("/echo/b"))
		Expect(get("http_response.code")).To(Equal(401.0))
		Expect(get("src_endpoint.ip")).To(Equal("127.0.0.1"))
		Expect(get("api.request.uid")).NotTo(BeEmpty())
		Expect(get("api.operation")).To(Equal("GET"))
		Expect(get("actor.user")).To(HaveKey("uid"))
		var allowed map[string]any
		Expect(json.Unmarshal([]byte(lines[recordLine("chain-5")]), &allowed)).To(Succeed())
		ocsf = allowed
		Expect(get("actor.user.uid")).To(Equal("user-acme"))
		Expect(get("actor.user.org.uid")).To(Equal("acme"))
		Expect(get("status_id")).To(Equal(1.0))
	})

	It("tells the request's span why it was denied, and the record carries the trace id", func() {
		var rec map[string]any
		Expect(json.Unmarshal([]byte(lines[recordLine(deniedID)]), &rec)).To(Succeed())
		traceID, _ := rec["trace_id"].(string)
		Expect(traceID).To(MatchRegexp(`^[0-9a-f]{32}$`))
		var attrs map[string]string
		Eventually(func() map[string]string { attrs = otlp.spanAttrs(traceID); return attrs }, 10*time.Second).ShouldNot(BeNil())
		Expect(attrs).To(HaveKeyWithValue("tenantgate.decision", "deny"))
		Expect(attrs).To(HaveKeyWithValue("tenantgate.reason", "missing_token"))
		Expect(attrs).To(HaveKeyWithValue("tenantgate.route", "/echo/**"))
		Expect(attrs).To(HaveKey("tenantgate.tenant"))
		Expect(attrs).To(HaveKey("tenantgate.issuer"))
		Expect(attrs).To(HaveKey("tenantgate.binding"))
	})
})

var _ = Describe("audit_chain_key, caddy validate", func() {
	It("names the line of a short key and of a placeholder that resolves to nothing", func() {
		dir := GinkgoT().TempDir()
		for _, c := range []struct{ key, want string }{
			{"tooshort-tooshort", "at least 32 are required"},
			{"{env.TG_TEST_NO_SUCH_VARIABLE}", "resolves to nothing"},
			{"{file." + filepath.Join(dir, "missing.key") + "}", "resolves to nothing"},
		} {
			cf := filepath.Join(dir, "Caddyfile")
			Expect(os.WriteFile(cf, []byte("http://127.0.0.1:1 {\n\ttenant_gate {\n\t\tassertion_key x\n\t\taudit_chain_key "+c.key+"\n\t}\n}\n"), 0o600)).To(Succeed())
			out, err := exec.Command(filepath.Join(env.binDir, "caddy"), "validate", "--config", cf, "--adapter", "caddyfile").CombinedOutput()
			Expect(err).To(HaveOccurred(), string(out))
			Expect(string(out)).To(ContainSubstring(c.want))
			Expect(string(out)).To(ContainSubstring(cf + ":4"))
		}
	})
})

func regexpQuote(s string) string {
	r := strings.NewReplacer(`.`, `\.`, `/`, `\/`, `-`, `\-`, `+`, `\+`)
	return r.Replace(s)
}
