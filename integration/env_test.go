package integration_test

import (
	"bufio"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/tenantgate/tenantgate/module/assertion"
)

const (
	issuerMain = "https://idp.test"
	issuerLate = "https://late.test" // its JWKS is down when Caddy starts
	issuerHMAC = "https://hmac.test"
	audience   = "alphapulse-api"
)

type testEnv struct {
	dir, binDir string

	rsaKey, ecKey, edKey, rotatedKey, lateKey signingKey
	attackerKey                               signingKey
	hmacSecret                                []byte
	assertionPriv                             ed25519.PrivateKey

	jwks, lateJWKS *jwksServer
	echo           *httptest.Server

	backendURL, gateURL, echoURL, reportURL, adminURL string
	auditPath, backendLog                             string

	backend, caddy *exec.Cmd
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	Expect(err).NotTo(HaveOccurred())
	defer l.Close()
	return l.Addr().String()
}

func startEnv() *testEnv {
	e := &testEnv{dir: GinkgoT().TempDir()}
	e.binDir = os.Getenv("TENANTGATE_BIN")
	if e.binDir == "" {
		e.binDir = filepath.Join(repoRoot(), "bin")
	}
	for _, b := range []string{"caddy", "backend"} {
		_, err := os.Stat(filepath.Join(e.binDir, b))
		Expect(err).NotTo(HaveOccurred(), "bin/%s missing: run `make build` (or `make test`) first", b)
	}

	e.rsaKey = newKey(jwa.RS256, "rsa-1")
	e.ecKey = newKey(jwa.ES256, "ec-1")
	e.edKey = newKey(jwa.EdDSA, "ed-1")
	e.rotatedKey = newKey(jwa.ES256, "rotated-1")
	e.lateKey = newKey(jwa.ES256, "late-1")
	e.attackerKey = newKey(jwa.RS256, "rsa-1") // same kid as the real key
	// Printable, so it can travel in an environment variable.
	e.hmacSecret = []byte(randomHex(32))

	e.jwks = newJWKSServer(e.rsaKey.public(), e.ecKey.public(), e.edKey.public())
	e.lateJWKS = newJWKSServer(e.lateKey.public())
	e.lateJWKS.down.Store(true)
	e.echo = httptest.NewServer(http.HandlerFunc(echoHandler))

	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	Expect(err).NotTo(HaveOccurred())
	e.assertionPriv = priv
	privPEM, _ := assertion.EncodePrivateKeyPEM(priv)
	pubPEM, _ := assertion.EncodePublicKeyPEM(pub)
	Expect(os.WriteFile(filepath.Join(e.dir, "assertion.pem"), privPEM, 0o600)).To(Succeed())
	Expect(os.WriteFile(filepath.Join(e.dir, "assertion.pub.pem"), pubPEM, 0o600)).To(Succeed())

	backendAddr := freeAddr()
	gateAddr, echoAddr, reportAddr, adminAddr := freeAddr(), freeAddr(), freeAddr(), freeAddr()
	e.backendURL = "http://" + backendAddr
	e.gateURL = "http://" + gateAddr
	e.echoURL = "http://" + echoAddr
	e.reportURL = "http://" + reportAddr
	e.adminURL = "http://" + adminAddr
	e.auditPath = filepath.Join(e.dir, "audit.log")
	e.backendLog = filepath.Join(e.dir, "backend.log")

	e.backend = e.spawn(e.backendLog, filepath.Join(e.binDir, "backend"),
		"--listen", backendAddr, "--db", filepath.Join(e.dir, "backend.db"),
		"--assertion-key", filepath.Join(e.dir, "assertion.pub.pem"), "--seed-demo")
	e.waitHTTP(e.backendURL + "/healthz")

	caddyfile := filepath.Join(e.dir, "Caddyfile")
	Expect(os.WriteFile(caddyfile, []byte(e.caddyfile(gateAddr, echoAddr, reportAddr, adminAddr, backendAddr)), 0o600)).To(Succeed())
	e.caddy = e.spawn(filepath.Join(e.dir, "caddy.log"), filepath.Join(e.binDir, "caddy"),
		"run", "--config", caddyfile, "--adapter", "caddyfile")
	e.waitHTTP(e.gateURL + "/healthz")
	return e
}

// shippedRules returns the rule lines of caddyfile/Caddyfile, so the suite
// tests the rules users run.
func shippedRules() string {
	f, err := os.Open(filepath.Join(repoRoot(), "caddyfile", "Caddyfile"))
	Expect(err).NotTo(HaveOccurred())
	defer f.Close()
	var b strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); strings.HasPrefix(line, "rule ") {
			b.WriteString("\t\t" + line + "\n")
		}
	}
	return b.String()
}

// shippedRequestBody returns the request_body block of caddyfile/Caddyfile,
// so the suite's gate caps bodies as the shipped one does.
func shippedRequestBody() string {
	raw, err := os.ReadFile(filepath.Join(repoRoot(), "caddyfile", "Caddyfile"))
	Expect(err).NotTo(HaveOccurred())
	s := string(raw)
	i := strings.Index(s, "\trequest_body {")
	Expect(i).To(BeNumerically(">=", 0), "caddyfile/Caddyfile has no request_body block")
	j := strings.Index(s[i:], "\n\t}\n")
	Expect(j).To(BeNumerically(">", 0))
	return s[i : i+j+3]
}

func (e *testEnv) issuers() string {
	return fmt.Sprintf(`
		issuer %s {
			jwks_url %s
			audience %s
		}
		issuer %s {
			jwks_url %s
			audience %s
		}
		issuer %s {
			hmac_secret {env.TG_TEST_HMAC}
			audience %s
		}
		algorithms RS256 ES256 EdDSA HS256
		assertion_key %s
`, issuerMain, e.jwks.url(), audience, issuerLate, e.lateJWKS.url(), audience, issuerHMAC, audience,
		filepath.Join(e.dir, "assertion.pem"))
}

func (e *testEnv) caddyfile(gate, echo, report, admin, backend string) string {
	return globalOptions(admin, e.auditPath, filepath.Join(e.dir, "caddy.log")) + fmt.Sprintf(`
http://%s {
%s
	tenant_gate {
%s
%s
		rule GET /api/v1/late-issuer authenticated
	}
	reverse_proxy %s
}

http://%s {
	tenant_gate {
%s
		rule GET      /public/**                 public
		rule *        /tenants/{tenant}/**       tenant_param tenant
		rule GET,POST /admin/**                  roles admin
		rule *        /echo/**                   authenticated
	}
	reverse_proxy %s
}

http://%s {
	tenant_gate {
%s
		mode report
%s
	}
	reverse_proxy %s
}
`,
		gate, shippedRequestBody(), e.issuers(), shippedRules(), backend,
		echo, e.issuers(), strings.TrimPrefix(e.echo.URL, "http://"),
		report, e.issuers(), shippedRules(), backend)
}

func (e *testEnv) spawn(logPath, bin string, args ...string) *exec.Cmd {
	logf, err := os.Create(logPath)
	Expect(err).NotTo(HaveOccurred())
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = e.dir
	cmd.Env = append(os.Environ(),
		"HOME="+e.dir, "XDG_DATA_HOME="+e.dir, "XDG_CONFIG_HOME="+e.dir,
		"TG_TEST_HMAC="+string(e.hmacSecret))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	Expect(cmd.Start()).To(Succeed())
	return cmd
}

func (e *testEnv) waitHTTP(url string) {
	Eventually(func() error {
		resp, err := http.Get(url)
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	}, 20*time.Second, 50*time.Millisecond).Should(Succeed(), "waiting for %s (logs in %s)", url, e.dir)
}

func (e *testEnv) stop() {
	for _, c := range []*exec.Cmd{e.caddy, e.backend} {
		if c != nil && c.Process != nil {
			_ = c.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() { _, _ = c.Process.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				_ = c.Process.Kill()
			}
		}
	}
	e.jwks.srv.Close()
	e.lateJWKS.srv.Close()
	e.echo.Close()
}

// echoHandler answers with what the upstream received: method, path and
// every header, so specs can assert what got through the gate.
func echoHandler(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if code := r.URL.Query().Get("status"); code != "" {
		var n int
		_, _ = fmt.Sscanf(code, "%d", &n)
		w.WriteHeader(n)
	}
	_ = json.NewEncoder(w).Encode(echoed{Method: r.Method, Path: r.URL.Path, RawPath: r.URL.EscapedPath(), RawQuery: r.URL.RawQuery, Header: r.Header})
}

type echoed struct {
	Method   string
	Path     string
	RawPath  string
	RawQuery string
	Header   http.Header
}

// do sends a request and returns status, header and body.
func do(method, url, token string, headers map[string][]string, body string) (int, http.Header, []byte) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	Expect(err).NotTo(HaveOccurred())
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, vs := range headers {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	Expect(err).NotTo(HaveOccurred())
	return resp.StatusCode, resp.Header, b
}

// problemReason decodes a problem+json body's reason.
func problemReason(body []byte) string {
	var p struct {
		Reason string `json:"reason"`
	}
	_ = json.Unmarshal(body, &p)
	return p.Reason
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
