package integration_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

const issuerMTLS = "https://mtls.test" // mtls_binding required

// testCA is a certificate authority made at run time for one spec.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newTestCA() *testCA {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	Expect(err).NotTo(HaveOccurred())
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tenantgate test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	Expect(err).NotTo(HaveOccurred())
	cert, err := x509.ParseCertificate(der)
	Expect(err).NotTo(HaveOccurred())
	return &testCA{cert: cert, key: key}
}

var certSerial = big.NewInt(100)

// issue makes a leaf certificate: a server one for localhost, or a client one.
func (ca *testCA) issue(cn string, server bool) tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	Expect(err).NotTo(HaveOccurred())
	certSerial = new(big.Int).Add(certSerial, big.NewInt(1))
	tmpl := &x509.Certificate{
		SerialNumber: certSerial, Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.DNSNames = []string{"localhost"}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	Expect(err).NotTo(HaveOccurred())
	leaf, err := x509.ParseCertificate(der)
	Expect(err).NotTo(HaveOccurred())
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// writeServerCerts writes the CA (ca.pem) and a localhost server
// certificate and key it issued (server.pem, server.key) to a new folder
// named name under the suite's directory, and returns that folder.
func (ca *testCA) writeServerCerts(name string) string {
	server := ca.issue("localhost", true)
	dir := filepath.Join(env.dir, name)
	Expect(os.MkdirAll(dir, 0o700)).To(Succeed())
	writePEM(filepath.Join(dir, "ca.pem"), "CERTIFICATE", ca.cert.Raw)
	writePEM(filepath.Join(dir, "server.pem"), "CERTIFICATE", server.Certificate[0])
	keyDER, err := x509.MarshalPKCS8PrivateKey(server.PrivateKey)
	Expect(err).NotTo(HaveOccurred())
	writePEM(filepath.Join(dir, "server.key"), "PRIVATE KEY", keyDER)
	return dir
}

func writePEM(path, typ string, der []byte) {
	Expect(os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)).To(Succeed())
}

// x5t is a certificate's x5t#S256 (RFC 8705 §3.1).
func x5t(c tls.Certificate) string {
	sum := sha256.Sum256(c.Certificate[0])
	return b64url(sum[:])
}

// tlsClient talks to https://localhost:PORT over 127.0.0.1, trusting ca,
// presenting cert when it is not nil.
func tlsClient(ca *testCA, addr string, cert *tls.Certificate) *http.Client {
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	cfg := &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: cfg,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}}
}

// fromSource is a plain HTTP client whose connections come from the
// loopback address src (127.0.0.2 is the gate's only trusted proxy).
func fromSource(src string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: d.DialContext}}
}

func get(c *http.Client, url, token string, headers map[string]string) (int, http.Header, []byte) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	Expect(err).NotTo(HaveOccurred())
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	Expect(err).NotTo(HaveOccurred())
	return resp.StatusCode, resp.Header, body
}

// clientCertHeader is an RFC 9440 Client-Cert value: the DER as an RFC 8941 byte sequence.
func clientCertHeader(c tls.Certificate) string {
	return ":" + base64.StdEncoding.EncodeToString(c.Certificate[0]) + ":"
}

var _ = Describe("certificate-bound tokens (RFC 8705) through the real binary", Ordered, func() {
	var (
		gate                 *caddyProc
		ca                   *testCA
		mine, theirs         tls.Certificate
		tlsAddr, proxiedAddr string
		tlsURL, proxiedURL   string
	)

	BeforeAll(func() {
		ca = newTestCA()
		mine, theirs = ca.issue("client-mine", false), ca.issue("client-theirs", false)
		dir := ca.writeServerCerts("mtls-certs")

		tlsAddr, proxiedAddr = freeAddr(), freeAddr()
		_, tlsPort, _ := net.SplitHostPort(tlsAddr)
		echo := strings.TrimPrefix(env.echo.URL, "http://")
		sites := fmt.Sprintf(`
https://localhost:%[2]s {
	bind 127.0.0.1
	tls %[3]s/server.pem %[3]s/server.key {
		client_auth {
			mode verify_if_given
			trust_pool file %[3]s/ca.pem
		}
	}
	tenant_gate {
%%[1]s
		issuer %[4]s {
			jwks_url %[5]s
			audience %[6]s
			mtls_binding required
		}
		rule * /echo/** authenticated
	}
	request_header X-Auth-Binding {http.auth.binding}
	reverse_proxy %[7]s
}

http://%[8]s {
	bind 127.0.0.1
	tenant_gate {
%%[1]s
		client_cert_from 127.0.0.2/32
		rule GET /public/** public
		rule * /echo/** authenticated
	}
	request_header X-Auth-Binding {http.auth.binding}
	reverse_proxy %[7]s
}
`, "", tlsPort, dir, issuerMTLS, env.jwks.url(), audience, echo, proxiedAddr)
		tlsURL, proxiedURL = "https://localhost:"+tlsPort, "http://"+proxiedAddr
		gate = env.startCaddyGlobal("mtls", "\tservers {\n\t\ttrusted_proxies static 127.0.0.2/32\n\t}", sites, proxiedURL+"/public/wait")
	})
	AfterAll(func() { gate.stop() })

	bound := func() string { return env.boundToken(issuerMTLS, map[string]any{"x5t#S256": x5t(mine)}) }

	It("passes the matching client certificate over a real TLS listener", func() {
		status, h, body := get(tlsClient(ca, tlsAddr, &mine), tlsURL+"/echo/x", bound(), nil)
		Expect(status).To(Equal(http.StatusOK), string(body))
		var got echoed
		Expect(json.Unmarshal(body, &got)).To(Succeed())
		Expect(got.Header.Get("X-Auth-Binding")).To(Equal("mtls"))
		Expect(auditFor(gate.auditPath, h.Get("X-Request-ID")).Binding).To(Equal("mtls"))
	})

	DescribeTable("refuses with binding_mismatch and a Bearer invalid_token challenge",
		func(cert func() *tls.Certificate, token func() string) {
			status, h, body := get(tlsClient(ca, tlsAddr, cert()), tlsURL+"/echo/x", token(), nil)
			Expect(status).To(Equal(http.StatusUnauthorized), string(body))
			Expect(problemReason(body)).To(Equal("binding_mismatch"))
			Expect(h.Get("WWW-Authenticate")).To(HavePrefix("Bearer "))
			Expect(h.Get("WWW-Authenticate")).To(ContainSubstring(`error="invalid_token"`))
			Expect(auditFor(gate.auditPath, h.Get("X-Request-ID")).Binding).To(Equal("mtls"))
		},
		Entry("another client certificate", func() *tls.Certificate { return &theirs }, bound),
		Entry("no client certificate", func() *tls.Certificate { return nil }, bound),
	)

	It("refuses an unbound token on an mtls_binding required issuer, even with a certificate", func() {
		status, _, body := get(tlsClient(ca, tlsAddr, &mine), tlsURL+"/echo/x", env.boundToken(issuerMTLS, nil), nil)
		Expect(status).To(Equal(http.StatusUnauthorized))
		Expect(problemReason(body)).To(Equal("binding_mismatch"))
	})

	It("accepts Client-Cert (RFC 9440) from a trusted proxy", func() {
		tok := env.boundToken(issuerMain, map[string]any{"x5t#S256": x5t(mine)})
		status, _, body := get(fromSource("127.0.0.2"), proxiedURL+"/echo/x", tok, map[string]string{"Client-Cert": clientCertHeader(mine)})
		Expect(status).To(Equal(http.StatusOK), string(body))
		var got echoed
		Expect(json.Unmarshal(body, &got)).To(Succeed())
		Expect(got.Header.Get("X-Auth-Binding")).To(Equal("mtls"))
		// Another certificate from the same proxy does not match.
		status, _, body = get(fromSource("127.0.0.2"), proxiedURL+"/echo/x", tok, map[string]string{"Client-Cert": clientCertHeader(theirs)})
		Expect(status).To(Equal(http.StatusUnauthorized))
		Expect(problemReason(body)).To(Equal("binding_mismatch"))
	})

	It("ignores and strips a forged Client-Cert from an untrusted peer", func() {
		tok := env.boundToken(issuerMain, map[string]any{"x5t#S256": x5t(mine)})
		status, _, body := get(fromSource("127.0.0.1"), proxiedURL+"/echo/x", tok, map[string]string{"Client-Cert": clientCertHeader(mine)})
		Expect(status).To(Equal(http.StatusUnauthorized), "a forged Client-Cert must not satisfy the binding")
		Expect(problemReason(body)).To(Equal("binding_mismatch"))
		for _, path := range []string{"/echo/x", "/public/x"} {
			status, _, body = get(fromSource("127.0.0.1"), proxiedURL+path, env.token("acme"), map[string]string{"Client-Cert": clientCertHeader(mine)})
			Expect(status).To(Equal(http.StatusOK), string(body))
			var got echoed
			Expect(json.Unmarshal(body, &got)).To(Succeed())
			Expect(got.Header.Values("Client-Cert")).To(BeEmpty(), "%s: the upstream must not see a client's Client-Cert", path)
		}
	})
})
