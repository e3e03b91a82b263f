package verify

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/tenantgate/tenantgate/module/audit"

	"github.com/tenantgate/tenantgate/module/verify/dpop"
)

// dpopClient is a DPoP client key: it signs proofs, and its thumbprint is
// what a bound token's cnf.jkt holds.
type dpopClient struct {
	Alg  string
	priv any
	Pub  jwk.Key
	jkt  string
}

func newDPoPClient(t testing.TB) *dpopClient {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return clientFor(t, "ES256", priv, &priv.PublicKey)
}

func clientFor(t testing.TB, alg string, priv, pub any) *dpopClient {
	t.Helper()
	k, err := jwk.FromRaw(pub)
	if err != nil {
		t.Fatal(err)
	}
	tp, err := k.Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return &dpopClient{Alg: alg, priv: priv, Pub: k, jkt: b64.EncodeToString(tp)}
}

var jtiSeq atomic.Int64

// proofClaims are valid proof claims for a request and token.
func proofClaims(method, htu, token string, iat time.Time) map[string]any {
	sum := sha256.Sum256([]byte(token))
	return map[string]any{
		"jti": fmt.Sprintf("p-%d", jtiSeq.Add(1)),
		"htm": method,
		"htu": htu,
		"iat": iat.Unix(),
		"ath": b64.EncodeToString(sum[:]),
	}
}

// proof signs claims with the client's key; header overrides (nil deletes).
func (c *dpopClient) proof(t testing.TB, claims map[string]any, header map[string]any) string {
	t.Helper()
	h := map[string]any{"typ": "dpop+jwt", "alg": c.Alg, "jwk": c.Pub}
	for k, v := range header {
		if v == nil {
			delete(h, k)
			continue
		}
		h[k] = v
	}
	return signRaw(t, c.Alg, c.priv, mustJSON(t, h), mustJSON(t, claims))
}

const testHTU = "https://api.example/echo/x"

func dpopRequest(token string, proofs ...string) *Request {
	u, _ := url.Parse(testHTU)
	h := http.Header{}
	for _, p := range proofs {
		h.Add("DPoP", p)
	}
	return &Request{Token: token, Scheme: "DPoP", Method: "GET", URL: u, Header: h}
}

func boundToken(t testing.TB, iss string, cnf map[string]any, overrides map[string]any) string {
	t.Helper()
	k := keys(t)
	c := claimsFor(iss, overrides)
	if cnf != nil {
		c["cnf"] = cnf
	}
	return mint(t, "ES256", k.ec256, "ec1", nil, c)
}

func TestDPoPValidProofPasses(t *testing.T) {
	v := newVerifier(t, baseConfig(t))
	cl := newDPoPClient(t)
	tok := boundToken(t, issEC, map[string]any{"jkt": cl.jkt}, nil)
	res, e := v.Verify(t0ctx, dpopRequest(tok, cl.proof(t, proofClaims("GET", testHTU, tok, testNow), nil)))
	if e != nil {
		t.Fatalf("valid DPoP request refused: %v", e)
	}
	id := res.Identity
	if id.Cnf.JKT != cl.jkt || id.Tenant != "acme" {
		t.Fatalf("identity %+v", id)
	}
	if got := res.Binding; got != BindingDPoP {
		t.Fatalf("binding %q", got)
	}
	// Other proof algorithms and htu spellings the RFC 3986 normalisation accepts.
	k := keys(t)
	ed := clientFor(t, "EdDSA", k.ed, k.ed.Public())
	rs := clientFor(t, "RS256", k.rsa2, &k.rsa2.PublicKey)
	for _, c := range []struct {
		cl  *dpopClient
		htu string
	}{
		{ed, "HTTPS://API.example:443/echo/x"},
		{rs, testHTU + "?q=1#frag"},
	} {
		tok := boundToken(t, issEC, map[string]any{"jkt": c.cl.jkt}, nil)
		if _, e := identityOf(v.Verify(t0ctx, dpopRequest(tok, c.cl.proof(t, proofClaims("GET", c.htu, tok, testNow), nil)))); e != nil {
			t.Errorf("%s proof with htu %s refused: %v", c.cl.Alg, c.htu, e)
		}
	}
}

func TestDPoPProofFailures(t *testing.T) {
	v := newVerifier(t, baseConfig(t))
	k := keys(t)
	cl := newDPoPClient(t)
	other := newDPoPClient(t)
	tok := boundToken(t, issEC, map[string]any{"jkt": cl.jkt}, nil)
	valid := func() map[string]any { return proofClaims("GET", testHTU, tok, testNow) }
	with := func(name string, val any) map[string]any {
		c := valid()
		if val == nil {
			delete(c, name)
		} else {
			c[name] = val
		}
		return c
	}
	privJWK, _ := jwk.FromRaw(cl.priv)
	hsSig := func() string {
		h := mustJSON(t, map[string]any{"typ": "dpop+jwt", "alg": "HS256", "jwk": map[string]any{"kty": "oct", "k": b64.EncodeToString(k.hmac)}})
		input := b64.EncodeToString([]byte(h)) + "." + b64.EncodeToString([]byte(mustJSON(t, valid())))
		m := hmac.New(sha256.New, k.hmac)
		m.Write([]byte(input))
		return input + "." + b64.EncodeToString(m.Sum(nil))
	}
	none := b64.EncodeToString([]byte(mustJSON(t, map[string]any{"typ": "dpop+jwt", "alg": "none", "jwk": cl.Pub}))) + "." + b64.EncodeToString([]byte(mustJSON(t, valid()))) + "."
	ps := cl.proof(t, valid(), nil)
	tampered := ps[:strings.LastIndexByte(ps, '.')+1] + b64.EncodeToString(make([]byte, 64))

	for _, tc := range []struct {
		name   string
		req    *Request
		reason audit.Reason
	}{
		{"no DPoP header", dpopRequest(tok), audit.ReasonBadDPoPProof},
		{"two DPoP headers", dpopRequest(tok, cl.proof(t, valid(), nil), cl.proof(t, valid(), nil)), audit.ReasonBadDPoPProof},
		{"not a JWS", dpopRequest(tok, "not-a-proof"), audit.ReasonBadDPoPProof},
		{"typ JWT", dpopRequest(tok, cl.proof(t, valid(), map[string]any{"typ": "JWT"})), audit.ReasonBadDPoPProof},
		{"no typ", dpopRequest(tok, cl.proof(t, valid(), map[string]any{"typ": nil})), audit.ReasonBadDPoPProof},
		{"alg none", dpopRequest(tok, none), audit.ReasonBadDPoPProof},
		{"alg HS256", dpopRequest(tok, hsSig()), audit.ReasonBadDPoPProof},
		{"alg not allowed", dpopRequest(tok, clientFor(t, "RS512", k.rsa2, &k.rsa2.PublicKey).proof(t, valid(), nil)), audit.ReasonBadDPoPProof},
		{"no jwk", dpopRequest(tok, cl.proof(t, valid(), map[string]any{"jwk": nil})), audit.ReasonBadDPoPProof},
		{"jwk not an object", dpopRequest(tok, cl.proof(t, valid(), map[string]any{"jwk": "x"})), audit.ReasonBadDPoPProof},
		{"private jwk", dpopRequest(tok, cl.proof(t, valid(), map[string]any{"jwk": privJWK})), audit.ReasonBadDPoPProof},
		{"jwk of another type", dpopRequest(tok, cl.proof(t, valid(), map[string]any{"jwk": publicJWK(t, k.ed.Public(), "", "")})), audit.ReasonBadDPoPProof},
		{"jwk unparseable", dpopRequest(tok, cl.proof(t, valid(), map[string]any{"jwk": map[string]any{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}})), audit.ReasonBadDPoPProof},
		{"x5c header", dpopRequest(tok, cl.proof(t, valid(), map[string]any{"x5c": []string{"MIIB"}})), audit.ReasonBadDPoPProof},
		{"crit header", dpopRequest(tok, cl.proof(t, valid(), map[string]any{"crit": []string{"exp"}})), audit.ReasonBadDPoPProof},
		{"bad signature", dpopRequest(tok, tampered), audit.ReasonBadDPoPProof},
		{"wrong htm", dpopRequest(tok, cl.proof(t, with("htm", "POST"), nil)), audit.ReasonBadDPoPProof},
		{"no htm", dpopRequest(tok, cl.proof(t, with("htm", nil), nil)), audit.ReasonBadDPoPProof},
		{"wrong htu path", dpopRequest(tok, cl.proof(t, with("htu", "https://api.example/echo/y"), nil)), audit.ReasonBadDPoPProof},
		{"wrong htu host", dpopRequest(tok, cl.proof(t, with("htu", "https://evil.example/echo/x"), nil)), audit.ReasonBadDPoPProof},
		{"wrong htu scheme", dpopRequest(tok, cl.proof(t, with("htu", "http://api.example/echo/x"), nil)), audit.ReasonBadDPoPProof},
		{"htu with userinfo", dpopRequest(tok, cl.proof(t, with("htu", "https://u@api.example/echo/x"), nil)), audit.ReasonBadDPoPProof},
		{"htu relative", dpopRequest(tok, cl.proof(t, with("htu", "/echo/x"), nil)), audit.ReasonBadDPoPProof},
		{"stale iat", dpopRequest(tok, cl.proof(t, with("iat", testNow.Add(-61*time.Second).Unix()), nil)), audit.ReasonBadDPoPProof},
		{"future iat", dpopRequest(tok, cl.proof(t, with("iat", testNow.Add(61*time.Second).Unix()), nil)), audit.ReasonBadDPoPProof},
		{"iat string", dpopRequest(tok, cl.proof(t, with("iat", "now"), nil)), audit.ReasonBadDPoPProof},
		{"iat huge", dpopRequest(tok, cl.proof(t, with("iat", json.Number("1e300")), nil)), audit.ReasonBadDPoPProof},
		{"no ath", dpopRequest(tok, cl.proof(t, with("ath", nil), nil)), audit.ReasonBadDPoPProof},
		{"wrong ath", dpopRequest(tok, cl.proof(t, with("ath", b64.EncodeToString(make([]byte, 32))), nil)), audit.ReasonBadDPoPProof},
		{"no jti", dpopRequest(tok, cl.proof(t, with("jti", nil), nil)), audit.ReasonBadDPoPProof},
		{"jti too long", dpopRequest(tok, cl.proof(t, with("jti", strings.Repeat("j", 256+1)), nil)), audit.ReasonBadDPoPProof},
		{"payload not JSON", dpopRequest(tok, signRaw(t, "ES256", cl.priv, mustJSON(t, map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": cl.Pub}), "[1]")), audit.ReasonBadDPoPProof},
		{"another key than cnf.jkt", dpopRequest(tok, other.proof(t, valid(), nil)), audit.ReasonBindingMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, e := identityOf(v.Verify(t0ctx, tc.req))
			if e == nil || e.Reason != tc.reason {
				t.Fatalf("got %v, want %s", e, tc.reason)
			}
			if id == nil || id.TokenID != "tok-1" {
				t.Fatalf("identity of the verified token should come back with the error, got %+v", id)
			}
			if strings.Contains(e.Detail, tok) {
				t.Fatal("detail echoes the token")
			}
		})
	}
}

func TestDPoPReplayRefused(t *testing.T) {
	v := newVerifier(t, baseConfig(t))
	cl := newDPoPClient(t)
	tok := boundToken(t, issEC, map[string]any{"jkt": cl.jkt}, nil)
	p := cl.proof(t, proofClaims("GET", testHTU, tok, testNow), nil)
	if _, e := identityOf(v.Verify(t0ctx, dpopRequest(tok, p))); e != nil {
		t.Fatal(e)
	}
	_, e := identityOf(v.Verify(t0ctx, dpopRequest(tok, p)))
	if e == nil || e.Reason != audit.ReasonBadDPoPProof || !strings.Contains(e.Detail, "replayed") {
		t.Fatalf("replay: %v", e)
	}
	// A proof that failed a check before the replay cache is not
	// remembered: fixing nothing but the key would not be a replay.
	other := newDPoPClient(t)
	c := proofClaims("GET", testHTU, tok, testNow)
	if _, e := identityOf(v.Verify(t0ctx, dpopRequest(tok, other.proof(t, c, nil)))); e == nil || e.Reason != audit.ReasonBindingMismatch {
		t.Fatalf("want binding_mismatch, got %v", e)
	}
	if _, e := identityOf(v.Verify(t0ctx, dpopRequest(tok, cl.proof(t, c, nil)))); e != nil {
		t.Fatalf("same jti from the bound key after a refused proof: %v", e)
	}
}

func TestDPoPPublicURLAndMaxAge(t *testing.T) {
	cfg := baseConfig(t)
	cfg.DPoP = DPoPConfig{PublicURL: "https://public.example", MaxAge: Duration(5 * time.Minute)}
	v := newVerifier(t, cfg)
	cl := newDPoPClient(t)
	tok := boundToken(t, issEC, map[string]any{"jkt": cl.jkt}, nil)
	req := func(htu string, iat time.Time) *Request {
		r := dpopRequest(tok, cl.proof(t, proofClaims("GET", htu, tok, iat), nil))
		r.URL, _ = url.Parse("http://10.0.0.7:8080/echo/x") // what a proxy in front sends
		return r
	}
	if _, e := identityOf(v.Verify(t0ctx, req("https://public.example/echo/x", testNow.Add(-4*time.Minute)))); e != nil {
		t.Fatalf("public URL with a 4 min old proof under dpop_max_age 5m: %v", e)
	}
	if _, e := identityOf(v.Verify(t0ctx, req("http://10.0.0.7:8080/echo/x", testNow))); e == nil || !strings.Contains(e.Detail, "https://public.example/echo/x") {
		t.Fatalf("the internal URL must not pass when dpop_public_url is set, and the detail names the wanted htu: %v", e)
	}
	if got := v.DPoPAlgorithms(); got != "RS256 PS256 ES256 ES384 EdDSA" {
		t.Fatalf("default proof algorithms are the asymmetric token algorithms, got %q", got)
	}
}

func TestDPoPConfigValidation(t *testing.T) {
	for _, tc := range []struct {
		cfg  DPoPConfig
		want string
	}{
		{DPoPConfig{ProofAlgorithms: []string{"HS256"}}, "symmetric"},
		{DPoPConfig{ProofAlgorithms: []string{"none"}}, `"none" is never allowed`},
		{DPoPConfig{ProofAlgorithms: []string{"XX1"}}, "unknown algorithm"},
		{DPoPConfig{MaxAge: Duration(2 * time.Hour)}, "dpop_max_age"},
		{DPoPConfig{ReplayCacheSize: -1}, "dpop_replay_cache"},
		{DPoPConfig{PublicURL: "ftp://x"}, "scheme"},
		{DPoPConfig{PublicURL: "https://"}, "no host"},
		{DPoPConfig{PublicURL: "https://a.example/base"}, "only scheme and host"},
		{DPoPConfig{PublicURL: "https://a b"}, "not a URL"},
	} {
		cfg := baseConfig(t)
		cfg.DPoP = tc.cfg
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want %q", tc.cfg, err, tc.want)
		}
	}
	cfg := Config{Settings: Settings{Algorithms: []string{"HS256"}}}
	cfg.DPoP.SetDefaults(cfg.Algorithms)
	if strings.Join(cfg.DPoP.ProofAlgorithms, " ") != strings.Join(DefaultAlgorithms, " ") {
		t.Fatalf("an HS-only gate falls back to the default proof algorithms, got %v", cfg.DPoP.ProofAlgorithms)
	}
}

func TestPreCheckProofAcceptsOnlyWellFormed(t *testing.T) {
	cl := newDPoPClient(t)
	good := cl.proof(t, proofClaims("GET", testHTU, "t", testNow), nil)
	if e := dpop.PreCheckProof(good); e != nil {
		t.Fatal(e)
	}
	for _, raw := range []string{"", "a.b", good + "x", strings.Repeat("A", dpop.MaxProofBytes+1)} {
		if e := dpop.PreCheckProof(raw); e == nil || e.Reason != audit.ReasonBadDPoPProof {
			t.Errorf("%.20q: %v", raw, e)
		}
	}
}
