package integration_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	neturl "net/url"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/tenantgate/tenantgate/module/assertion"
)

// postBody POSTs size bytes of JSON-looking data to url over a fresh raw
// connection the way curl does: with Expect: 100-continue it sends the body
// after a 100 Continue, or after waiting 1 s for one as curl does (Caddy
// answers such a request only once the body flows); without it, it streams the body while reading
// the answer, so an early 413 is read as soon as it arrives. (Go's
// http.Client reports the write error instead when the server answers
// early and closes, which curl and browsers do not.) It returns the status,
// or the error a reset or a broken-off answer causes.
func postBody(url, token string, size int, expectContinue bool) (int, string, error) {
	u, err := neturl.Parse(url)
	Expect(err).NotTo(HaveOccurred())
	body := append([]byte(`{"name":"`), bytes.Repeat([]byte("x"), size)...)
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		return 0, "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n",
		u.RequestURI(), u.Host, token, len(body))
	if expectContinue {
		head += "Expect: 100-continue\r\n"
	}
	if _, err := io.WriteString(conn, head+"\r\n"); err != nil {
		return 0, "", err
	}
	rd := bufio.NewReader(conn)
	var once sync.Once
	send := func() { once.Do(func() { go func() { _, _ = conn.Write(body) }() }) } // fails once the server closes; the answer is read meanwhile
	if !expectContinue {
		send()
	} else {
		// curl waits 1 s for the 100 (--expect100-timeout), then sends anyway.
		_ = conn.SetReadDeadline(time.Now().Add(time.Second))
		if _, err := rd.Peek(1); err != nil {
			send()
		}
		_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	}
	for {
		resp, err := http.ReadResponse(rd, nil)
		if err != nil {
			return 0, "", err
		}
		if resp.StatusCode == http.StatusContinue {
			send()
			continue
		}
		b, err := io.ReadAll(resp.Body) // to its end: a broken-off answer is an error, as for curl
		if err != nil {
			return resp.StatusCode, string(b), fmt.Errorf("reading the %d answer: %w", resp.StatusCode, err)
		}
		return resp.StatusCode, string(b), nil
	}
}

var _ = Describe("backend input through the real gate", func() {
	createURL := func() string { return env.gateURL + "/api/v1/ensemble/create" }

	DescribeTable("a body over a limit is 413 at any size, three times in a row",
		func(size int, expectContinue bool, from string) {
			tok := env.token("acme", "ensemble:write")
			for i := 0; i < 3; i++ {
				status, body, err := postBody(createURL(), tok, size, expectContinue)
				Expect(err).NotTo(HaveOccurred(), "post %d of %d bytes", i+1, size)
				Expect(status).To(Equal(http.StatusRequestEntityTooLarge), "post %d: %s", i+1, body)
				if from == "backend" {
					Expect(body).To(ContainSubstring("body-too-large"))
				}
			}
		},
		Entry("10 MB with Expect: 100-continue (curl's way above 1 MiB): the edge's request_body", 10<<20, true, "edge"),
		Entry("10 MB streamed without Expect: the edge's request_body", 10<<20, false, "edge"),
		Entry("512 KiB (under the edge cap, over the backend's 64 KiB) with Expect", 512<<10, true, "backend"),
		Entry("512 KiB without Expect: the backend answers 413, not a reset (502)", 512<<10, false, "backend"),
	)

	It("refuses a body without a JSON media type with 415 and creates nothing", func() {
		tok := env.token("acme", "ensemble:read", "ensemble:write")
		before := countEnsembles(tok)
		for _, ct := range []string{"text/plain", "application/xml", "multipart/form-data; boundary=x", "application/x-www-form-urlencoded"} {
			req, _ := http.NewRequest(http.MethodPost, createURL(), strings.NewReader(`{"name":"n","method":"majority"}`))
			req.Header.Set("Authorization", "Bearer "+tok)
			req.Header.Set("Content-Type", ct)
			resp, err := http.DefaultClient.Do(req)
			Expect(err).NotTo(HaveOccurred())
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			Expect(resp.StatusCode).To(Equal(http.StatusUnsupportedMediaType), "%s: %s", ct, b)
		}
		Expect(countEnsembles(tok)).To(Equal(before))
	})

	It("keeps the tenant's analysis answerable after the 1.5e300 order", func() {
		tok := env.token("globex", "hedging:read", "hedging:trade")
		before := analysis(tok)
		status, _, body := do(http.MethodPost, env.gateURL+"/api/v1/hedging/execute", tok,
			map[string][]string{"Idempotency-Key": {"huge-" + randomHex(4)}}, `{"orders":[{"asset":"BTC","side":"sell","quantity":1.5e300}]}`)
		Expect(status).To(Equal(http.StatusUnprocessableEntity), string(body))
		Expect(string(body)).To(ContainSubstring("risk-limit"))
		after := analysis(tok)
		Expect(after).To(Equal(before), "a refused order changed the account")
		var a struct {
			Totals  map[string]float64 `json:"totals"`
			Account struct {
				CashUSD float64 `json:"cash_usd"`
			} `json:"account"`
		}
		Expect(json.Unmarshal([]byte(after), &a)).To(Succeed())
		for k, v := range a.Totals {
			Expect(math.IsInf(v, 0) || math.IsNaN(v)).To(BeFalse(), k)
		}
		Expect(a.Account.CashUSD).To(BeNumerically(">", 0))
	})

	It("refuses, in the backend itself, an assertion without the route's role", func() {
		// Signed by the gate's key for exactly this request, but with a role
		// the route does not take: what a loose gate rule would forward.
		before := acmeAccount()
		raw := mint(env.assertionPriv, func(c *assertion.Claims) {
			c.Roles = []string{"hedging:read"}
			c.Path = "/api/v1/hedging/close"
		})
		status, _, body := do(http.MethodPost, env.backendURL+"/api/v1/hedging/close", "",
			map[string][]string{"X-Tenant-Assertion": {raw}, "X-User-Roles": {"hedging:admin"}}, "")
		Expect(status).To(Equal(http.StatusForbidden), string(body))
		Expect(string(body)).To(ContainSubstring("missing_role"))
		Expect(string(body)).To(ContainSubstring("hedging:admin"))
		Expect(acmeAccount()).To(Equal(before))
	})
})

func countEnsembles(tok string) int {
	status, _, body := do(http.MethodGet, env.gateURL+"/api/v1/ensemble/?limit=100", tok, nil, "")
	Expect(status).To(Equal(http.StatusOK), string(body))
	var l struct {
		Items []json.RawMessage `json:"items"`
	}
	Expect(json.Unmarshal(body, &l)).To(Succeed())
	return len(l.Items)
}

func analysis(tok string) string {
	status, _, body := do(http.MethodGet, env.gateURL+"/api/v1/hedging/analysis", tok, nil, "")
	Expect(status).To(Equal(http.StatusOK), fmt.Sprintf("analysis: %s", body))
	return string(body)
}
