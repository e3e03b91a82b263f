package integration_test

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/tenantgate/tenantgate/module/ratelimit/redistest"
)

// The receivers (back-channel logout, SSF push) through the real binary,
// with logout tokens and SETs signed by the test IdP's real keys.

const (
	bclPath          = "/oidc/backchannel-logout"
	ssfPath          = "/ssf/events"
	logoutEvent      = "http://schemas.openid.net/event/backchannel-logout"
	sessionRevoked   = "https://schemas.openid.net/secevent/caep/event-type/session-revoked"
	credentialChange = "https://schemas.openid.net/secevent/caep/event-type/credential-change"
	receiverLines    = "backchannel_logout_path " + bclPath + "\n\t\tssf_receiver_path " + ssfPath
)

// logoutToken is a logout token of the main issuer for sub (and sid),
// claims changed by change, typed logout+jwt.
func logoutToken(key signingKey, sub, sid string, change func(claims)) string {
	now := time.Now()
	c := claims{"iss": issuerMain, "aud": audience, "iat": now.Unix(), "exp": now.Add(2 * time.Minute).Unix(),
		"jti": "lo-" + randomHex(8), "events": map[string]any{logoutEvent: map[string]any{}}}
	if sub != "" {
		c["sub"] = sub
	}
	if sid != "" {
		c["sid"] = sid
	}
	if change != nil {
		change(c)
	}
	return sign(key, c, map[string]any{"typ": "logout+jwt"})
}

// secEvent is a SET of the main issuer naming sub with one event.
func secEvent(key signingKey, sub, event string, change func(claims)) string {
	c := claims{"iss": issuerMain, "aud": audience, "iat": time.Now().Unix(), "jti": "set-" + randomHex(8),
		"sub_id": map[string]any{"format": "iss_sub", "iss": issuerMain, "sub": sub},
		"events": map[string]any{event: map[string]any{"event_timestamp": time.Now().Unix()}}}
	if change != nil {
		change(c)
	}
	return sign(key, c, map[string]any{"typ": "secevent+jwt"})
}

type receiverAnswer struct {
	status int
	header http.Header
	body   []byte
}

func (a receiverAnswer) json() map[string]any {
	var m map[string]any
	_ = json.Unmarshal(a.body, &m)
	return m
}

func postTo(u, contentType, body string) receiverAnswer {
	resp, err := http.Post(u, contentType, strings.NewReader(body))
	Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return receiverAnswer{resp.StatusCode, resp.Header, raw}
}

func postLogout(g revocationGate, tok string) receiverAnswer {
	return postTo(g.url+bclPath, "application/x-www-form-urlencoded", url.Values{"logout_token": {tok}}.Encode())
}

func postSET(g revocationGate, set string) receiverAnswer {
	return postTo(g.url+ssfPath, "application/secevent+jwt", set)
}

// expectLogoutRefused: 400, the OAuth error body, no-store.
func expectLogoutRefused(a receiverAnswer, words string) {
	Expect(a.status).To(Equal(http.StatusBadRequest), string(a.body))
	Expect(a.header.Get("Content-Type")).To(Equal("application/json"))
	Expect(a.header.Get("Cache-Control")).To(Equal("no-store"))
	Expect(a.json()["error"]).To(Equal("invalid_request"))
	Expect(a.json()["error_description"]).To(ContainSubstring(words))
}

// unsignedToken is c with alg none and an empty signature.
func unsignedToken(c claims) string {
	payload, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"logout+jwt"}`)) + "." + base64.RawURLEncoding.EncodeToString(payload) + "."
}

var _ = Describe("back-channel logout and SSF receivers, one gate", Ordered, func() {
	var g revocationGate
	var keyFile string
	BeforeAll(func() {
		key := make([]byte, 48)
		_, _ = rand.Read(key)
		keyFile = filepath.Join(GinkgoT().TempDir(), "chain.key")
		Expect(os.WriteFile(keyFile, []byte(base64.StdEncoding.EncodeToString(key)), 0o600)).To(Succeed())
		g = startRevocationGate("receivers", receiverLines+"\n\t\taudit_chain_key {file."+keyFile+"}")
	})

	It("revokes the subject of a valid logout token: 200, no-store, and the next request is 401 token_revoked", func() {
		tok := tokenWith("bcl-acme", func(c claims) { c["sub"] = "bcl-alice" })
		other := tokenWith("bcl-acme", func(c claims) { c["sub"] = "bcl-bob" })
		expectAllowed(g, tok)
		a := postLogout(g, logoutToken(env.rsaKey, "bcl-alice", "", nil))
		Expect(a.status).To(Equal(http.StatusOK), string(a.body))
		Expect(a.header.Get("Cache-Control")).To(Equal("no-store"))
		Expect(a.body).To(BeEmpty())
		expectRevoked(g, tok)
		expectAllowed(g, other)
		nextSecond()
		expectAllowed(g, tokenWith("bcl-acme", func(c claims) { c["sub"] = "bcl-alice" })) // signed in again
		Eventually(func() string { return readFile(g.auditPath) }, 5*time.Second).Should(And(
			ContainSubstring(`"source":"backchannel_logout"`), ContainSubstring(`"sub":"bcl-alice"`), ContainSubstring(`"remote_ip":"127.0.0.1"`)))
	})

	It("revokes by sid the tokens of that session only", func() {
		s1 := tokenWith("bcl-acme", func(c claims) { c["sub"], c["sid"] = "bcl-carol", "sess-1" })
		s2 := tokenWith("bcl-acme", func(c claims) { c["sub"], c["sid"] = "bcl-carol", "sess-2" })
		none := tokenWith("bcl-acme", func(c claims) { c["sub"] = "bcl-carol" })
		a := postLogout(g, logoutToken(env.rsaKey, "", "sess-1", nil))
		Expect(a.status).To(Equal(http.StatusOK), string(a.body))
		r := rlDo("GET", g.url+"/rv/x", s1)
		Expect(r.status).To(Equal(http.StatusUnauthorized))
		Expect(problemReason(r.body)).To(Equal("token_revoked"))
		expectAllowed(g, s2)
		expectAllowed(g, none)
		Expect(adminList(g.adminURL)).To(ContainElement(HaveKeyWithValue("sid", "sess-1")))
	})

	It("answers every bad logout request 400 invalid_request, and revokes nothing", func() {
		victim := tokenWith("bcl-acme", func(c claims) { c["sub"] = "bcl-dave" })
		expectAllowed(g, victim)
		before := len(adminList(g.adminURL))
		stranger := newKey(jwa.RS256, env.rsaKey.kid) // same kid, another key
		replayed := logoutToken(env.rsaKey, "bcl-erin", "", nil)
		Expect(postLogout(g, replayed).status).To(Equal(http.StatusOK))
		before++
		for _, tc := range []struct {
			name, contentType, body, words string
		}{
			{"wrong key", "", logoutToken(stranger, "bcl-dave", "", nil), "bad_signature"},
			{"wrong audience", "", logoutToken(env.rsaKey, "bcl-dave", "", func(c claims) { c["aud"] = "someone-else" }), "wrong_audience"},
			{"expired", "", logoutToken(env.rsaKey, "bcl-dave", "", func(c claims) {
				c["iat"], c["exp"] = time.Now().Add(-5*time.Minute).Unix(), time.Now().Add(-3*time.Minute).Unix()
			}), "expired"},
			{"replayed jti", "", replayed, "replay"},
			{"alg none", "", unsignedToken(claims{"iss": issuerMain, "aud": audience, "sub": "bcl-dave", "iat": time.Now().Unix(),
				"exp": time.Now().Add(time.Minute).Unix(), "jti": "none-1", "events": map[string]any{logoutEvent: map[string]any{}}}), "none"},
			{"nonce present", "", logoutToken(env.rsaKey, "bcl-dave", "", func(c claims) { c["nonce"] = "n-0S6_WzA2Mj" }), "nonce"},
			{"missing event", "", logoutToken(env.rsaKey, "bcl-dave", "", func(c claims) { c["events"] = map[string]any{"urn:other": map[string]any{}} }), logoutEvent},
			{"no events claim", "", logoutToken(env.rsaKey, "bcl-dave", "", func(c claims) { delete(c, "events") }), "events"},
			{"neither sub nor sid", "", logoutToken(env.rsaKey, "", "", nil), "neither"},
			{"no jti", "", logoutToken(env.rsaKey, "bcl-dave", "", func(c claims) { delete(c, "jti") }), "jti"},
			{"an access token", "", victim, "logout+jwt"}, // typ JWT; without it, no events
			{"typ JWT", "", sign(env.rsaKey, claims{"iss": issuerMain, "aud": audience, "sub": "bcl-dave", "iat": time.Now().Unix(),
				"exp": time.Now().Add(time.Minute).Unix(), "jti": "typ-1", "events": map[string]any{logoutEvent: map[string]any{}}}, nil), "logout+jwt"},
			{"unknown issuer", "", logoutToken(env.rsaKey, "bcl-dave", "", func(c claims) { c["iss"] = "https://nobody.test" }), "unknown_issuer"},
			{"wrong content type", "application/json", "", "Content-Type"},
			{"oversized body", "", strings.Repeat("x", 70<<10), "larger than"},
		} {
			By(tc.name)
			body := tc.body
			if tc.words != "larger than" && tc.contentType == "" {
				body = url.Values{"logout_token": {tc.body}}.Encode()
			}
			ct := tc.contentType
			if ct == "" {
				ct = "application/x-www-form-urlencoded"
			}
			if tc.contentType == "application/json" {
				body = `{"logout_token":"` + logoutToken(env.rsaKey, "bcl-dave", "", nil) + `"}`
			}
			expectLogoutRefused(postTo(g.url+bclPath, ct, body), tc.words)
		}
		expectAllowed(g, victim)
		Expect(adminList(g.adminURL)).To(HaveLen(before))
		resp, err := http.Get(g.url + bclPath)
		Expect(err).NotTo(HaveOccurred())
		resp.Body.Close()
		Expect(resp.StatusCode).To(Equal(http.StatusMethodNotAllowed))
		Expect(resp.Header.Get("Allow")).To(Equal("POST"))
	})

	It("applies a pushed CAEP session-revoked (202, empty body) and refuses the subject's tokens", func() {
		tok := tokenWith("ssf-acme", func(c claims) { c["sub"] = "ssf-frank" })
		expectAllowed(g, tok)
		a := postSET(g, secEvent(env.rsaKey, "ssf-frank", sessionRevoked, nil))
		Expect(a.status).To(Equal(http.StatusAccepted), string(a.body))
		Expect(a.body).To(BeEmpty())
		expectRevoked(g, tok)

		// credential-change naming a subject revokes too.
		tok2 := tokenWith("ssf-acme", func(c claims) { c["sub"] = "ssf-grace" })
		Expect(postSET(g, secEvent(env.rsaKey, "ssf-grace", credentialChange, nil)).status).To(Equal(http.StatusAccepted))
		expectRevoked(g, tok2)

		// An event type the gate does not act on: 202, nothing revoked.
		n := len(adminList(g.adminURL))
		Expect(postSET(g, secEvent(env.rsaKey, "ssf-henry", "https://schemas.openid.net/secevent/ssf/event-type/verification", nil)).status).To(Equal(http.StatusAccepted))
		Expect(adminList(g.adminURL)).To(HaveLen(n))
	})

	It("answers bad SETs 400 with the RFC 8935 err, and revokes nothing", func() {
		victim := tokenWith("ssf-acme", func(c claims) { c["sub"] = "ssf-ivan" })
		expectAllowed(g, victim)
		n := len(adminList(g.adminURL))
		replayed := secEvent(env.rsaKey, "ssf-judy", sessionRevoked, nil)
		Expect(postSET(g, replayed).status).To(Equal(http.StatusAccepted))
		n++
		stranger := newKey(jwa.RS256, env.rsaKey.kid)
		for _, tc := range []struct{ name, contentType, body, err string }{
			{"wrong key", "", secEvent(stranger, "ssf-ivan", sessionRevoked, nil), "invalid_key"},
			{"wrong audience", "", secEvent(env.rsaKey, "ssf-ivan", sessionRevoked, func(c claims) { c["aud"] = "someone-else" }), "invalid_audience"},
			{"unknown issuer", "", secEvent(env.rsaKey, "ssf-ivan", sessionRevoked, func(c claims) { c["iss"] = "https://nobody.test" }), "invalid_issuer"},
			{"a subject of another issuer", "", secEvent(env.rsaKey, "ssf-ivan", sessionRevoked, func(c claims) {
				c["sub_id"] = map[string]any{"format": "iss_sub", "iss": issuerHMAC, "sub": "ssf-ivan"}
			}), "access_denied"},
			{"replayed jti", "", replayed, "invalid_request"},
			{"alg none", "", unsignedToken(claims{"iss": issuerMain, "aud": audience, "iat": time.Now().Unix(), "jti": "n1",
				"sub_id": map[string]any{"format": "opaque", "id": "ssf-ivan"}, "events": map[string]any{sessionRevoked: map[string]any{}}}), "invalid_key"},
			{"too old", "", secEvent(env.rsaKey, "ssf-ivan", sessionRevoked, func(c claims) { c["iat"] = time.Now().Add(-2 * time.Hour).Unix() }), "invalid_request"},
			{"no subject", "", secEvent(env.rsaKey, "ssf-ivan", sessionRevoked, func(c claims) { delete(c, "sub_id") }), "invalid_request"},
			{"not a JWT", "", "hello", "invalid_request"},
			{"wrong content type", "application/jwt", secEvent(env.rsaKey, "ssf-ivan", sessionRevoked, nil), "invalid_request"},
			{"oversized", "", strings.Repeat("a", 70<<10), "invalid_request"},
		} {
			By(tc.name)
			ct := tc.contentType
			if ct == "" {
				ct = "application/secevent+jwt"
			}
			a := postTo(g.url+ssfPath, ct, tc.body)
			Expect(a.status).To(Equal(http.StatusBadRequest), tc.name+": "+string(a.body))
			Expect(a.header.Get("Content-Type")).To(Equal("application/json"))
			Expect(a.json()["err"]).To(Equal(tc.err), string(a.body))
			Expect(a.json()["description"]).NotTo(BeEmpty())
		}
		expectAllowed(g, victim)
		Expect(adminList(g.adminURL)).To(HaveLen(n))
	})

	It("chains every receiver line into the audit trail, which verifies", func() {
		Eventually(func() string { return readFile(g.auditPath) }, 5*time.Second).Should(And(
			ContainSubstring(`"event":"revocation_refused"`), ContainSubstring(`"refusal":"access_denied"`),
			ContainSubstring(`"event":"security_event_ignored"`), ContainSubstring(`"source":"ssf"`)))
		code, out := verifyAudit("--key-file", keyFile, "--allow-open", g.auditPath)
		Expect(code).To(Equal(0), out)
		raw := readFile(g.auditPath)
		lines := strings.Split(strings.TrimSpace(raw), "\n")
		chained := 0
		for _, l := range lines {
			if strings.Contains(l, `"source":`) {
				Expect(l).To(ContainSubstring(`"mac":"`))
				chained++
			}
		}
		Expect(chained).To(BeNumerically(">=", 20))
		// Cutting a revocation line out of the middle breaks the chain.
		for i, l := range lines[:len(lines)-1] {
			if strings.Contains(l, `"source":"backchannel_logout"`) && strings.Contains(l, `"msg":"revocation"`) {
				cut := filepath.Join(GinkgoT().TempDir(), "cut.log")
				Expect(os.WriteFile(cut, []byte(strings.Join(append(append([]string{}, lines[:i]...), lines[i+1:]...), "\n")+"\n"), 0o600)).To(Succeed())
				code, out := verifyAudit("--key-file", keyFile, "--allow-open", cut)
				Expect(code).NotTo(Equal(0), out)
				break
			}
		}
	})
})

var _ = Describe("back-channel logout across two gates on a shared Redis", Ordered, func() {
	var a, b revocationGate
	BeforeAll(func() {
		redisURL := redistest.Redis(GinkgoT())
		prefix := redistest.Prefix(GinkgoT(), redisURL)
		lines := sharedStoreLines(redisURL, prefix) + "\n\t\t" + receiverLines
		a = startRevocationGate("receivers-shared-a", lines)
		b = startRevocationGate("receivers-shared-b", lines)
	})

	It("refuses at gate B a subject logged out at gate A, and B refuses the same logout token again", func() {
		tok := tokenWith("bcl-fleet", func(c claims) { c["sub"] = "bcl-kim" })
		expectAllowed(b, tok) // cached at b
		lt := logoutToken(env.rsaKey, "bcl-kim", "sess-k", nil)
		start := time.Now()
		Expect(postLogout(a, lt).status).To(Equal(http.StatusOK))
		Eventually(func() int { return rlDo("GET", b.url+"/rv/x", tok).status }, 5*time.Second, 2*time.Millisecond).Should(Equal(http.StatusUnauthorized))
		took := time.Since(start)
		expectRevoked(b, tok)
		AddReportEntry("back-channel logout at gate a -> refusal at gate b", took.String())
		fmt.Fprintf(GinkgoWriter, "BCL-PROPAGATION %s\n", took)
		// The jti is claimed in Redis: a replay at the other gate is refused.
		expectLogoutRefused(postLogout(b, lt), "replay")
		// SSF at b reaches a.
		tok2 := tokenWith("bcl-fleet", func(c claims) { c["sub"] = "bcl-lee" })
		expectAllowed(a, tok2)
		Expect(postSET(b, secEvent(env.rsaKey, "bcl-lee", sessionRevoked, nil)).status).To(Equal(http.StatusAccepted))
		Eventually(func() int { return rlDo("GET", a.url+"/rv/x", tok2).status }, 5*time.Second, 2*time.Millisecond).Should(Equal(http.StatusUnauthorized))
	})
})
