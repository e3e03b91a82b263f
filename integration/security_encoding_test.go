package integration_test

import (
	"net/http"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// validParts is a fresh valid acme token split in three; with a non-empty
// need it retries until the signature part contains one of those bytes.
func validParts(need string) (hdr, payload, sig string) {
	for i := 0; i < 100; i++ {
		p := strings.Split(env.token("acme"), ".")
		if need == "" || strings.ContainsAny(p[2], need) {
			return p[0], p[1], p[2]
		}
	}
	Fail("no signature with " + need + " in 100 tries")
	return
}

func padded(s string) string { return s + strings.Repeat("=", (4-len(s)%4)%4) }

func encodingCase(status int, reason string, tok func() string) tokenCase {
	return tokenCase{token: tok, status: status, reason: reason}
}

func encodingAttacks() {
	const u, m = http.StatusUnauthorized, "malformed_token"
	DescribeTable("encoding attacks", runTokenCase,
		Entry("control: the canonical compact form passes", tokenCase{
			token: func() string { return env.token("acme") }, status: http.StatusOK, tenant: "acme"}),

		Entry("base64 padding on the signature", encodingCase(u, m, func() string {
			h, p, s := validParts("")
			return h + "." + p + "." + padded(s)
		})),
		Entry("base64 padding on every part", encodingCase(u, m, func() string {
			h, p, s := validParts("")
			return padded(h) + "." + padded(p) + "." + padded(s)
		})),
		Entry("standard alphabet (+ and /) in the signature", encodingCase(u, m, func() string {
			h, p, s := validParts("-_")
			return h + "." + p + "." + strings.NewReplacer("-", "+", "_", "/").Replace(s)
		})),
		Entry("non-zero unused bits in the last signature character", encodingCase(u, m, func() string {
			h, p, s := validParts("")
			Expect(len(s) % 4).To(Equal(2)) // a 256-byte RSA signature
			const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
			last := strings.IndexByte(alphabet, s[len(s)-1])
			return h + "." + p + "." + s[:len(s)-1] + string(alphabet[last|1])
		})),
		Entry("a space inside the signature", encodingCase(u, m, func() string {
			h, p, s := validParts("")
			return h + "." + p + "." + s[:10] + " " + s[10:]
		})),
		Entry("a tab inside the payload", encodingCase(u, m, func() string {
			h, p, s := validParts("")
			return h + "." + p[:8] + "\t" + p[8:] + "." + s
		})),
		Entry("a space after a dot", encodingCase(u, m, func() string {
			h, p, s := validParts("")
			return h + ". " + p + "." + s
		})),

		Entry("2 segments (signature dropped)", encodingCase(u, m, func() string {
			h, p, _ := validParts("")
			return h + "." + p
		})),
		Entry("4 segments (junk after the signature)", encodingCase(u, m, func() string {
			return env.token("acme") + ".e30"
		})),
		Entry("3 empty segments", encodingCase(u, m, func() string { return ".." })),
		Entry("JWS JSON serialization, flattened", encodingCase(u, m, func() string {
			h, p, s := validParts("")
			return mustJSON(map[string]string{"protected": h, "payload": p, "signature": s})
		})),
		Entry("JWS JSON serialization, general", encodingCase(u, m, func() string {
			h, p, s := validParts("")
			return mustJSON(map[string]any{"payload": p, "signatures": []map[string]string{{"protected": h, "signature": s}}})
		})),
		Entry("JWE (5 segments) with PBES2 and p2c = 2^31-1", encodingCase(u, m, func() string {
			hdr := mustJSON(map[string]any{"alg": "PBES2-HS512+A256KW", "enc": "A256GCM", "p2c": 2147483647, "p2s": "c2FsdHNhbHQ"})
			return b64url([]byte(hdr)) + ".AAAA.AAAAAAAAAAAAAAAA.AAAA.AAAAAAAAAAAAAAAAAAAAAA"
		})),
		Entry("JWE header with enc and p2c in a 3-segment token", encodingCase(u, m, func() string {
			hdr := mustJSON(map[string]any{"alg": "PBES2-HS256+A128KW", "enc": "A128GCM", "p2c": 2147483647})
			return b64url([]byte(hdr)) + "." + b64url([]byte(acmeClaims())) + ".AAAA"
		})),
		Entry("PBES2 alg with a huge p2c and no enc", encodingCase(u, "bad_algorithm", func() string {
			hdr := mustJSON(map[string]any{"alg": "PBES2-HS256+A128KW", "p2c": 2147483647, "kid": "rsa-1"})
			return b64url([]byte(hdr)) + "." + b64url([]byte(acmeClaims())) + ".AAAA"
		})),
		// Caddy's HTTP server refuses the header block before the gate runs.
		Entry("64 kB token", encodingCase(http.StatusRequestHeaderFieldsTooLarge, "", func() string {
			c := env.baseClaims("acme")
			c["pad"] = strings.Repeat("x", 64<<10)
			return sign(env.rsaKey, c, nil)
		})),
		Entry("8 kB + 1 token (one byte over the cap)", encodingCase(u, m, func() string {
			c := env.baseClaims("acme")
			c["pad"] = ""
			base := len(sign(env.rsaKey, c, nil))
			// base64 grows 4 characters per 3 bytes: aim just past 8192.
			c["pad"] = strings.Repeat("x", (8192-base)*3/4+3)
			tok := sign(env.rsaKey, c, nil)
			Expect(len(tok)).To(BeNumerically(">", 8192))
			Expect(len(tok)).To(BeNumerically("<=", 8196))
			return tok
		})),
		Entry("thousands of dots", encodingCase(u, m, func() string { return strings.Repeat(".", 5000) })),
		Entry("thousands of dots around a valid token", encodingCase(u, m, func() string {
			return strings.Repeat(".", 2000) + env.token("acme") + strings.Repeat(".", 2000)
		})),
		Entry("deeply nested JSON in the header", encodingCase(u, m, func() string {
			hdr := `{"alg":"RS256","kid":"rsa-1","x":` + strings.Repeat("[", 500) + strings.Repeat("]", 500) + `}`
			return rs256(env.rsaKey, hdr, acmeClaims())
		})),
		Entry("header that is not a JSON object", encodingCase(u, m, func() string {
			return rs256(env.rsaKey, `["RS256"]`, acmeClaims())
		})),
		Entry("payload with invalid UTF-8", encodingCase(u, m, func() string {
			return rs256(env.rsaKey, hdrJSON("RS256", "rsa-1", nil), strings.TrimSuffix(acmeClaims(), "}")+`,"x":"`+"\xff"+`"}`)
		})),

		Entry("two Authorization headers (valid token, then another)", tokenCase{
			token: func() string { return env.token("acme") }, status: u, reason: m,
			headers: func() map[string][]string {
				return map[string][]string{"Authorization": {"Bearer " + env.token("globex")}}
			}}),
		Entry("token in a cookie, which is not configured", tokenCase{
			token: func() string { return "" }, status: u, reason: "missing_token",
			headers: func() map[string][]string {
				return map[string][]string{"Cookie": {"access_token=" + env.token("acme")}}
			}}),
		Entry("token in the query string, which is not configured", tokenCase{
			token: func() string { return "" }, status: u, reason: "missing_token", query: func() string { return "?access_token=" + env.token("acme") }}),
		Entry("Basic scheme instead of Bearer", tokenCase{
			token: func() string { return "" }, status: u, reason: "missing_token",
			headers: func() map[string][]string {
				return map[string][]string{"Authorization": {"Basic YWNtZTphY21l"}}
			}}),
	)
}
