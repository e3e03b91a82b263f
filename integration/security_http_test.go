package integration_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"net/http"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/tenantgate/tenantgate/module/assertion"
)

// spoofMarker is the value every spoofed identity header carries; it must
// appear nowhere in what the upstream receives.
const spoofMarker = "globex"

// httpCase is one request written byte for byte on a raw connection to the
// dedicated gate (Go's client would canonicalise header names and clean
// paths).
type httpCase struct {
	method string   // default GET
	target string   // request-target exactly as sent
	token  bool     // send a valid acme token (roles: allRoles, not admin)
	lines  []string // extra header lines as sent; $FORGED is a forged assertion
	// trailers, when set, makes the body chunked with these trailer lines
	trailers []string
	status   int
	reason   string // problem+json reason; "" when the server (not the gate) refuses
	// upstreamPath is the decoded path the upstream must receive; "" means
	// the request must not reach it.
	upstreamPath string
}

// forgedAssertion is an assertion for tenant globex signed with a key that
// is not the gate's.
func forgedAssertion(method, path string) string {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	Expect(err).NotTo(HaveOccurred())
	s, err := assertion.NewEd25519Signer(priv)
	Expect(err).NotTo(HaveOccurred())
	tok, err := s.Sign(assertion.Claims{Issuer: assertion.DefaultIssuer, Audience: assertion.DefaultAudience,
		Tenant: spoofMarker, Subject: "root", Roles: []string{"hedging:admin"}, Method: method, Path: path, ID: "forged"})
	Expect(err).NotTo(HaveOccurred())
	return tok
}

func runHTTPCase(tc httpCase) {
	method := tc.method
	if method == "" {
		method = http.MethodGet
	}
	var b strings.Builder
	// Host must name the dedicated gate's site, or Caddy answers an empty 200.
	host := strings.TrimPrefix(sec.url, "http://")
	b.WriteString(method + " " + strings.ReplaceAll(tc.target, "$HOST", host) + " HTTP/1.1\r\nHost: " + host + "\r\n")
	if tc.token {
		b.WriteString("Authorization: Bearer " + env.token("acme", allRoles...) + "\r\n")
	}
	for _, l := range tc.lines {
		b.WriteString(strings.ReplaceAll(l, "$FORGED", forgedAssertion(method, tc.upstreamPath)) + "\r\n")
	}
	if tc.trailers == nil {
		b.WriteString("Content-Length: 0\r\n\r\n")
	} else {
		// A chunked body whose trailer section carries the spoof.
		b.WriteString("Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n")
		for _, l := range tc.trailers {
			b.WriteString(strings.ReplaceAll(l, "$FORGED", forgedAssertion(method, tc.upstreamPath)) + "\r\n")
		}
		b.WriteString("\r\n")
	}

	mark := sec.upstream.mark()
	resp := rawHTTP(sec.url, b.String())
	Expect(resp.status).To(Equal(tc.status), resp.body)
	if tc.reason != "" {
		Expect(reasonOf(resp.body)).To(Equal(tc.reason), resp.body)
	}
	if tc.upstreamPath == "" {
		expectNotReached(mark)
		return
	}
	var got echoed
	if tc.token {
		got = expectReachedAs(mark, "acme", method, tc.upstreamPath)
		Expect(got.Header.Values("X-User-Id")).To(Equal([]string{"user-acme"}))
		Expect(got.Header.Values("X-User-Roles")).To(Equal([]string{strings.Join(allRoles, ",")}))
	} else {
		got = expectReachedPublic(mark, tc.upstreamPath)
	}
	for name, vs := range got.Header {
		for _, v := range vs {
			Expect(strings.ToLower(v)).NotTo(ContainSubstring(spoofMarker), "header %s reached the upstream with a spoofed value", name)
		}
	}
}

func headerSpoofing() {
	protected := func(lines ...string) httpCase {
		return httpCase{target: "/echo/x", token: true, lines: lines, status: http.StatusOK, upstreamPath: "/echo/x"}
	}
	public := func(lines ...string) httpCase {
		return httpCase{target: "/public/x", lines: lines, status: http.StatusOK, upstreamPath: "/public/x"}
	}
	DescribeTable("header spoofing", runHTTPCase,
		Entry("protected: X-Tenant-ID duplicated", protected("X-Tenant-ID: globex", "X-Tenant-ID: globex")),
		Entry("protected: X-Tenant-ID comma-joined", protected("X-Tenant-ID: globex, acme")),
		Entry("protected: x-tenant-id lower-case", protected("x-tenant-id: globex")),
		Entry("protected: X-TENANT-ID upper-case", protected("X-TENANT-ID: globex")),
		Entry("protected: X_Tenant_ID", protected("X_Tenant_ID: globex")),
		Entry("protected: X.Tenant.ID", protected("X.Tenant.ID: globex")),
		Entry("protected: x_tenant_id and X.User.Roles together", protected("x_tenant_id: globex", "X.User.Roles: globex")),
		Entry("protected: X-User-ID and X-User-Roles", protected("X-User-ID: globex", "X-User-Roles: globex")),
		Entry("protected: forged X-Tenant-Assertion", protected("X-Tenant-Assertion: $FORGED")),
		Entry("protected: forged X_Tenant_Assertion", protected("X_Tenant_Assertion: $FORGED")),
		Entry("protected: Connection: X-Tenant-ID", protected("Connection: X-Tenant-ID")),
		Entry("protected: Connection: keep-alive, X-Tenant-Assertion, X-User-ID", protected("Connection: keep-alive, X-Tenant-Assertion, X-User-ID")),
		Entry("protected: Connection: x_tenant_id", protected("Connection: x_tenant_id", "X-Tenant-ID: globex")),

		Entry("protected: X-Tenant-ID in an undeclared chunked trailer", httpCase{method: http.MethodPost, target: "/echo/x", token: true,
			trailers: []string{"X-Tenant-ID: globex", "X-Tenant-Assertion: $FORGED"}, status: http.StatusOK, upstreamPath: "/echo/x"}),
		Entry("protected: X-Tenant-ID in a declared chunked trailer", httpCase{method: http.MethodPost, target: "/echo/x", token: true,
			lines:    []string{"Trailer: X-Tenant-ID, X-Tenant-Assertion, X-User-Roles"},
			trailers: []string{"X-Tenant-ID: globex", "X-Tenant-Assertion: $FORGED", "X-User-Roles: globex"}, status: http.StatusOK, upstreamPath: "/echo/x"}),
		Entry("public: X-Tenant-ID in a declared chunked trailer", httpCase{method: http.MethodGet, target: "/public/x",
			lines:    []string{"Trailer: X-Tenant-ID, X-Tenant-Assertion"},
			trailers: []string{"X-Tenant-ID: globex", "X-Tenant-Assertion: $FORGED"}, status: http.StatusOK, upstreamPath: "/public/x"}),

		Entry("protected: X-Tenant-ID with an obs-fold continuation line", protected("X-Tenant-ID: acme", " globex")),

		Entry("public: X-Tenant-ID duplicated", public("X-Tenant-ID: globex", "X-Tenant-ID: globex")),
		Entry("public: X-Tenant-ID comma-joined", public("X-Tenant-ID: globex, acme")),
		Entry("public: x-tenant-id lower-case", public("x-tenant-id: globex")),
		Entry("public: X_Tenant_ID", public("X_Tenant_ID: globex")),
		Entry("public: X.Tenant.ID", public("X.Tenant.ID: globex")),
		Entry("public: forged X-Tenant-Assertion", public("X-Tenant-Assertion: $FORGED")),
		Entry("public: X-User-Roles", public("X-User-Roles: globex")),
		Entry("public: Connection: X-Tenant-ID", public("Connection: X-Tenant-ID", "X-Tenant-ID: globex")),

		Entry("X-Forwarded-Uri / X-Original-URL to a public path on a protected one, no token", httpCase{
			target: "/echo/x", lines: []string{"X-Forwarded-Uri: /public/x", "X-Original-URL: /public/x", "X-Rewrite-URL: /public/x"},
			status: http.StatusUnauthorized, reason: "missing_token"}),
		Entry("X-Original-URL to an allowed path on a role-gated one", httpCase{
			target: "/admin/x", token: true, lines: []string{"X-Original-URL: /echo/x", "X-Forwarded-Uri: /echo/x"},
			status: http.StatusForbidden, reason: "missing_role"}),
		Entry("X-Original-URL naming the caller's tenant on another tenant's path", httpCase{
			target: "/tenants/globex/x", token: true, lines: []string{"X-Original-URL: /tenants/acme/x", "X-Forwarded-Uri: /tenants/acme/x"},
			status: http.StatusForbidden, reason: "tenant_mismatch"}),
		Entry("X-Forwarded-Prefix and X-Forwarded-Path on an unruled path", httpCase{
			target: "/internal/x", token: true, lines: []string{"X-Forwarded-Prefix: /echo", "X-Forwarded-Path: /echo/x"},
			status: http.StatusForbidden, reason: "no_route"}),
		Entry("X-HTTP-Method-Override: GET on a POST no rule allows", httpCase{
			method: http.MethodPost, target: "/public/x", lines: []string{"X-HTTP-Method-Override: GET", "X-Method-Override: GET"},
			status: http.StatusForbidden, reason: "no_route"}),
	)
}

func pathAttacks() {
	bad := func(target string) httpCase {
		return httpCase{target: target, token: true, status: http.StatusBadRequest, reason: "bad_path"}
	}
	// The server itself refuses some targets before any handler runs; a
	// plain 400 from it is as good as the gate's.
	serverBad := func(target string) httpCase {
		return httpCase{target: target, token: true, status: http.StatusBadRequest}
	}
	noRoute := func(target string) httpCase {
		return httpCase{target: target, token: true, status: http.StatusForbidden, reason: "no_route"}
	}
	reaches := func(target, path string) httpCase {
		return httpCase{target: target, token: true, status: http.StatusOK, upstreamPath: path}
	}
	DescribeTable("path attacks", runHTTPCase,
		Entry("control: a canonical path reaches the upstream unchanged", reaches("/echo/x", "/echo/x")),
		Entry("dot-dot segment", bad("/echo/../admin/x")),
		Entry("dot segment", bad("/echo/./x")),
		Entry("trailing dot-dot", bad("/echo/x/..")),
		Entry("dot-dot into another tenant", bad("/tenants/acme/../globex/x")),
		Entry("%2e%2e", bad("/echo/%2e%2e/admin/x")),
		Entry("%2E%2E", bad("/echo/%2E%2E/admin/x")),
		Entry(".%2e", bad("/echo/.%2e/admin/x")),
		Entry("%2e alone", bad("/echo/%2e/x")),
		Entry("%2e inside a name", bad("/echo/x%2ejson")),
		Entry("overlong UTF-8 dots %c0%ae", bad("/echo/%c0%ae%c0%ae/admin/x")),
		Entry("double slash inside", bad("/echo//x")),
		Entry("double slash at the start", bad("//echo/x")),
		Entry("double slash at the end", bad("/echo/x//")),
		Entry("%2F", bad("/echo/a%2Fb")),
		Entry("%2f lower-case", bad("/echo/a%2fb")),
		Entry("..%2F", bad("/echo/..%2Fadmin/x")),
		Entry("%5C", bad("/echo/a%5Cb")),
		Entry("raw backslash", bad("/echo/a\\b")),
		Entry("..\\ traversal", bad("/echo/..\\admin\\x")),
		Entry("%00", bad("/echo/a%00")),
		Entry("%00 before an extension", bad("/echo/a%00.json")),
		Entry("encoded control character %09", bad("/echo/a%09b")),
		Entry("; parameter", bad("/echo/x;jsessionid=1")),
		Entry("; on the first segment", bad("/echo;/x")),
		Entry("; hiding a dot-dot", bad("/echo/..;/admin/x")),
		Entry("%3B", bad("/echo/x%3Badmin")),
		Entry("non-UTF-8 escape %ff", bad("/echo/%ff")),
		Entry("raw non-UTF-8 byte", bad("/echo/\xff")),
		Entry("absolute-form target with dot-dot", bad("http://$HOST/echo/../admin/x")),
		Entry("invalid escape %zz", serverBad("/echo/%zz")),
		Entry("truncated escape", serverBad("/echo/x%2")),

		Entry("overlong UTF-8 slash %c0%af", bad("/public/..%c0%af..%c0%afadmin/x")),
		Entry("tenant segment with an encoded slash", bad("/tenants/acme%2Fglobex/x")),
		Entry("encoded letters in the tenant segment match the token's tenant", reaches("/tenants/%61cme/x", "/tenants/acme/x")),
		Entry("encoded letter in the first segment matches the same rule", reaches("/%65cho/x", "/echo/x")),
		Entry("double-encoded dots stay literal text", reaches("/echo/%252e%252e/admin", "/echo/%2e%2e/admin")),
		Entry("encoded letters match the same rule", reaches("/api/v1/ensemble/%61gent-rankings", "/api/v1/ensemble/agent-rankings")),
		Entry("control: the shipped rule's exact path", reaches("/api/v1/ensemble/", "/api/v1/ensemble/")),
		Entry("/API/V1 upper-case", noRoute("/API/V1/whoami")),
		Entry("/Api/v1 mixed case", noRoute("/Api/v1/ensemble/")),
		Entry("mixed-case segment /api/v1/Hedging", noRoute("/api/v1/Hedging/analysis")),
		Entry("trailing slash added", noRoute("/api/v1/whoami/")),
		Entry("trailing slash added to a hedging route", noRoute("/api/v1/hedging/analysis/")),
		Entry("trailing slash removed", noRoute("/api/v1/ensemble")),
		Entry("lower-case method", httpCase{method: "get", target: "/api/v1/whoami", token: true,
			status: http.StatusForbidden, reason: "no_route"}),
		Entry("tenant in the path in another case", httpCase{target: "/tenants/ACME/x", token: true,
			status: http.StatusForbidden, reason: "tenant_mismatch"}),
	)
}

// credentialCase is a request to the cookie/query site of the dedicated
// gate; the end user's token must never travel on to the upstream, in any
// of the places the gate accepts it from.
type credentialCase struct {
	path    string                               // with the query, if any; $TOKEN is the token
	headers func(tok string) map[string][]string // $TOKEN is replaced too
	status  int
	// kept is what else the upstream must still receive (another cookie or
	// query parameter), "" for nothing to check
	kept string
}

func runCredentialCase(tc credentialCase) {
	tok := env.token("acme")
	var headers map[string][]string
	if tc.headers != nil {
		headers = tc.headers(tok)
	}
	mark := sec.upstream.mark()
	status, _, body := do(http.MethodGet, sec.cookieURL+strings.ReplaceAll(tc.path, "$TOKEN", tok), "", headers, "")
	Expect(status).To(Equal(tc.status), string(body))
	got := sec.upstream.since(mark)
	Expect(got).To(HaveLen(1))
	all := ""
	for name, vs := range got[0].Header {
		all += name + ": " + strings.Join(vs, ", ") + "\n"
	}
	sig := tok[strings.LastIndexByte(tok, '.')+1:]
	Expect(all).NotTo(ContainSubstring(sig), "the end user's token reached the upstream")
	if tc.kept != "" {
		Expect(all).To(ContainSubstring(tc.kept))
	}
}

func credentialForwarding() {
	cookie := func(v string) func(string) map[string][]string {
		return func(tok string) map[string][]string {
			return map[string][]string{"Cookie": {strings.ReplaceAll(v, "$TOKEN", tok)}}
		}
	}
	DescribeTable("credential forwarding", runCredentialCase,
		Entry("bearer header on a protected route", credentialCase{path: "/echo/x", status: http.StatusOK,
			headers: func(tok string) map[string][]string { return map[string][]string{"Authorization": {"Bearer " + tok}} }}),
		Entry("configured cookie on a protected route", credentialCase{path: "/echo/x", status: http.StatusOK,
			headers: cookie("theme=dark; tg_token=$TOKEN; lang=en"), kept: "theme=dark"}),
		Entry("configured cookie sent twice", credentialCase{path: "/echo/x", status: http.StatusOK,
			headers: cookie("tg_token=$TOKEN; tg_token=$TOKEN")}),
		Entry("configured cookie next to a bearer header, which wins", credentialCase{path: "/echo/x", status: http.StatusOK,
			headers: func(tok string) map[string][]string {
				return map[string][]string{"Authorization": {"Bearer " + tok}, "Cookie": {"tg_token=" + tok}}
			}}),
		Entry("configured query parameter on a protected route", credentialCase{path: "/echo/x?page=2&access_token=$TOKEN",
			status: http.StatusOK, kept: "page=2"}),
		Entry("configured cookie on a public route", credentialCase{path: "/public/x", status: http.StatusOK,
			headers: cookie("tg_token=$TOKEN; theme=dark"), kept: "theme=dark"}),
		Entry("configured query parameter on a public route", credentialCase{path: "/public/x?access_token=$TOKEN&page=2",
			status: http.StatusOK, kept: "page=2"}),
		Entry("configured query parameter sent twice", credentialCase{path: "/echo/x?access_token=$TOKEN&access_token=$TOKEN",
			status: http.StatusOK}),
	)
}
