package integration_test

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// Client-Cert (RFC 9440) is believed only from client_cert_from peers;
// trusted_proxies alone strips it, and a listed peer's own TLS certificate
// never stands in for a missing header.
var _ = Describe("client_cert_from through the real binary", Ordered, func() {
	var (
		gate                          *caddyProc
		ca                            *testCA
		mine, theirs                  tls.Certificate
		tlsAddr                       string
		tlsURL, listedURL, proxiedURL string
	)

	BeforeAll(func() {
		ca = newTestCA()
		mine, theirs = ca.issue("client-mine", false), ca.issue("client-theirs", false)
		dir := ca.writeServerCerts("certfrom-certs")

		var listedAddr, proxiedAddr string
		tlsAddr, listedAddr, proxiedAddr = freeAddr(), freeAddr(), freeAddr()
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
		client_cert_from 127.0.0.1/32
		rule * /echo/** authenticated
	}
	request_header X-Auth-Binding {http.auth.binding}
	reverse_proxy %[4]s
}

http://%[5]s {
	bind 127.0.0.1
	tenant_gate {
%%[1]s
		client_cert_from 127.0.0.2 10.0.0.0/8
		rule * /echo/** authenticated
	}
	request_header X-Auth-Binding {http.auth.binding}
	reverse_proxy %[4]s
}

http://%[6]s {
	bind 127.0.0.1
	tenant_gate {
%%[1]s
		rule GET /public/** public
		rule * /echo/** authenticated
	}
	reverse_proxy %[4]s
}
`, "", tlsPort, dir, echo, listedAddr, proxiedAddr)
		tlsURL, listedURL, proxiedURL = "https://localhost:"+tlsPort, "http://"+listedAddr, "http://"+proxiedAddr
		// 127.0.0.2 is in Caddy's trusted_proxies for every site of the server.
		gate = env.startCaddyGlobal("certfrom", "\tservers {\n\t\ttrusted_proxies static 127.0.0.2/32\n\t}", sites, proxiedURL+"/public/wait")
	})
	AfterAll(func() { gate.stop() })

	bound := func() string { return env.boundToken(issuerMain, map[string]any{"x5t#S256": x5t(mine)}) }

	It("ignores Client-Cert from a peer that is only in trusted_proxies, and strips it", func() {
		status, _, body := get(fromSource("127.0.0.2"), proxiedURL+"/echo/x", bound(), map[string]string{"Client-Cert": clientCertHeader(mine)})
		Expect(status).To(Equal(http.StatusUnauthorized), "trusted_proxies alone must not make Client-Cert believed: %s", body)
		Expect(problemReason(body)).To(Equal("binding_mismatch"))
		for _, path := range []string{"/echo/x", "/public/x"} {
			status, _, body = get(fromSource("127.0.0.2"), proxiedURL+path, env.token("acme"), map[string]string{"Client-Cert": clientCertHeader(mine), "Client-Cert-Chain": clientCertHeader(mine)})
			Expect(status).To(Equal(http.StatusOK), string(body))
			var got echoed
			Expect(json.Unmarshal(body, &got)).To(Succeed())
			Expect(upstreamHas(got, "Client-Cert")).To(BeEmpty(), "%s: Client-Cert of a trusted_proxies peer reached the upstream", path)
			Expect(upstreamHas(got, "Client-Cert-Chain")).To(BeEmpty(), path)
		}
	})

	It("believes Client-Cert from a client_cert_from peer, and forwards it in one spelling", func() {
		status, _, body := get(fromSource("127.0.0.2"), listedURL+"/echo/x", bound(), map[string]string{"Client-Cert": clientCertHeader(mine)})
		Expect(status).To(Equal(http.StatusOK), string(body))
		var got echoed
		Expect(json.Unmarshal(body, &got)).To(Succeed())
		Expect(got.Header.Get("X-Auth-Binding")).To(Equal("mtls"))
		Expect(got.Header.Values("Client-Cert")).To(Equal([]string{clientCertHeader(mine)}))
		// Another certificate from the same peer does not match the token.
		status, _, body = get(fromSource("127.0.0.2"), listedURL+"/echo/x", bound(), map[string]string{"Client-Cert": clientCertHeader(theirs)})
		Expect(status).To(Equal(http.StatusUnauthorized))
		Expect(problemReason(body)).To(Equal("binding_mismatch"))
		// A peer outside client_cert_from on the same site is not believed.
		status, _, body = get(fromSource("127.0.0.1"), listedURL+"/echo/x", bound(), map[string]string{"Client-Cert": clientCertHeader(mine)})
		Expect(status).To(Equal(http.StatusUnauthorized))
		Expect(problemReason(body)).To(Equal("binding_mismatch"))
	})

	It("never takes a listed peer's own TLS certificate for a missing Client-Cert", func() {
		// The peer (127.0.0.1) is in client_cert_from and presents the very
		// certificate the token is bound to, over TLS, without the header.
		status, _, body := get(tlsClient(ca, tlsAddr, &mine), tlsURL+"/echo/x", bound(), nil)
		Expect(status).To(Equal(http.StatusUnauthorized), "a listed proxy's own certificate stood in for the header: %s", body)
		Expect(problemReason(body)).To(Equal("binding_mismatch"))
		// With the header, the header counts.
		status, _, body = get(tlsClient(ca, tlsAddr, &theirs), tlsURL+"/echo/x", bound(), map[string]string{"Client-Cert": clientCertHeader(mine)})
		Expect(status).To(Equal(http.StatusOK), string(body))
	})
})

// Without dpop_public_url, a DPoP proof passes only for a host name the
// site is configured for; a proof made for another resource server never
// passes, whatever Host the request names.
var _ = Describe("DPoP htu host through the real binary", Ordered, func() {
	var (
		gate *caddyProc
		addr string
		port string
		cl   *dpopClient
		tok  string
	)

	BeforeAll(func() {
		addr = freeAddr()
		_, port, _ = net.SplitHostPort(addr)
		echo := strings.TrimPrefix(env.echo.URL, "http://")
		// One server, two sites: a named one and a catch-all.
		sites := fmt.Sprintf(`
http://127.0.0.1:%[2]s {
	bind 127.0.0.1
	tenant_gate {
%%[1]s
		rule * /echo/** authenticated
	}
	reverse_proxy %[3]s
}

http://:%[2]s {
	bind 127.0.0.1
	tenant_gate {
%%[1]s
		rule * /echo/** authenticated
	}
	reverse_proxy %[3]s
}
`, "", port, echo)
		gate = env.startCaddy("dpophost", sites, "http://"+addr+"/echo/wait")
		cl = newDPoPClient(jwa.ES256)
		tok = env.boundToken(issuerMain, map[string]any{"jkt": cl.jkt})
	})
	AfterAll(func() { gate.stop() })

	sendAs := func(host, htu string) (int, []byte) {
		req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/echo/x", nil)
		Expect(err).NotTo(HaveOccurred())
		req.Host = host
		req.Header.Set("Authorization", "DPoP "+tok)
		req.Header.Set("DPoP", cl.proof("GET", htu, tok))
		resp, err := http.DefaultClient.Do(req)
		Expect(err).NotTo(HaveOccurred())
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		Expect(err).NotTo(HaveOccurred())
		return resp.StatusCode, body
	}

	It("passes a proof for the site's own host name", func() {
		// The gate fetches its keys once it has started; startCaddy waited
		// only for an answer, so under load the first requests may still
		// be 503 keys_unavailable.
		var status int
		var body []byte
		Eventually(func() int {
			status, body = sendAs("127.0.0.1:"+port, "http://127.0.0.1:"+port+"/echo/x")
			return status
		}, 10*time.Second, 50*time.Millisecond).ShouldNot(Equal(http.StatusServiceUnavailable))
		Expect(status).To(Equal(http.StatusOK), string(body))
	})

	It("never passes a proof made for another resource server", func() {
		for _, host := range []string{"other-rs.example", "other-rs.example:" + port} {
			status, body := sendAs(host, "http://"+host+"/echo/x")
			Expect(status).To(Equal(http.StatusUnauthorized), "Host %s: %s", host, body)
			Expect(problemReason(body)).To(Equal("bad_dpop_proof"))
			Expect(string(body)).To(ContainSubstring("not a host name of this site"))
		}
		status, body := sendAs("other-rs.example", "https://other-rs.example/echo/x")
		Expect(status).To(Equal(http.StatusUnauthorized), string(body))
	})
})
