package integration_test

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
)

// withClaims is a token of the issuer's real RSA key whose acme claims were
// changed by mutate (nil values delete the claim).
func withClaims(mutate func(c claims)) func() string {
	return func() string {
		c := env.baseClaims("acme")
		mutate(c)
		for k, v := range c {
			if v == nil {
				delete(c, k)
			}
		}
		return sign(env.rsaKey, c, nil)
	}
}

// set returns a mutation that sets claim name to v.
func set(name string, v any) func(c claims) {
	return func(c claims) { c[name] = v }
}

// at returns a mutation that sets a time claim to now+offset, with iat and
// nbf moved well into the past so only the claim under test is near its
// boundary.
func at(name string, offset time.Duration) func(c claims) {
	return func(c claims) {
		now := time.Now()
		c["iat"], c["nbf"] = now.Add(-5*time.Minute).Unix(), now.Add(-5*time.Minute).Unix()
		c[name] = now.Add(offset).Unix()
	}
}

// rawPayload is a token of the real RSA key over a payload written by hand
// (for duplicate members, which json.Marshal cannot produce). %[1]d is
// replaced by now+10min, %[2]d by now.
func rawPayload(format string) func() string {
	return func() string {
		now := time.Now()
		return rs256(env.rsaKey, hdrJSON("RS256", "rsa-1", nil), fmt.Sprintf(format, now.Add(10*time.Minute).Unix(), now.Unix()))
	}
}

// rawHeader is a token of the real RSA key with a hand-written header.
func rawHeader(hdr string) func() string {
	return func() string { return rs256(env.rsaKey, hdr, acmeClaims()) }
}

const validPayloadTail = `"iss":"https://idp.test","aud":"alphapulse-api","sub":"user-acme","exp":%[1]d,"iat":%[2]d`

func claimAttacks() {
	const u, f = http.StatusUnauthorized, http.StatusForbidden
	ok := func(tenant string) tokenCase { return tokenCase{status: http.StatusOK, tenant: tenant} }
	with := func(tc tokenCase, tok func() string) tokenCase { tc.token = tok; return tc }
	deny := func(status int, reason string) tokenCase { return tokenCase{status: status, reason: reason} }

	DescribeTable("claim attacks", runTokenCase,
		Entry("exp 29 s ago, inside the 30 s leeway", with(ok("acme"), withClaims(at("exp", -29*time.Second)))),
		Entry("exp 32 s ago, past the 30 s leeway", with(deny(u, "token_expired"), withClaims(at("exp", -32*time.Second)))),
		Entry("exp zero", with(deny(u, "token_expired"), withClaims(set("exp", 0)))),
		Entry("nbf 29 s ahead, inside the leeway", with(ok("acme"), withClaims(at("nbf", 29*time.Second)))),
		Entry("nbf 32 s ahead, past the leeway", with(deny(u, "token_not_yet_valid"), withClaims(at("nbf", 32*time.Second)))),
		Entry("iat 29 s ahead, inside the leeway", with(ok("acme"), withClaims(at("iat", 29*time.Second)))),
		Entry("iat 32 s ahead, past the leeway", with(deny(u, "token_not_yet_valid"), withClaims(at("iat", 32*time.Second)))),
		Entry("exp as a string", with(deny(u, "missing_claim"), withClaims(func(c claims) { c["exp"] = fmt.Sprint(c["exp"]) }))),
		Entry("exp far in the future as a string", with(deny(u, "missing_claim"), withClaims(set("exp", "9999999999")))),
		Entry("exp negative", with(deny(u, "missing_claim"), withClaims(set("exp", -1)))),
		Entry("exp missing", with(deny(u, "missing_claim"), withClaims(set("exp", nil)))),
		Entry("nbf as a string", with(deny(u, "missing_claim"), withClaims(set("nbf", "0")))),

		Entry("iss with a trailing slash", with(deny(u, "unknown_issuer"), withClaims(set("iss", issuerMain+"/")))),
		Entry("iss in upper case", with(deny(u, "unknown_issuer"), withClaims(set("iss", strings.ToUpper(issuerMain))))),
		Entry("iss as http instead of https", with(deny(u, "unknown_issuer"), withClaims(set("iss", "http://idp.test")))),
		Entry("iss missing", with(deny(u, "unknown_issuer"), withClaims(set("iss", nil)))),
		Entry("iss of the HMAC issuer on an RS256 token", with(deny(u, "bad_algorithm"), withClaims(set("iss", issuerHMAC)))),

		Entry("aud as a string", with(ok("acme"), withClaims(set("aud", audience)))),
		Entry("aud as an array holding the audience", with(ok("acme"), withClaims(set("aud", []string{"other-api", audience})))),
		Entry("aud of another API", with(deny(u, "wrong_audience"), withClaims(set("aud", "other-api")))),
		Entry("aud in another case", with(deny(u, "wrong_audience"), withClaims(set("aud", strings.ToUpper(audience))))),
		Entry("aud empty string", with(deny(u, "wrong_audience"), withClaims(set("aud", "")))),
		Entry("aud empty array", with(deny(u, "wrong_audience"), withClaims(set("aud", []string{})))),
		Entry(`aud [""]`, with(deny(u, "wrong_audience"), withClaims(set("aud", []string{""})))),
		Entry("aud as a number", with(deny(u, "wrong_audience"), withClaims(set("aud", 1)))),
		Entry("aud missing", with(deny(u, "wrong_audience"), withClaims(set("aud", nil)))),

		Entry("duplicate alg in the header (RS256 then none)", with(deny(u, "malformed_token"),
			rawHeader(`{"alg":"RS256","kid":"rsa-1","alg":"none"}`))),
		Entry("duplicate kid in the header", with(deny(u, "malformed_token"),
			rawHeader(`{"alg":"RS256","kid":"attacker","kid":"rsa-1"}`))),
		Entry("duplicate tenant_id in the claims (acme then globex)", with(deny(u, "malformed_token"),
			rawPayload(`{`+validPayloadTail+`,"tenant_id":"acme","tenant_id":"globex"}`))),
		Entry("duplicate exp in the claims (past then future)", with(deny(u, "malformed_token"),
			rawPayload(`{"exp":1,`+validPayloadTail+`,"tenant_id":"acme"}`))),
		Entry("duplicate aud in the claims", with(deny(u, "malformed_token"),
			rawPayload(`{"aud":"other-api",`+validPayloadTail+`,"tenant_id":"acme"}`))),
		Entry("control: hand-written payload without duplicates passes", with(ok("acme"),
			rawPayload(`{`+validPayloadTail+`,"tenant_id":"acme"}`))),

		Entry("a role name holding a comma, which X-User-Roles would split into two", with(deny(u, "missing_claim"),
			withClaims(set("roles", []string{"ensemble:read,admin"})))),
		Entry("roles as an object", with(deny(u, "missing_claim"), withClaims(set("roles", map[string]any{"admin": true})))),

		Entry("tenant as an array", with(deny(f, "no_tenant"), withClaims(set("tenant_id", []string{"acme"})))),
		Entry("tenant as an object", with(deny(f, "no_tenant"), withClaims(set("tenant_id", map[string]any{"id": "acme"})))),
		Entry("tenant as a number", with(deny(f, "no_tenant"), withClaims(set("tenant_id", 42)))),
		Entry("tenant as a boolean", with(deny(f, "no_tenant"), withClaims(set("tenant_id", true)))),
		Entry("tenant empty", with(deny(f, "no_tenant"), withClaims(set("tenant_id", "")))),
		Entry("tenant null", with(deny(f, "no_tenant"), rawPayload(`{`+validPayloadTail+`,"tenant_id":null}`))),
		Entry("tenant missing", with(deny(f, "no_tenant"), withClaims(set("tenant_id", nil)))),
		Entry("tenant of 65 characters", with(deny(f, "no_tenant"), withClaims(set("tenant_id", strings.Repeat("a", 65))))),
		Entry("tenant of 64 characters (the limit) passes", with(ok(strings.Repeat("a", 64)), withClaims(set("tenant_id", strings.Repeat("a", 64))))),
		Entry("tenant with a slash", with(deny(f, "no_tenant"), withClaims(set("tenant_id", "acme/globex")))),
		Entry("tenant ..", with(deny(f, "no_tenant"), withClaims(set("tenant_id", "..")))),
		Entry("tenant with a comma", with(deny(f, "no_tenant"), withClaims(set("tenant_id", "acme,globex")))),
		Entry("tenant with a NUL", with(deny(f, "no_tenant"), withClaims(set("tenant_id", "acme\x00")))),
		Entry("tenant with a Cyrillic look-alike letter", with(deny(f, "no_tenant"), withClaims(set("tenant_id", "\u0430cme")))),
	)
}
