package integration_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// foldName folds a header name the way a CGI-style upstream may: any case,
// '_' and '.' standing for '-'. It is the test's own oracle, independent of
// the gate's matcher.
func foldName(name string) string {
	return strings.NewReplacer("_", "-", ".", "-").Replace(strings.ToLower(name))
}

// upstreamHas reports the header names of got that fold to name.
func upstreamHas(got echoed, name string) []string {
	var found []string
	for k := range got.Header {
		if foldName(k) == foldName(name) {
			found = append(found, k)
		}
	}
	return found
}

// rawExchange writes req (a full HTTP/1.1 request, head and body) on a new
// connection to addr and reads the whole answer: status, header, body.
func rawExchange(addr, req string) (*http.Response, []byte) {
	conn, err := net.Dial("tcp", addr)
	Expect(err).NotTo(HaveOccurred())
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	_, err = io.WriteString(conn, req)
	Expect(err).NotTo(HaveOccurred())
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	Expect(err).NotTo(HaveOccurred())
	return resp, body
}

var _ = Describe("the request path: credentials, owned headers and errors of later handlers", Ordered, func() {
	var (
		gate *caddyProc
		addr string
		url  string
	)

	BeforeAll(func() {
		addr = freeAddr()
		url = "http://" + addr
		echo := strings.TrimPrefix(env.echo.URL, "http://")
		sites := fmt.Sprintf(`
http://%[2]s {
	bind 127.0.0.1
	tenant_gate {
%%[1]s
		token_cookie tg_token
		token_query access_token
		rule GET  /public/**  public
		rule POST /upload     public
		rule *    /echo/**    authenticated
	}
	route {
		request_body {
			max_size 1KB
		}
		reverse_proxy %[3]s
	}
}
`, "", addr, echo)
		gate = env.startCaddy("requestpath", sites, url+"/public/wait")
	})
	AfterAll(func() { gate.stop() })

	// send makes one request with the given Authorization values and extra
	// header lines, and returns what the echo upstream saw.
	send := func(path string, auth []string, extra map[string][]string) (int, echoed) {
		req, err := http.NewRequest(http.MethodGet, url+path, nil)
		Expect(err).NotTo(HaveOccurred())
		for _, a := range auth {
			req.Header.Add("Authorization", a)
		}
		for k, vs := range extra {
			req.Header[k] = vs // as spelled: no canonical form
		}
		resp, err := http.DefaultClient.Do(req)
		Expect(err).NotTo(HaveOccurred())
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		Expect(err).NotTo(HaveOccurred())
		var got echoed
		if resp.StatusCode == http.StatusOK {
			Expect(json.Unmarshal(body, &got)).To(Succeed(), string(body))
		}
		return resp.StatusCode, got
	}

	DescribeTable("a public route never forwards the end user's token",
		func(auth []string) {
			tok := env.token("acme")
			var filled []string
			for _, a := range auth {
				filled = append(filled, strings.ReplaceAll(a, "TOKEN", tok))
			}
			status, got := send("/public/x?access_token="+tok+"&x=1", filled, map[string][]string{
				"DPoP":   {"proof-a"},
				"dpop":   {"proof-b"},
				"Cookie": {"tg_token=" + tok + "; theme=dark"},
			})
			Expect(status).To(Equal(http.StatusOK))
			Expect(got.Header.Values("Authorization")).To(BeEmpty(), "Authorization reached a public upstream")
			Expect(upstreamHas(got, "DPoP")).To(BeEmpty(), "a DPoP proof reached a public upstream")
			Expect(got.Header.Get("Cookie")).To(Equal("theme=dark"))
			Expect(got.RawQuery).To(Equal("x=1"))
			b, _ := json.Marshal(got)
			Expect(string(b)).NotTo(ContainSubstring(tok), "the token reached the upstream somewhere")
		},
		Entry("Bearer", []string{"Bearer TOKEN"}),
		Entry("bearer, lower case", []string{"bearer TOKEN"}),
		Entry("BEARER with spaces", []string{"  BEARER   TOKEN"}),
		Entry("DPoP", []string{"DPoP TOKEN"}),
		Entry("dpop, lower case", []string{"dpop TOKEN"}),
		Entry("two Authorization headers", []string{"Bearer TOKEN", "DPoP TOKEN"}),
		Entry("no Authorization (cookie and query only)", nil),
	)

	It("passes Basic and other schemes untouched on a public route", func() {
		status, got := send("/public/x", []string{"Basic dXNlcjpwYXNz"}, nil)
		Expect(status).To(Equal(http.StatusOK))
		Expect(got.Header.Values("Authorization")).To(Equal([]string{"Basic dXNlcjpwYXNz"}))
		// Next to a bearer token, the Basic value stays and the token goes.
		status, got = send("/public/x", []string{"Basic dXNlcjpwYXNz", "Bearer " + env.token("acme")}, nil)
		Expect(status).To(Equal(http.StatusOK))
		Expect(got.Header.Values("Authorization")).To(Equal([]string{"Basic dXNlcjpwYXNz"}))
	})

	It("strips Client-Cert, Client-Cert-Chain, DPoP and X-Request-ID in every spelling, on public and authenticated routes", func() {
		owned := map[string][]string{
			"Client-Cert": {":AAAA:"}, "client_cert": {":AAAA:"}, "Client.Cert": {":AAAA:"},
			"Client-Cert-Chain": {":AAAA:"}, "CLIENT_CERT_CHAIN": {":AAAA:"},
			"Dpop": {"p"}, "X_Request_ID": {"forged"}, "x.request.id": {"forged"}, "X-Request-Id": {"client-id"},
		}
		for _, path := range []string{"/public/x", "/echo/x"} {
			status, got := send(path, []string{"Bearer " + env.token("acme")}, owned)
			Expect(status).To(Equal(http.StatusOK), path)
			for _, name := range []string{"Client-Cert", "Client-Cert-Chain", "DPoP"} {
				Expect(upstreamHas(got, name)).To(BeEmpty(), "%s: %s reached the upstream", path, name)
			}
			ids := upstreamHas(got, "X-Request-ID")
			Expect(ids).To(HaveLen(1), "%s: exactly one request id", path)
			Expect(got.Header[ids[0]]).To(HaveLen(1))
			Expect(got.Header[ids[0]][0]).NotTo(BeElementOf("forged", "client-id"))
		}
	})

	It("answers a 413 of request_body after the gate with problem+json and audits it", func() {
		body := strings.Repeat("x", 4096)
		resp, got := rawExchange(addr, fmt.Sprintf("POST /upload HTTP/1.1\r\nHost: %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", addr, len(body), body))
		Expect(resp.StatusCode).To(Equal(http.StatusRequestEntityTooLarge), string(got))
		Expect(resp.Header.Get("Content-Type")).To(Equal("application/problem+json"))
		id := resp.Header.Get("X-Request-ID")
		Expect(id).NotTo(BeEmpty())
		var p struct {
			Type      string `json:"type"`
			Title     string `json:"title"`
			Status    int    `json:"status"`
			Detail    string `json:"detail"`
			RequestID string `json:"request_id"`
		}
		Expect(json.Unmarshal(got, &p)).To(Succeed(), string(got))
		Expect(p.Status).To(Equal(http.StatusRequestEntityTooLarge))
		Expect(p.Title).To(Equal("Request Entity Too Large"))
		Expect(p.Detail).To(ContainSubstring("larger than this route accepts"))
		Expect(p.RequestID).To(Equal(id))
		rec := auditFor(gate.auditPath, id)
		Expect(rec.Status).To(Equal(http.StatusRequestEntityTooLarge))
		Expect(rec.Decision).To(Equal("public"))
		// Under the cap the same route passes.
		resp, _ = rawExchange(addr, fmt.Sprintf("POST /upload HTTP/1.1\r\nHost: %s\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok", addr))
		Expect(resp.StatusCode).To(Equal(http.StatusOK))
	})

	It("hints at the trailing-slash twin of a rule on no_route", func() {
		status, _, body := do("POST", url+"/upload/", "", nil, "")
		Expect(status).To(Equal(http.StatusForbidden))
		Expect(problemReason(body)).To(Equal("no_route"))
		Expect(string(body)).To(ContainSubstring("did you mean /upload?"))
	})
})
