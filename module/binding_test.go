package tenantgate

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tenantgate/tenantgate/module/verify"
)

var rawURL = base64.RawURLEncoding

// boundToken is a token of the unit issuer with cnf set.
func (u *unitGate) boundToken(t *testing.T, cnf map[string]any, roles ...string) string {
	t.Helper()
	tok, _ := jwt.NewBuilder().Issuer(unitIssuer).Audience([]string{"api"}).Subject("alice").
		IssuedAt(time.Now()).Expiration(time.Now().Add(time.Minute)).JwtID("j1").
		Claim("tenant_id", "acme").Claim("roles", roles).Claim("cnf", cnf).Build()
	signed, err := jwt.Sign(tok, jwt.WithKey(jwa.ES256, u.key))
	if err != nil {
		t.Fatal(err)
	}
	return string(signed)
}

// unitProofKey is a DPoP client key and its thumbprint.
func unitProofKey(t testing.TB) (jwk.Key, string) {
	t.Helper()
	raw, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	priv, _ := jwk.FromRaw(raw)
	pub, _ := priv.PublicKey()
	tp, _ := pub.Thumbprint(crypto.SHA256)
	return priv, rawURL.EncodeToString(tp)
}

func unitProof(t testing.TB, priv jwk.Key, method, htu, token string) string {
	t.Helper()
	pub, _ := priv.PublicKey()
	sum := sha256.Sum256([]byte(token))
	payload, _ := json.Marshal(map[string]any{"jti": time.Now().String(), "htm": method, "htu": htu, "iat": time.Now().Unix(), "ath": rawURL.EncodeToString(sum[:])})
	hdr := jws.NewHeaders()
	_ = hdr.Set(jws.TypeKey, "dpop+jwt")
	_ = hdr.Set(jws.JWKKey, pub)
	out, err := jws.Sign(payload, jws.WithKey(jwa.ES256, priv, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// serveFrom is serve with Caddy's trusted-proxy verdict for the peer.
func (u *unitGate) serveFrom(r *http.Request, up *upstream, trusted bool) *httptest.ResponseRecorder {
	repl := caddy.NewReplacer()
	repl.Set("http.request.uuid", "req-123")
	ctx := context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl)
	ctx = context.WithValue(ctx, caddyhttp.VarsCtxKey, map[string]any{caddyhttp.TrustedProxyVarKey: trusted})
	// trusted: the peer is in client_cert_from (unitCertPeers) as well as
	// in Caddy's trusted_proxies; otherwise it is neither.
	r.RemoteAddr = "192.0.2.7:40000"
	if trusted {
		r.RemoteAddr = "10.1.2.3:40000"
	}
	w := httptest.NewRecorder()
	_ = u.g.ServeHTTP(w, r.WithContext(ctx), up.handler())
	if v, _ := repl.GetString("http.auth.binding"); up.called && v == "" {
		w.Header().Set("X-Test-Binding", "unset")
	} else {
		w.Header().Set("X-Test-Binding", v)
	}
	return w
}

func TestServeDPoP(t *testing.T) {
	u := newUnitGate(t, nil)
	priv, jkt := unitProofKey(t)
	tok := u.boundToken(t, map[string]any{"jkt": jkt}, "trade")
	before := testutil.ToFloat64(processBindingMetrics.decisions.WithLabelValues("dpop", "allow"))

	r := httptest.NewRequest("GET", "http://gate.test/api/whoami?x=1", nil)
	r.Header.Set("Authorization", "dpop "+tok)
	r.Header.Set("DPoP", unitProof(t, priv, "GET", "http://gate.test/api/whoami", tok))
	up := &upstream{}
	w := u.serveFrom(r, up, false)
	if w.Code != 200 || !up.called {
		t.Fatalf("valid DPoP request: %d %s", w.Code, w.Body)
	}
	if up.header.Get("DPoP") != "" || up.header.Get("Authorization") != "" {
		t.Fatal("the proof or the token travelled on to the upstream")
	}
	if got := w.Header().Get("X-Test-Binding"); got != "dpop" {
		t.Fatalf("{http.auth.binding} = %q", got)
	}
	if after := testutil.ToFloat64(processBindingMetrics.decisions.WithLabelValues("dpop", "allow")); after != before+1 {
		t.Fatalf("binding metric %v -> %v", before, after)
	}

	// A DPoP request that lacks a role gets a DPoP insufficient_scope challenge.
	r = httptest.NewRequest("POST", "http://gate.test/api/trade", nil)
	tok2 := u.boundToken(t, map[string]any{"jkt": jkt})
	r.Header.Set("Authorization", "DPoP "+tok2)
	r.Header.Set("DPoP", unitProof(t, priv, "POST", "http://gate.test/api/trade", tok2))
	w = u.serveFrom(r, &upstream{}, false)
	if w.Code != 403 || w.Header().Get("WWW-Authenticate") != `DPoP realm="tenantgate", error="insufficient_scope"` {
		t.Fatalf("missing role over DPoP: %d %q", w.Code, w.Header().Values("WWW-Authenticate"))
	}

	// The bound token as Bearer: both challenges, Bearer first.
	r = httptest.NewRequest("GET", "http://gate.test/api/whoami", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	w = u.serveFrom(r, &upstream{}, false)
	ch := w.Header().Values("WWW-Authenticate")
	if w.Code != 401 || problemOf(t, w).Reason != "binding_mismatch" || len(ch) != 2 ||
		!strings.HasPrefix(ch[0], `Bearer realm="tenantgate", error="invalid_token"`) ||
		ch[1] != `DPoP realm="tenantgate", algs="RS256 ES256 EdDSA", error="invalid_token", error_description="binding_mismatch"` {
		t.Fatalf("bound token as bearer: %d %q", w.Code, ch)
	}

	// No proof: invalid_dpop_proof, DPoP challenge only.
	r = httptest.NewRequest("GET", "http://gate.test/api/whoami", nil)
	r.Header.Set("Authorization", "DPoP "+tok)
	w = u.serveFrom(r, &upstream{}, false)
	ch = w.Header().Values("WWW-Authenticate")
	if w.Code != 401 || len(ch) != 1 || !strings.Contains(ch[0], `error="invalid_dpop_proof"`) {
		t.Fatalf("no proof: %d %q", w.Code, ch)
	}

	// No token at all: both challenges, neither with an error.
	w = u.serveFrom(httptest.NewRequest("GET", "http://gate.test/api/whoami", nil), &upstream{}, false)
	ch = w.Header().Values("WWW-Authenticate")
	if len(ch) != 2 || ch[0] != `Bearer realm="tenantgate"` || ch[1] != `DPoP realm="tenantgate", algs="RS256 ES256 EdDSA"` {
		t.Fatalf("no token: %q", ch)
	}
}

func unitCert(t *testing.T) []byte {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "c"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// unitCertPeers is the client_cert_from of unit gates that believe a proxy.
var unitCertPeers = []string{"10.0.0.0/8"}

func TestServeClientCertFromTrustedProxyOnly(t *testing.T) {
	u := newUnitGate(t, func(g *Gate) { g.ClientCertFrom = unitCertPeers })
	der := unitCert(t)
	tok := u.boundToken(t, map[string]any{"x5t#S256": verify.CertThumbprint(der)})
	header := ":" + base64.StdEncoding.EncodeToString(der) + ":"
	for _, tc := range []struct {
		name    string
		value   string
		trusted bool
		status  int
	}{
		{"trusted proxy", header, true, 200},
		{"untrusted peer", header, false, 401},
		{"trusted proxy, not a byte sequence", "abc", true, 401},
		{"trusted proxy, not a certificate", ":" + base64.StdEncoding.EncodeToString([]byte("x")) + ":", true, 401},
		{"trusted proxy, a string item", `"x"`, true, 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "http://gate.test/api/whoami", nil)
			r.Header.Set("Authorization", "Bearer "+tok)
			r.Header.Set("Client-Cert", tc.value)
			r.Header.Set("Client-Cert-Chain", tc.value)
			up := &upstream{}
			w := u.serveFrom(r, up, tc.trusted)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			if tc.status == 200 && w.Header().Get("X-Test-Binding") != "mtls" {
				t.Fatalf("binding %q", w.Header().Get("X-Test-Binding"))
			}
		})
	}
	// An untrusted peer's Client-Cert never reaches the upstream, on any route.
	r := httptest.NewRequest("GET", "http://gate.test/healthz", nil)
	r.Header.Set("Client-Cert", header)
	up := &upstream{}
	u.serveFrom(r, up, false)
	if !up.called || up.header.Get("Client-Cert") != "" {
		t.Fatalf("called=%v Client-Cert=%q", up.called, up.header.Get("Client-Cert"))
	}
}

func TestValidateDPoPRequirements(t *testing.T) {
	g := &Gate{Settings: verify.Settings{Issuers: []Issuer{{Issuer: "https://i", DPoP: "maybe", MTLSBinding: "always"}}}}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := g.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	err := g.Validate()
	if err == nil || !strings.Contains(err.Error(), `dpop "maybe"`) || !strings.Contains(err.Error(), `mtls_binding "always"`) {
		t.Fatalf("got %v", err)
	}
}
