package integration_test

// The security suite (issue #6): one DescribeTable per attack family, each
// Entry named after the attack. Every entry checks two things: the status
// (and reason) the client got, and what the upstream did or did not
// receive. Families live in security_*_test.go; this file holds the shared
// fixtures: a dedicated gate ("secgate") in front of a counting echo
// upstream, and an attacker's key set served over loopback that must never
// be fetched.
//
// SECURITY.md names these tables and entries as the proof of each
// guarantee; rename one there when you rename it here.

import (
	"bufio"
	"crypto/ed25519"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/tenantgate/tenantgate/module/assertion"
)

// countingUpstream is an echo upstream that keeps every request it got, so
// an entry can assert that an attack did not reach it at all.
type countingUpstream struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []echoed
}

func newCountingUpstream() *countingUpstream {
	u := &countingUpstream{}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Trailers arrive after the body; many frameworks and proxies fold
		// them into the headers, so they are recorded as headers here.
		_, _ = io.Copy(io.Discard, r.Body)
		h := r.Header.Clone()
		for k, vs := range r.Trailer {
			h[k] = append(h[k], vs...)
		}
		if r.URL.RawQuery != "" {
			h[upstreamQueryKey] = []string{r.URL.RawQuery}
		}
		u.mu.Lock()
		u.got = append(u.got, echoed{Method: r.Method, Path: r.URL.Path, RawPath: r.URL.EscapedPath(), Header: h})
		u.mu.Unlock()
		echoHandler(w, r)
	}))
	return u
}

// mark returns a position; since(mark) returns what arrived after it.
func (u *countingUpstream) mark() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.got)
}

func (u *countingUpstream) since(n int) []echoed {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]echoed(nil), u.got[n:]...)
}

// upstreamQueryKey is where the counting upstream records the query string
// it received (echoed has no field for it).
const upstreamQueryKey = "Sec-Echo-Raw-Query"

// securityFixture is what every family uses.
type securityFixture struct {
	gate *caddyProc
	url  string // the dedicated gate
	// a second site of the same Caddy that also takes the token from the
	// tg_token cookie or the access_token query parameter
	cookieURL string
	upstream  *countingUpstream
	// attacker's own keys, and a loopback server that serves them (as a
	// JWKS, or as anything else at any path) and counts every fetch.
	attackerRSA, attackerEC signingKey
	attackerServer          *jwksServer
}

var sec *securityFixture

// secRules are the rules of the dedicated gate: the echo site's rules plus
// the shipped rules from caddyfile/Caddyfile (their paths do not overlap),
// all in front of the counting upstream.
func secRules() string {
	return `
		rule GET      /public/**                 public
		rule *        /tenants/{tenant}/**       tenant_param tenant
		rule GET,POST /admin/**                  roles admin
		rule *        /echo/**                   authenticated
` + shippedRules()
}

func startSecurityFixture() *securityFixture {
	f := &securityFixture{upstream: newCountingUpstream()}
	f.attackerRSA = newKey(jwa.RS256, "rsa-1") // the real key's kid
	f.attackerEC = newKey(jwa.ES256, "ec-1")
	f.attackerServer = newJWKSServer(f.attackerRSA.public(), f.attackerEC.public())
	addr := freeAddr()
	f.url = "http://" + addr
	rules := secRules()
	Expect(rules).NotTo(ContainSubstring("%"), "the sites string goes through Sprintf")
	upstream := strings.TrimPrefix(f.upstream.srv.URL, "http://")
	sites := "http://" + addr + " {\n\ttenant_gate {\n%[1]s\n" + rules + "\t}\n\treverse_proxy " + upstream + "\n}\n"
	cookieAddr := freeAddr()
	f.cookieURL = "http://" + cookieAddr
	sites += "http://" + cookieAddr + ` {
	tenant_gate {
%[1]s
		token_cookie tg_token
		token_query access_token
		rule GET /public/** public
		rule *   /echo/**   authenticated
	}
	reverse_proxy ` + upstream + "\n}\n"
	f.gate = env.startCaddy("security", sites, f.url+"/healthz")
	return f
}

func (f *securityFixture) stop() {
	if f == nil {
		return
	}
	if f.gate != nil {
		f.gate.stop()
	}
	f.upstream.srv.Close()
	f.attackerServer.srv.Close()
}

// allRoles is every role the shipped rules know.
var allRoles = []string{"ensemble:read", "ensemble:write", "hedging:read", "hedging:trade", "hedging:admin"}

// rawResponse is a response read off a raw connection.
type rawResponse struct {
	status int
	header http.Header
	body   string
}

// rawHTTP writes req byte for byte on a new connection to base and reads
// one response. Unlike rawRequest it does not wait for the server to close,
// so a request that keeps the connection alive does not stall the suite.
func rawHTTP(base, req string) rawResponse {
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(base, "http://"), 5*time.Second)
	Expect(err).NotTo(HaveOccurred())
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	_, err = io.WriteString(conn, req)
	Expect(err).NotTo(HaveOccurred())
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	Expect(err).NotTo(HaveOccurred(), "reading the response to %q", truncateForLog(req))
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return rawResponse{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

func truncateForLog(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}

// expectNotReached asserts that the upstream received nothing since mark.
func expectNotReached(mark int) {
	Expect(sec.upstream.since(mark)).To(BeEmpty(), "the attack must not reach the upstream")
}

// expectReachedAs asserts that exactly one request reached the upstream
// since mark, carrying exactly one X-Tenant-ID (tenant) and one assertion
// that the gate signed for that tenant, method and path. It returns what
// the upstream got.
func expectReachedAs(mark int, tenant, method, path string) echoed {
	return expectReachedAsNow(mark, tenant, method, path, time.Now())
}

// expectReachedAsAt is expectReachedAs for a token whose exp is tokExp. A
// token accepted inside the leeway after its exp gets an assertion that
// expires with it (never later), so it is born expired and no backend clock
// accepts it: then its signature and claims are checked directly.
func expectReachedAsAt(mark int, tenant, method, path string, tokExp time.Time) echoed {
	if !tokExp.Before(time.Now()) {
		return expectReachedAs(mark, tenant, method, path)
	}
	got := sec.upstream.since(mark)
	Expect(got).To(HaveLen(1), "exactly one request reaches the upstream")
	g := got[0]
	raw := g.Header.Get("X-Tenant-Assertion")
	Expect(g.Header.Values("X-Tenant-Assertion")).To(HaveLen(1))
	_, err := jws.Verify([]byte(raw), jws.WithKey(jwa.EdDSA, gatePublicKey()))
	Expect(err).NotTo(HaveOccurred(), "the gate signed the assertion")
	c := jwsPayload(raw)
	Expect(c["tid"]).To(Equal(tenant))
	Expect(c["htm"]).To(Equal(method))
	Expect(c["htu"]).To(Equal(path))
	Expect(c["exp"]).To(BeNumerically("==", tokExp.Unix()), "the assertion expires with the token")
	Expect(g.Header.Values("X-Tenant-Id")).To(Equal([]string{tenant}))
	return g
}

func expectReachedAsNow(mark int, tenant, method, path string, at time.Time) echoed {
	got := sec.upstream.since(mark)
	Expect(got).To(HaveLen(1), "exactly one request reaches the upstream")
	g := got[0]
	Expect(g.Method).To(Equal(method))
	Expect(g.Path).To(Equal(path))
	Expect(g.Header.Values("X-Tenant-Id")).To(Equal([]string{tenant}))
	Expect(g.Header.Values("X-Tenant-Assertion")).To(HaveLen(1))
	v, err := assertion.NewEd25519Verifier(gatePublicKey(), assertion.DefaultAudience)
	Expect(err).NotTo(HaveOccurred())
	c, err := v.Verify(g.Header.Get("X-Tenant-Assertion"), method, path, at)
	Expect(err).NotTo(HaveOccurred(), "the upstream gets an assertion the gate signed for this request")
	Expect(c.Tenant).To(Equal(tenant))
	Expect(g.Header.Get("Authorization")).To(BeEmpty(), "the end user's token is not forwarded")
	return g
}

// expectReachedPublic asserts one request reached the upstream with no
// identity header at all.
func expectReachedPublic(mark int, path string) echoed {
	got := sec.upstream.since(mark)
	Expect(got).To(HaveLen(1), "exactly one request reaches the upstream")
	g := got[0]
	Expect(g.Path).To(Equal(path))
	for name := range g.Header {
		Expect(identityHeaderLike(name)).To(BeFalse(), "public route got identity header %q", name)
	}
	return g
}

// identityHeaderLike folds case, '_' and '.' the way some upstream
// frameworks do, and reports whether name could be read as an identity header.
func identityHeaderLike(name string) bool {
	n := strings.NewReplacer("_", "-", ".", "-").Replace(strings.ToLower(name))
	switch n {
	case "x-tenant-id", "x-user-id", "x-user-roles", "x-tenant-assertion":
		return true
	}
	return false
}

func gatePublicKey() ed25519.PublicKey {
	return env.assertionPriv.Public().(ed25519.PublicKey)
}

// secAuditRecord waits for the dedicated gate's audit record of requestID
// and returns it; every request the gate saw has exactly one.
func secAuditRecord(requestID string) map[string]any {
	var found []map[string]any
	Eventually(func() int {
		found = nil
		data, err := os.ReadFile(sec.gate.auditPath)
		if err != nil {
			return 0
		}
		for _, line := range strings.Split(string(data), "\n") {
			if !strings.Contains(line, requestID) {
				continue
			}
			var rec map[string]any
			if json.Unmarshal([]byte(line), &rec) == nil && rec["request_id"] == requestID {
				found = append(found, rec)
			}
		}
		return len(found)
	}, 3*time.Second, 20*time.Millisecond).Should(Equal(1), "one audit record for request %s", requestID)
	return found[0]
}

// reasonOf reads the problem+json reason of a body, "" when there is none.
func reasonOf(body string) string {
	var p struct {
		Reason string `json:"reason"`
	}
	_ = json.Unmarshal([]byte(body), &p)
	return p.Reason
}

var _ = Describe("security", Ordered, ContinueOnFailure, func() {
	BeforeAll(func() {
		sec = startSecurityFixture()
		DeferCleanup(func() {
			sec.stop()
			sec = nil
		})
	})

	algorithmAndKeyAttacks()
	claimAttacks()
	encodingAttacks()
	headerSpoofing()
	credentialForwarding()
	pathAttacks()
	backendBypass()
	tenantIsolation()
	keyStorms()
})
