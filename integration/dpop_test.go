package integration_test

import (
	"crypto"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

const (
	issuerDPoP   = "https://dpop.test" // dpop required
	dpopAlgs     = `algs="RS256 ES256 EdDSA"`
	dpopPublic   = "https://api.example.test"
	replayCapped = 300 // dpop_replay_cache of the spec's gate
)

// dpopClient is a client's DPoP key; jkt is its RFC 7638 thumbprint, what a
// bound token's cnf.jkt holds.
type dpopClient struct {
	key signingKey
	jkt string
}

func newDPoPClient(alg jwa.SignatureAlgorithm) *dpopClient {
	k := newKey(alg, "")
	Expect(k.key.Remove(jwk.KeyIDKey)).To(Succeed())
	tp, err := k.public().Thumbprint(crypto.SHA256)
	Expect(err).NotTo(HaveOccurred())
	return &dpopClient{key: k, jkt: b64url(tp)}
}

var proofSeq atomic.Int64

// proofClaims are the claims of a valid proof for method, htu and token.
func proofClaims(method, htu, token string) map[string]any {
	sum := sha256.Sum256([]byte(token))
	return map[string]any{
		"jti": fmt.Sprintf("proof-%d-%d", time.Now().UnixNano(), proofSeq.Add(1)),
		"htm": method, "htu": htu, "iat": time.Now().Unix(), "ath": b64url(sum[:]),
	}
}

// sign makes a proof of c, signed with jwx, with the public key in jwk
// (or jwkOverride, e.g. the private key).
func (d *dpopClient) sign(c map[string]any, jwkOverride jwk.Key) string {
	payload, err := json.Marshal(c)
	Expect(err).NotTo(HaveOccurred())
	hdr := jws.NewHeaders()
	Expect(hdr.Set(jws.TypeKey, "dpop+jwt")).To(Succeed())
	key := d.key.public()
	if jwkOverride != nil {
		key = jwkOverride
	}
	Expect(hdr.Set(jws.JWKKey, key)).To(Succeed())
	out, err := jws.Sign(payload, jws.WithKey(d.key.alg, d.key.key, jws.WithProtectedHeaders(hdr)))
	Expect(err).NotTo(HaveOccurred())
	return string(out)
}

func (d *dpopClient) proof(method, htu, token string) string {
	return d.sign(proofClaims(method, htu, token), nil)
}

// boundToken is a valid token of iss bound to the client's key.
func (e *testEnv) boundToken(iss string, cnf map[string]any) string {
	c := e.baseClaims("acme", "ensemble:read")
	c["iss"] = iss
	if cnf != nil {
		c["cnf"] = cnf
	}
	return sign(e.rsaKey, c, nil)
}

// sendDPoP sends a request with Authorization: <scheme> token and the proofs.
func sendDPoP(method, url, scheme, token string, proofs ...string) (int, http.Header, []byte) {
	req, err := http.NewRequest(method, url, nil)
	Expect(err).NotTo(HaveOccurred())
	req.Header.Set("Authorization", scheme+" "+token)
	for _, p := range proofs {
		req.Header.Add("DPoP", p)
	}
	resp, err := http.DefaultClient.Do(req)
	Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	Expect(err).NotTo(HaveOccurred())
	return resp.StatusCode, resp.Header, body
}

// rawProof is a proof with a hand-made header, for algorithms no
// well-behaved library signs DPoP proofs with.
func rawProof(header map[string]any, c map[string]any, sign func(input string) []byte) string {
	h, err := json.Marshal(header)
	Expect(err).NotTo(HaveOccurred())
	p, err := json.Marshal(c)
	Expect(err).NotTo(HaveOccurred())
	input := b64url(h) + "." + b64url(p)
	return input + "." + b64url(sign(input))
}

type dpopCase struct {
	// build returns the Authorization scheme, the token and the DPoP headers.
	build  func(f *dpopFixture) (scheme, token string, proofs []string)
	reason string
	bearer bool // the Bearer challenge is expected too
}

type dpopFixture struct {
	client, other *dpopClient
	url           string // the echo route of the spec's gate
	token         string // bound to client
}

func (f *dpopFixture) withClaims(mod func(c map[string]any)) (string, string, []string) {
	c := proofClaims("GET", f.url, f.token)
	mod(c)
	return "DPoP", f.token, []string{f.client.sign(c, nil)}
}

var _ = Describe("DPoP (RFC 9449) through the real binary", Ordered, func() {
	var (
		gate             *caddyProc
		gateURL, pubURL  string
		f                *dpopFixture
		sitesAddr, pAddr string
	)

	BeforeAll(func() {
		sitesAddr, pAddr = freeAddr(), freeAddr()
		echo := strings.TrimPrefix(env.echo.URL, "http://")
		sites := fmt.Sprintf(`
http://%[2]s {
	bind 127.0.0.1
	tenant_gate {
%%[1]s
		issuer %[4]s {
			jwks_url %[5]s
			audience %[6]s
			dpop required
		}
		dpop_replay_cache %[7]d
		rule * /echo/** authenticated
	}
	request_header X-Auth-Binding {http.auth.binding}
	reverse_proxy %[3]s
}

http://%[8]s {
	bind 127.0.0.1
	tenant_gate {
%%[1]s
		dpop_public_url %[9]s
		dpop_replay_cache %[7]d
		rule * /echo/** authenticated
	}
	reverse_proxy %[3]s
}
`, "", sitesAddr, echo, issuerDPoP, env.jwks.url(), audience, replayCapped, pAddr, dpopPublic)
		gateURL, pubURL = "http://"+sitesAddr, "http://"+pAddr
		gate = env.startCaddy("dpop", sites, gateURL+"/echo/wait")
		cl := newDPoPClient(jwa.ES256)
		f = &dpopFixture{client: cl, other: newDPoPClient(jwa.ES256), url: gateURL + "/echo/x",
			token: env.boundToken(issuerMain, map[string]any{"jkt": cl.jkt})}
	})
	AfterAll(func() { gate.stop() })

	It("passes a valid DPoP request, with the binding in the placeholder, audit and metrics, and forwards neither token nor proof", func() {
		before := scrape(gate.adminURL)
		for _, alg := range []jwa.SignatureAlgorithm{jwa.ES256, jwa.EdDSA, jwa.RS256} {
			cl := newDPoPClient(alg)
			tok := env.boundToken(issuerDPoP, map[string]any{"jkt": cl.jkt})
			status, h, body := sendDPoP("GET", f.url, "DPoP", tok, cl.proof("GET", f.url, tok))
			Expect(status).To(Equal(http.StatusOK), "%s: %s", alg, body)
			var got echoed
			Expect(json.Unmarshal(body, &got)).To(Succeed())
			Expect(got.Header.Get("X-Auth-Binding")).To(Equal("dpop"))
			Expect(got.Header.Get("X-Tenant-ID")).To(Equal("acme"))
			Expect(got.Header.Values("Authorization")).To(BeEmpty())
			Expect(got.Header.Values("Dpop")).To(BeEmpty())
			rec := auditFor(gate.auditPath, h.Get("X-Request-ID"))
			Expect(rec.Binding).To(Equal("dpop"))
			Expect(rec.Decision).To(Equal("allow"))
		}
		after := scrape(gate.adminURL)
		d := after.sum("tenantgate_binding_decisions_total", map[string]string{"binding": "dpop", "decision": "allow"}) -
			before.sum("tenantgate_binding_decisions_total", map[string]string{"binding": "dpop", "decision": "allow"})
		Expect(d).To(BeNumerically(">=", 3))
	})

	It("passes a plain bearer token as before, recorded as bearer", func() {
		status, h, body := do("GET", f.url, env.token("acme"), nil, "")
		Expect(status).To(Equal(http.StatusOK), string(body))
		Expect(auditFor(gate.auditPath, h.Get("X-Request-ID")).Binding).To(Equal("bearer"))
	})

	DescribeTable("refuses with the documented reason and challenge",
		func(tc dpopCase) {
			scheme, tok, proofs := tc.build(f)
			status, h, body := sendDPoP("GET", f.url, scheme, tok, proofs...)
			Expect(status).To(Equal(http.StatusUnauthorized), string(body))
			Expect(problemReason(body)).To(Equal(tc.reason))
			Expect(h.Get("Content-Type")).To(Equal("application/problem+json"))
			challenges := h.Values("WWW-Authenticate")
			var dpopCh string
			for _, c := range challenges {
				if strings.HasPrefix(c, "DPoP ") {
					dpopCh = c
				}
			}
			Expect(dpopCh).To(ContainSubstring(dpopAlgs), "%q", challenges)
			wantErr := `error="invalid_token"`
			if tc.reason == "bad_dpop_proof" {
				wantErr = `error="invalid_dpop_proof"`
			}
			Expect(dpopCh).To(ContainSubstring(wantErr), "%q", challenges)
			if tc.bearer {
				Expect(challenges[0]).To(HavePrefix("Bearer "))
				Expect(challenges[0]).To(ContainSubstring(`error="invalid_token"`))
			} else {
				Expect(challenges).To(HaveLen(1), "a DPoP request gets the DPoP challenge only")
			}
			rec := auditFor(gate.auditPath, h.Get("X-Request-ID"))
			Expect(rec.Reason).To(Equal(tc.reason))
			Expect(rec.Decision).To(Equal("deny"))
			Expect(rec.Issuer).NotTo(BeEmpty(), "the token verified, so the record names its issuer")
		},
		Entry("wrong htm", dpopCase{reason: "bad_dpop_proof", build: func(f *dpopFixture) (string, string, []string) {
			return f.withClaims(func(c map[string]any) { c["htm"] = "POST" })
		}}),
		Entry("wrong htu", dpopCase{reason: "bad_dpop_proof", build: func(f *dpopFixture) (string, string, []string) {
			return f.withClaims(func(c map[string]any) { c["htu"] = strings.Replace(f.url, "/echo/x", "/echo/y", 1) })
		}}),
		Entry("wrong ath", dpopCase{reason: "bad_dpop_proof", build: func(f *dpopFixture) (string, string, []string) {
			return f.withClaims(func(c map[string]any) { c["ath"] = b64url(make([]byte, 32)) })
		}}),
		Entry("stale iat", dpopCase{reason: "bad_dpop_proof", build: func(f *dpopFixture) (string, string, []string) {
			return f.withClaims(func(c map[string]any) { c["iat"] = time.Now().Add(-5 * time.Minute).Unix() })
		}}),
		Entry("future iat", dpopCase{reason: "bad_dpop_proof", build: func(f *dpopFixture) (string, string, []string) {
			return f.withClaims(func(c map[string]any) { c["iat"] = time.Now().Add(5 * time.Minute).Unix() })
		}}),
		Entry("proof signed by another key than cnf.jkt", dpopCase{reason: "binding_mismatch", build: func(f *dpopFixture) (string, string, []string) {
			return "DPoP", f.token, []string{f.other.proof("GET", f.url, f.token)}
		}}),
		Entry("private key in the proof's jwk", dpopCase{reason: "bad_dpop_proof", build: func(f *dpopFixture) (string, string, []string) {
			return "DPoP", f.token, []string{f.client.sign(proofClaims("GET", f.url, f.token), f.client.key.key)}
		}}),
		Entry("symmetric proof alg (HS256)", dpopCase{reason: "bad_dpop_proof", build: func(f *dpopFixture) (string, string, []string) {
			secret := env.hmacSecret
			p := rawProof(map[string]any{"typ": "dpop+jwt", "alg": "HS256", "jwk": map[string]any{"kty": "oct", "k": b64url(secret)}},
				proofClaims("GET", f.url, f.token), func(in string) []byte {
					m := hmac.New(sha256.New, secret)
					m.Write([]byte(in))
					return m.Sum(nil)
				})
			return "DPoP", f.token, []string{p}
		}}),
		Entry("proof alg none", dpopCase{reason: "bad_dpop_proof", build: func(f *dpopFixture) (string, string, []string) {
			p := rawProof(map[string]any{"typ": "dpop+jwt", "alg": "none", "jwk": f.client.key.public()},
				proofClaims("GET", f.url, f.token), func(string) []byte { return nil })
			return "DPoP", f.token, []string{p}
		}}),
		Entry("two DPoP headers", dpopCase{reason: "bad_dpop_proof", build: func(f *dpopFixture) (string, string, []string) {
			return "DPoP", f.token, []string{f.client.proof("GET", f.url, f.token), f.client.proof("GET", f.url, f.token)}
		}}),
		Entry("no DPoP header", dpopCase{reason: "bad_dpop_proof", build: func(f *dpopFixture) (string, string, []string) {
			return "DPoP", f.token, nil
		}}),
		Entry("the bound token sent as Bearer", dpopCase{reason: "binding_mismatch", bearer: true, build: func(f *dpopFixture) (string, string, []string) {
			return "Bearer", f.token, []string{f.client.proof("GET", f.url, f.token)}
		}}),
		Entry("an unbound token on a dpop required issuer", dpopCase{reason: "binding_mismatch", bearer: true, build: func(f *dpopFixture) (string, string, []string) {
			return "Bearer", env.boundToken(issuerDPoP, nil), nil
		}}),
	)

	It("refuses a replayed jti", func() {
		p := f.client.proof("GET", f.url, f.token)
		status, _, body := sendDPoP("GET", f.url, "DPoP", f.token, p)
		Expect(status).To(Equal(http.StatusOK), string(body))
		status, h, body := sendDPoP("GET", f.url, "DPoP", f.token, p)
		Expect(status).To(Equal(http.StatusUnauthorized))
		Expect(problemReason(body)).To(Equal("bad_dpop_proof"))
		Expect(string(body)).To(ContainSubstring("replayed"))
		Expect(h.Get("WWW-Authenticate")).To(ContainSubstring(`error="invalid_dpop_proof"`))
	})

	It("compares htu with dpop_public_url when a proxy in front changes scheme and host", func() {
		u := pubURL + "/echo/x"
		status, _, body := sendDPoP("GET", u, "DPoP", f.token, f.client.proof("GET", dpopPublic+"/echo/x", f.token))
		Expect(status).To(Equal(http.StatusOK), string(body))
		status, _, body = sendDPoP("GET", u, "DPoP", f.token, f.client.proof("GET", u, f.token))
		Expect(status).To(Equal(http.StatusUnauthorized))
		Expect(string(body)).To(ContainSubstring(dpopPublic + "/echo/x"))
	})

	It("keeps the replay cache bounded under a flood of valid proofs, and still refuses a fresh replay", func() {
		const flood = 3 * replayCapped
		var last string
		for i := 0; i < flood; i++ {
			last = f.client.proof("GET", f.url, f.token)
			status, _, body := sendDPoP("GET", f.url, "DPoP", f.token, last)
			Expect(status).To(Equal(http.StatusOK), string(body))
		}
		entries := scrape(gate.adminURL).sum("tenantgate_dpop_replay_cache_entries", nil)
		Expect(entries).To(BeNumerically("==", replayCapped), "the cache holds exactly dpop_replay_cache proofs after %d", flood)
		status, _, body := sendDPoP("GET", f.url, "DPoP", f.token, last)
		Expect(status).To(Equal(http.StatusUnauthorized))
		Expect(problemReason(body)).To(Equal("bad_dpop_proof"))
	})
})
