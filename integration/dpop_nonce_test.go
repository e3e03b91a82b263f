package integration_test

import (
	"fmt"
	"net/http"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/tenantgate/tenantgate/module/ratelimit/redistest"
)

// nonceHTU is the public URL every nonce spec's gate judges htu by (as
// replicas behind one load balancer do).
const nonceHTU = "https://api.example.com/rv/x"

// nonceCaller is a DPoP client with a token bound to its key.
type nonceCaller struct {
	client *dpopClient
	token  string
}

func newNonceCaller() nonceCaller {
	c := newDPoPClient(jwa.ES256)
	return nonceCaller{client: c, token: env.boundToken(issuerMain, map[string]any{"jkt": c.jkt})}
}

// send makes a fresh proof carrying nonce ("" for none) and sends it to g.
func (c nonceCaller) send(g revocationGate, nonce string) (int, http.Header, []byte) {
	claims := proofClaims("GET", nonceHTU, c.token)
	if nonce != "" {
		claims["nonce"] = nonce
	}
	return sendDPoP("GET", g.url+"/rv/x", "DPoP", c.token, c.client.sign(claims, nil))
}

// expectNonceChallenge checks a 401 use_dpop_nonce and returns its nonce.
func expectNonceChallenge(status int, hdr http.Header, body []byte) string {
	Expect(status).To(Equal(http.StatusUnauthorized), string(body))
	Expect(problemReason(body)).To(Equal("dpop_nonce_required"))
	Expect(hdr.Values("WWW-Authenticate")).To(Equal([]string{
		`DPoP realm="tenantgate", ` + dpopAlgs + `, error="use_dpop_nonce", error_description="dpop_nonce_required"`}))
	nonces := hdr.Values("DPoP-Nonce")
	Expect(nonces).To(HaveLen(1), "exactly one DPoP-Nonce (RFC 9449 §8)")
	Expect(nonces[0]).To(MatchRegexp(`^[A-Za-z0-9_-]{43}$`))
	return nonces[0]
}

// waitWindowStart sleeps until just after the start of the next window
// of length w, so a spec's timing does not depend on where it began.
func waitWindowStart(w time.Duration) {
	time.Sleep(time.Until(time.Now().Truncate(w).Add(w + 50*time.Millisecond)))
}

var _ = Describe("DPoP server nonces (dpop_nonce, RFC 9449 §9) through the real binary", Ordered, func() {
	const window = 2 * time.Second
	var g revocationGate
	BeforeAll(func() {
		g = startRevocationGate("dpop-nonce", "dpop_public_url https://api.example.com\n\t\tdpop_nonce 2s")
	})

	It("answers a proof without a nonce with 401 use_dpop_nonce and a DPoP-Nonce, and passes the retry that carries it", func() {
		c := newNonceCaller()
		status, hdr, body := c.send(g, "")
		nonce := expectNonceChallenge(status, hdr, body)
		rec := auditFor(g.auditPath, hdr.Get("X-Request-ID"))
		Expect(rec.Reason).To(Equal("dpop_nonce_required"))
		Expect(rec.Decision).To(Equal("deny"))

		status, _, body = c.send(g, nonce)
		Expect(status).To(Equal(http.StatusOK), string(body))
	})

	It("refuses a made-up nonce, with a fresh one to retry with", func() {
		c := newNonceCaller()
		fresh := expectNonceChallenge(c.send(g, "bm90LWEtbm9uY2UtdGhpcy1nYXRlLWhhbmRlZC1vdXQ"))
		status, _, body := c.send(g, fresh)
		Expect(status).To(Equal(http.StatusOK), string(body))
	})

	It("puts a DPoP-Nonce on every 401 of a DPoP request, whatever the reason", func() {
		c := newNonceCaller()
		status, hdr, body := sendDPoP("GET", g.url+"/rv/x", "DPoP", c.token) // no proof
		Expect(status).To(Equal(http.StatusUnauthorized), string(body))
		Expect(problemReason(body)).To(Equal("bad_dpop_proof"))
		Expect(hdr.Values("DPoP-Nonce")).To(HaveLen(1))
		// A bearer request gets none.
		r := rlDo("GET", g.url+"/rv/x", "not-a-token")
		Expect(r.status).To(Equal(http.StatusUnauthorized))
		Expect(r.header.Values("DPoP-Nonce")).To(BeEmpty())
	})

	It("hands out the next nonce on a passed request before the held one expires, and refuses a nonce two windows old", func() {
		c := newNonceCaller()
		waitWindowStart(window)
		_, hdr, _ := c.send(g, "")
		held := hdr.Get("DPoP-Nonce")
		Expect(held).NotTo(BeEmpty())
		// Requests with the held nonce pass through its window and the next;
		// in the next window's last fifth a passed response offers a new one.
		var offered string
		deadline := time.Now().Add(2*window + 500*time.Millisecond)
		for offered == "" || offered == held {
			Expect(time.Now().Before(deadline)).To(BeTrue(), "no new nonce offered within two windows")
			status, hdr, body := c.send(g, held)
			Expect(status).To(Equal(http.StatusOK), "the held nonce must pass until a new one is offered: %s", body)
			Expect(len(hdr.Values("DPoP-Nonce"))).To(BeNumerically("<=", 1))
			offered = hdr.Get("DPoP-Nonce")
			time.Sleep(100 * time.Millisecond)
		}
		status, _, body := c.send(g, offered)
		Expect(status).To(Equal(http.StatusOK), string(body))

		// Two windows after it was handed out, the held nonce is refused.
		waitWindowStart(window)
		status, hdr, body = c.send(g, held)
		fresh := expectNonceChallenge(status, hdr, body)
		Expect(fresh).NotTo(Equal(held))
		AddReportEntry("DPoP nonce rotation (window 2s)", "held nonce passed until a new one was offered on a 200; refused two windows after issue")
	})
})

var _ = Describe("DPoP server nonces across two gates on a shared Redis", Ordered, func() {
	var a, b revocationGate
	var srv *redistest.Server
	BeforeAll(func() {
		// A Redis of the spec's own, so it can be stopped.
		srv = redistest.StartServer(GinkgoT())
		lines := sharedStoreLines(srv.URL, "tenantgate-test:nonce:") + "\n\t\tdpop_public_url https://api.example.com\n\t\tdpop_nonce"
		a = startRevocationGate("dpop-nonce-a", lines)
		b = startRevocationGate("dpop-nonce-b", lines)
	})

	It("accepts at gate b a nonce handed out by gate a, and the other way round", func() {
		c := newNonceCaller()
		fromA := expectNonceChallenge(c.send(a, ""))
		status, _, body := c.send(b, fromA)
		Expect(status).To(Equal(http.StatusOK), "gate b refused gate a's nonce: %s", body)
		fromB := expectNonceChallenge(c.send(b, ""))
		Expect(fromB).To(Equal(fromA), "both replicas derive the same nonce for the window")
		status, _, body = c.send(a, fromB)
		Expect(status).To(Equal(http.StatusOK), string(body))
		AddReportEntry("DPoP nonce cross-replica", "a nonce from gate a's 401 passes at gate b (200), and b's at a")
		fmt.Fprintln(GinkgoWriter, "DPOP-NONCE cross-replica: a's nonce accepted at b, b's at a")
	})

	It("keeps working with Redis down: the replicas go on with the secret they hold, and count the error", func() {
		srv.Stop()
		c := newNonceCaller()
		nonce := expectNonceChallenge(c.send(a, ""))
		status, _, body := c.send(a, nonce)
		Expect(status).To(Equal(http.StatusOK), string(body))
		status, _, body = c.send(b, nonce)
		Expect(status).To(Equal(http.StatusOK), "the secret was shared before Redis went: %s", body)
		// The resync (every 5 s) fails and is counted.
		Eventually(func() float64 {
			return scrape(a.adminURL).sum("tenantgate_shared_store_errors_total", map[string]string{"op": "nonce"})
		}, 15*time.Second, 250*time.Millisecond).Should(BeNumerically(">=", 1))
	})
})

var _ = Describe("DPoP server nonces with the shared store unreachable from the start", func() {
	It("serves with a secret of its own, counting the error", func() {
		g := startRevocationGate("dpop-nonce-closed", sharedStoreLines(redistest.ClosedURL(GinkgoT()), "p:")+
			"\n\t\tdpop_public_url https://api.example.com\n\t\tdpop_nonce")
		c := newNonceCaller()
		nonce := expectNonceChallenge(c.send(g, ""))
		status, _, body := c.send(g, nonce)
		Expect(status).To(Equal(http.StatusOK), string(body))
		Expect(scrape(g.adminURL).sum("tenantgate_shared_store_errors_total", map[string]string{"op": "nonce"})).To(BeNumerically(">=", 1))
	})
})
