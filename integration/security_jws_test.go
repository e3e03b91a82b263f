package integration_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	_ "crypto/sha512" // crypto.SHA512 for RS512
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"os"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// tokenCase is one forged or odd token sent to the dedicated gate on
// GET /echo/x (rule: authenticated).
type tokenCase struct {
	token  func() string // built when the entry runs, after the fixtures exist
	status int           // what the client must get
	reason string        // problem+json reason; empty for 200
	tenant string        // for 200: the tenant the upstream must see
	// optional extras: more request headers, and a query string ("?...")
	headers func() map[string][]string
	query   func() string
	// orRetry: a kid not yet seen may also be answered 503 keys_unavailable
	// with Retry-After (a fetch ended within the refetch gap).
	orRetry bool
}

// runTokenCase sends the token and asserts the client's status and reason,
// that the upstream got the request (as tc.tenant) or nothing, that the
// attacker's key server was never fetched, and that the error body does not
// echo the token.
func runTokenCase(tc tokenCase) {
	tok := tc.token()
	mark := sec.upstream.mark()
	hits := sec.attackerServer.hits.Load()
	start := time.Now()
	var headers map[string][]string
	if tc.headers != nil {
		headers = tc.headers()
	}
	query := ""
	if tc.query != nil {
		query = tc.query()
	}
	status, h, body := do(http.MethodGet, sec.url+"/echo/x"+query, tok, headers, "")
	elapsed := time.Since(start)

	if tc.orRetry && status == http.StatusServiceUnavailable {
		// A kid not yet seen, while the keys were fetched a moment ago: the
		// honest answer is "retry when they are fetched again".
		tc.status, tc.reason = http.StatusServiceUnavailable, "keys_unavailable"
		Expect(h.Get("Retry-After")).To(MatchRegexp(`^[1-9][0-9]*$`))
	}
	Expect(status).To(Equal(tc.status), string(body))
	Expect(elapsed).To(BeNumerically("<", 3*time.Second), "a token is judged quickly, whatever it asks for")
	Expect(sec.attackerServer.hits.Load()-hits).To(BeZero(), "the gate fetched a URL the token named")
	if tc.status == http.StatusOK {
		// The assertion never outlives the token.
		tokExp := time.Unix(int64(jwsPayload(tok)["exp"].(float64)), 0)
		got := expectReachedAsAt(mark, tc.tenant, http.MethodGet, "/echo/x", tokExp)
		Expect(jwsPayload(got.Header.Get("X-Tenant-Assertion"))["exp"]).To(BeNumerically("<=", tokExp.Unix()))
		rec := secAuditRecord(got.Header.Get("X-Request-Id"))
		Expect(rec).To(HaveKeyWithValue("decision", "allow"))
		Expect(rec).To(HaveKeyWithValue("tenant_id", tc.tenant))
		return
	}
	expectNotReached(mark)
	if tc.reason == "" {
		return // refused by the HTTP server before the gate ran
	}
	Expect(problemReason(body)).To(Equal(tc.reason))
	var p struct {
		RequestID string `json:"request_id"`
	}
	Expect(json.Unmarshal(body, &p)).To(Succeed())
	rec := secAuditRecord(p.RequestID)
	Expect(rec).To(HaveKeyWithValue("decision", "deny"))
	Expect(rec).To(HaveKeyWithValue("reason", tc.reason))
	Expect(rec).To(HaveKeyWithValue("status", BeNumerically("==", tc.status)))
	Expect(rec).To(HaveKeyWithValue("tenant_id", ""), "a refused token names no tenant in the trail")
	if len(tok) >= 40 {
		trail, err := os.ReadFile(sec.gate.auditPath)
		Expect(err).NotTo(HaveOccurred())
		Expect(string(trail)).NotTo(ContainSubstring(tok[len(tok)-40:]), "the audit trail never holds the token")
	}
	Expect(h.Get("Content-Type")).To(Equal("application/problem+json"))
	if tc.status == http.StatusUnauthorized {
		Expect(h.Get("WWW-Authenticate")).To(HavePrefix("Bearer"))
	}
	if len(tok) >= 40 {
		Expect(string(body)).NotTo(ContainSubstring(tok[len(tok)-40:]), "the body never echoes the token")
	}
}

// --- compact JWS built by hand, so headers and payloads can be anything ---

func b64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	Expect(err).NotTo(HaveOccurred())
	return string(b)
}

// compactJWS joins a raw header JSON, raw payload JSON and signature bytes.
func compactJWS(hdr, payload string, sig []byte) string {
	return b64url([]byte(hdr)) + "." + b64url([]byte(payload)) + "." + b64url(sig)
}

func signingInput(hdr, payload string) []byte {
	return []byte(b64url([]byte(hdr)) + "." + b64url([]byte(payload)))
}

func rawPrivate(k signingKey) any {
	var raw any
	Expect(k.key.Raw(&raw)).To(Succeed())
	switch p := raw.(type) {
	case rsa.PrivateKey:
		return &p
	case ecdsa.PrivateKey:
		return &p
	}
	return raw
}

// signRSA signs hdr.payload with k's RSA key: PKCS#1 v1.5 or, with pss, PSS.
func signRSA(k signingKey, hash crypto.Hash, pss bool, hdr, payload string) string {
	priv := rawPrivate(k).(*rsa.PrivateKey)
	h := hash.New()
	h.Write(signingInput(hdr, payload))
	var sig []byte
	var err error
	if pss {
		sig, err = rsa.SignPSS(rand.Reader, priv, hash, h.Sum(nil), &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	} else {
		sig, err = rsa.SignPKCS1v15(rand.Reader, priv, hash, h.Sum(nil))
	}
	Expect(err).NotTo(HaveOccurred())
	return compactJWS(hdr, payload, sig)
}

func rs256(k signingKey, hdr, payload string) string {
	return signRSA(k, crypto.SHA256, false, hdr, payload)
}

// es256 signs with k's P-256 key, as JWS wants (r||s, 64 bytes) or, with
// der, in the ASN.1 DER form some libraries wrongly accept.
func es256(k signingKey, der bool, hdr, payload string) string {
	priv := rawPrivate(k).(*ecdsa.PrivateKey)
	d := sha256.Sum256(signingInput(hdr, payload))
	if der {
		sig, err := ecdsa.SignASN1(rand.Reader, priv, d[:])
		Expect(err).NotTo(HaveOccurred())
		return compactJWS(hdr, payload, sig)
	}
	r, s, err := ecdsa.Sign(rand.Reader, priv, d[:])
	Expect(err).NotTo(HaveOccurred())
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return compactJWS(hdr, payload, sig)
}

func hs256(secret []byte, hdr, payload string) string {
	m := hmac.New(sha256.New, secret)
	m.Write(signingInput(hdr, payload))
	return compactJWS(hdr, payload, m.Sum(nil))
}

// hdrJSON is a protected header with alg, kid (omitted when empty) and typ.
func hdrJSON(alg, kid string, extra map[string]any) string {
	h := map[string]any{"alg": alg, "typ": "JWT"}
	if kid != "" {
		h["kid"] = kid
	}
	for k, v := range extra {
		h[k] = v
	}
	return mustJSON(h)
}

// acmeClaims is a valid payload for tenant acme of the main issuer.
func acmeClaims() string { return mustJSON(env.baseClaims("acme")) }

// --- the issuer's public keys as an attacker would find them ---

func rsaPublicBytes(form string) []byte {
	pub := &rawPrivate(env.rsaKey).(*rsa.PrivateKey).PublicKey
	switch form {
	case "pkix-pem":
		der, err := x509.MarshalPKIXPublicKey(pub)
		Expect(err).NotTo(HaveOccurred())
		return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	case "pkcs1-pem":
		return pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(pub)})
	case "pkix-der":
		der, err := x509.MarshalPKIXPublicKey(pub)
		Expect(err).NotTo(HaveOccurred())
		return der
	case "pkcs1-der":
		return x509.MarshalPKCS1PublicKey(pub)
	case "jwk":
		return []byte(mustJSON(env.rsaKey.public()))
	}
	panic("unknown form " + form)
}

func ecPublicBytes(form string) []byte {
	pub := &rawPrivate(env.ecKey).(*ecdsa.PrivateKey).PublicKey
	switch form {
	case "pkix-pem":
		der, err := x509.MarshalPKIXPublicKey(pub)
		Expect(err).NotTo(HaveOccurred())
		return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	case "pkix-der":
		der, err := x509.MarshalPKIXPublicKey(pub)
		Expect(err).NotTo(HaveOccurred())
		return der
	case "point":
		ek, err := pub.ECDH()
		Expect(err).NotTo(HaveOccurred())
		return ek.Bytes()
	}
	panic("unknown form " + form)
}

// attackerCert is a self-signed certificate for the attacker's RSA key, for x5c.
func attackerCert() string {
	priv := rawPrivate(sec.attackerRSA).(*rsa.PrivateKey)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: issuerMain},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	Expect(err).NotTo(HaveOccurred())
	return base64.StdEncoding.EncodeToString(der)
}

func noneToken(alg string, withSig bool) func() string {
	return func() string {
		var sig []byte
		if withSig {
			sig = make([]byte, 256)
			_, _ = rand.Read(sig)
		}
		return compactJWS(hdrJSON(alg, "rsa-1", nil), acmeClaims(), sig)
	}
}

func hmacWithPublicKey(kid string, key func() []byte) func() string {
	return func() string { return hs256(key(), hdrJSON("HS256", kid, nil), acmeClaims()) }
}

func attackerSigned(kid string, extra func() map[string]any) func() string {
	return func() string {
		var e map[string]any
		if extra != nil {
			e = extra()
		}
		return rs256(sec.attackerRSA, hdrJSON("RS256", kid, e), acmeClaims())
	}
}

func realSigned(kid string, extra map[string]any) func() string {
	return func() string { return rs256(env.rsaKey, hdrJSON("RS256", kid, extra), acmeClaims()) }
}

func ecSigFromInts(r, s *big.Int) func() string {
	return func() string {
		sig := make([]byte, 64)
		r.FillBytes(sig[:32])
		s.FillBytes(sig[32:])
		return compactJWS(hdrJSON("ES256", "ec-1", nil), acmeClaims(), sig)
	}
}

// p256N is the order of P-256: r = s = n is the "psychic signature" variant.
var p256N, _ = new(big.Int).SetString("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551", 16)

func algorithmAndKeyAttacks() {
	const u, bad = http.StatusUnauthorized, "bad_algorithm"
	DescribeTable("algorithm and key attacks", runTokenCase,
		Entry("control: RS256 signed by the issuer's key passes", tokenCase{
			token: realSigned("rsa-1", nil), status: http.StatusOK, tenant: "acme"}),

		Entry("alg none, no signature", tokenCase{token: noneToken("none", false), status: u, reason: bad}),
		Entry("alg none, with a signature", tokenCase{token: noneToken("none", true), status: u, reason: bad}),
		Entry("alg None, no signature", tokenCase{token: noneToken("None", false), status: u, reason: bad}),
		Entry("alg None, with a signature", tokenCase{token: noneToken("None", true), status: u, reason: bad}),
		Entry("alg NONE, no signature", tokenCase{token: noneToken("NONE", false), status: u, reason: bad}),
		Entry("alg NONE, with a signature", tokenCase{token: noneToken("NONE", true), status: u, reason: bad}),
		Entry("alg nOnE, no signature", tokenCase{token: noneToken("nOnE", false), status: u, reason: bad}),
		Entry("alg nOnE, with a signature", tokenCase{token: noneToken("nOnE", true), status: u, reason: bad}),
		Entry("alg missing", tokenCase{token: func() string {
			return rs256(env.rsaKey, `{"kid":"rsa-1","typ":"JWT"}`, acmeClaims())
		}, status: u, reason: bad}),
		Entry("alg not a string", tokenCase{token: func() string {
			return rs256(env.rsaKey, `{"alg":["RS256"],"kid":"rsa-1"}`, acmeClaims())
		}, status: u, reason: bad}),

		Entry("HS256 keyed with the RSA public key, PKIX PEM", tokenCase{
			token: hmacWithPublicKey("rsa-1", func() []byte { return rsaPublicBytes("pkix-pem") }), status: u, reason: bad}),
		Entry("HS256 keyed with the RSA public key, PKCS#1 PEM", tokenCase{
			token: hmacWithPublicKey("rsa-1", func() []byte { return rsaPublicBytes("pkcs1-pem") }), status: u, reason: bad}),
		Entry("HS256 keyed with the RSA public key, PKIX DER bytes", tokenCase{
			token: hmacWithPublicKey("rsa-1", func() []byte { return rsaPublicBytes("pkix-der") }), status: u, reason: bad}),
		Entry("HS256 keyed with the RSA public key, PKCS#1 DER bytes", tokenCase{
			token: hmacWithPublicKey("rsa-1", func() []byte { return rsaPublicBytes("pkcs1-der") }), status: u, reason: bad}),
		Entry("HS256 keyed with the RSA public key as published JWK JSON", tokenCase{
			token: hmacWithPublicKey("rsa-1", func() []byte { return rsaPublicBytes("jwk") }), status: u, reason: bad}),
		Entry("HS256 keyed with the RSA public key PEM, no kid", tokenCase{
			token: hmacWithPublicKey("", func() []byte { return rsaPublicBytes("pkix-pem") }), status: u, reason: bad}),
		Entry("HS256 keyed with the EC public key, PKIX PEM", tokenCase{
			token: hmacWithPublicKey("ec-1", func() []byte { return ecPublicBytes("pkix-pem") }), status: u, reason: bad}),
		Entry("HS256 keyed with the EC public key, PKIX DER bytes", tokenCase{
			token: hmacWithPublicKey("ec-1", func() []byte { return ecPublicBytes("pkix-der") }), status: u, reason: bad}),
		Entry("HS256 keyed with the EC public key, uncompressed point", tokenCase{
			token: hmacWithPublicKey("ec-1", func() []byte { return ecPublicBytes("point") }), status: u, reason: bad}),
		Entry("HS256 keyed with the RSA public key PEM, claiming the HMAC issuer", tokenCase{token: func() string {
			c := env.baseClaims("acme")
			c["iss"] = issuerHMAC
			return hs256(rsaPublicBytes("pkix-pem"), hdrJSON("HS256", "", nil), mustJSON(c))
		}, status: u, reason: "bad_signature"}),

		Entry("alg in lower case (rs256)", tokenCase{token: func() string {
			return rs256(env.rsaKey, hdrJSON("rs256", "rsa-1", nil), acmeClaims())
		}, status: u, reason: bad}),
		Entry("HS256 with the HMAC issuer's real secret, claiming the RSA issuer", tokenCase{token: func() string {
			return hs256(env.hmacSecret, hdrJSON("HS256", "", nil), acmeClaims())
		}, status: u, reason: bad}),
		Entry("token of the main issuer signed with the late issuer's key", tokenCase{token: func() string {
			return sign(env.lateKey, env.baseClaims("acme"), nil)
		}, status: u, reason: "unknown_key", orRetry: true}),
		Entry("nested JWT (cty JWT, a token as the payload)", tokenCase{token: func() string {
			return rs256(env.rsaKey, hdrJSON("RS256", "rsa-1", map[string]any{"cty": "JWT"}), env.token("acme"))
		}, status: u, reason: "malformed_token"}),

		Entry("ES256 token naming the RSA key's kid", tokenCase{token: func() string {
			return es256(env.ecKey, false, hdrJSON("ES256", "rsa-1", nil), acmeClaims())
		}, status: u, reason: bad}),
		Entry("RS256 token naming the EC key's kid", tokenCase{token: func() string {
			return rs256(env.rsaKey, hdrJSON("RS256", "ec-1", nil), acmeClaims())
		}, status: u, reason: bad}),
		Entry("EdDSA token naming the RSA key's kid", tokenCase{token: func() string {
			hdr, payload := hdrJSON("EdDSA", "rsa-1", nil), acmeClaims()
			return compactJWS(hdr, payload, ed25519.Sign(rawPrivate(env.edKey).(ed25519.PrivateKey), signingInput(hdr, payload)))
		}, status: u, reason: bad}),
		Entry("PS256 (not allow-listed) by the issuer's RSA key", tokenCase{token: func() string {
			return signRSA(env.rsaKey, crypto.SHA256, true, hdrJSON("PS256", "rsa-1", nil), acmeClaims())
		}, status: u, reason: bad}),
		Entry("RS512 (not allow-listed) by the issuer's RSA key", tokenCase{token: func() string {
			return signRSA(env.rsaKey, crypto.SHA512, false, hdrJSON("RS512", "rsa-1", nil), acmeClaims())
		}, status: u, reason: bad}),

		Entry("ECDSA zero signature (r = s = 0)", tokenCase{
			token: ecSigFromInts(big.NewInt(0), big.NewInt(0)), status: u, reason: "bad_signature"}),
		Entry("ECDSA r = s = n (curve order)", tokenCase{
			token: ecSigFromInts(p256N, p256N), status: u, reason: "bad_signature"}),
		Entry("ECDSA genuine signature in DER encoding", tokenCase{token: func() string {
			return es256(env.ecKey, true, hdrJSON("ES256", "ec-1", nil), acmeClaims())
		}, status: u, reason: "bad_signature"}),

		Entry("jwk header embedding the attacker's key", tokenCase{token: attackerSigned("rsa-1", func() map[string]any {
			return map[string]any{"jwk": sec.attackerRSA.public()}
		}), status: u, reason: "bad_header"}),
		Entry("jku header pointing at the attacker's JWKS", tokenCase{token: attackerSigned("rsa-1", func() map[string]any {
			return map[string]any{"jku": sec.attackerServer.url()}
		}), status: u, reason: "bad_header"}),
		Entry("x5u header pointing at the attacker's server", tokenCase{token: attackerSigned("rsa-1", func() map[string]any {
			return map[string]any{"x5u": sec.attackerServer.srv.URL + "/cert.pem"}
		}), status: u, reason: "bad_header"}),
		Entry("x5c header with the attacker's self-signed certificate", tokenCase{token: attackerSigned("rsa-1", func() map[string]any {
			return map[string]any{"x5c": []string{attackerCert()}}
		}), status: u, reason: "bad_header"}),
		Entry("jku header on a token the issuer really signed", tokenCase{token: func() string {
			return rs256(env.rsaKey, hdrJSON("RS256", "rsa-1", map[string]any{"jku": sec.attackerServer.url()}), acmeClaims())
		}, status: u, reason: "bad_header"}),

		Entry("kid ../../etc/passwd", tokenCase{token: attackerSigned("../../etc/passwd", nil), status: u, reason: "unknown_key", orRetry: true}),
		Entry("kid ../../etc/passwd on a token the issuer really signed", tokenCase{
			token: realSigned("../../etc/passwd", nil), status: u, reason: "unknown_key", orRetry: true}),
		Entry("kid ' OR 1=1--", tokenCase{token: attackerSigned("' OR 1=1--", nil), status: u, reason: "unknown_key", orRetry: true}),
		Entry("kid with a NUL after the real kid", tokenCase{token: attackerSigned("rsa-1\x00", nil), status: u, reason: "unknown_key", orRetry: true}),
		Entry("kid empty", tokenCase{token: attackerSigned("", func() map[string]any {
			return map[string]any{"kid": ""}
		}), status: u, reason: "bad_signature"}),
		Entry("kid of 10 kB", tokenCase{token: attackerSigned(strings.Repeat("k", 10<<10), nil), status: u, reason: "malformed_token"}),
		Entry("kid as a JSON object", tokenCase{token: attackerSigned("", func() map[string]any {
			return map[string]any{"kid": map[string]any{"$ne": nil}}
		}), status: u, reason: "bad_header"}),

		Entry("crit naming a registered claim", tokenCase{token: realSigned("rsa-1", map[string]any{"crit": []string{"exp"}}), status: u, reason: "bad_header"}),
		Entry("crit naming an unknown extension", tokenCase{
			token: realSigned("rsa-1", map[string]any{"crit": []string{"x-tenant"}, "x-tenant": "globex"}), status: u, reason: "bad_header"}),
		Entry("crit b64 false (unencoded payload)", tokenCase{
			token: realSigned("rsa-1", map[string]any{"crit": []string{"b64"}, "b64": false}), status: u, reason: "bad_header"}),
		Entry("crit empty list", tokenCase{token: realSigned("rsa-1", map[string]any{"crit": []string{}}), status: u, reason: "bad_header"}),
	)
}
