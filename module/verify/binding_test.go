package verify

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/module/audit"
)

// selfSigned makes a throwaway client certificate, at run time.
func selfSigned(t testing.TB, cn string) *x509.Certificate {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func overTLS(r *Request, certs ...*x509.Certificate) *Request {
	r.TLS = &tls.ConnectionState{PeerCertificates: certs}
	return r
}

func TestCertificateBinding(t *testing.T) {
	v := newVerifier(t, baseConfig(t))
	mine, theirs := selfSigned(t, "mine"), selfSigned(t, "theirs")
	tok := boundToken(t, issEC, map[string]any{"x5t#S256": CertThumbprint(mine.Raw)}, nil)
	for _, tc := range []struct {
		name string
		req  *Request
		want audit.Reason
	}{
		{"matching certificate", overTLS(Bearer(tok), mine), ""},
		{"another certificate", overTLS(Bearer(tok), theirs), audit.ReasonBindingMismatch},
		{"TLS without a certificate", overTLS(Bearer(tok)), audit.ReasonBindingMismatch},
		{"no TLS", Bearer(tok), audit.ReasonBindingMismatch},
		{"forwarded by a trusted proxy", &Request{Token: tok, Scheme: "Bearer", ClientCert: mine.Raw}, ""},
		{"forwarded certificate wins over the proxy's own", overTLS(&Request{Token: tok, Scheme: "Bearer", ClientCert: theirs.Raw}, mine), audit.ReasonBindingMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, e := v.Verify(t0ctx, tc.req)
			switch {
			case tc.want == "" && e != nil:
				t.Fatalf("refused: %v", e)
			case tc.want != "" && (e == nil || e.Reason != tc.want):
				t.Fatalf("got %v, want %s", e, tc.want)
			}
			if got := res.Binding; got != BindingMTLS {
				t.Fatalf("binding %q", got)
			}
		})
	}
}

func TestBindingRules(t *testing.T) {
	cfg := baseConfig(t)
	cfg.Issuers[1].DPoP = Required        // issEC
	cfg.Issuers[2].MTLSBinding = Required // issEd
	v := newVerifier(t, cfg)
	k := keys(t)
	cl := newDPoPClient(t)
	edToken := func(cnf map[string]any) string {
		c := claimsFor(issEd, nil)
		if cnf != nil {
			c["cnf"] = cnf
		}
		return mint(t, "EdDSA", k.ed, "ed1", nil, c)
	}
	rsaBound := mint(t, "RS256", k.rsa, "", nil, claimsFor(issRSA, map[string]any{"cnf": map[string]any{"jkt": cl.jkt}}))
	rsaPlain := mint(t, "RS256", k.rsa, "", nil, claimsFor(issRSA, nil))
	cert := selfSigned(t, "c")
	for _, tc := range []struct {
		name   string
		req    *Request
		reason audit.Reason
		detail string
	}{
		{"DPoP-bound token as Bearer", Bearer(rsaBound), audit.ReasonBindingMismatch, "never as a bearer token"},
		{"DPoP-bound token from a cookie", &Request{Token: rsaBound}, audit.ReasonBindingMismatch, "never as a bearer token"},
		{"unbound token with the DPoP scheme", dpopRequest(rsaPlain, cl.proof(t, proofClaims("GET", testHTU, rsaPlain, testNow), nil)), audit.ReasonBindingMismatch, "not DPoP-bound"},
		{"unbound token on a dpop required issuer", Bearer(boundToken(t, issEC, nil, nil)), audit.ReasonBindingMismatch, "requires DPoP-bound"},
		{"unbound token on an mtls_binding required issuer", overTLS(Bearer(edToken(nil)), cert), audit.ReasonBindingMismatch, "requires certificate-bound"},
		{"unsupported confirmation method", Bearer(edToken(map[string]any{"jwk": map[string]any{"kty": "OKP"}, "x5t#S256": CertThumbprint(cert.Raw)})), audit.ReasonBindingMismatch, "cnf jwk"},
		{"cnf not an object", Bearer(mint(t, "RS256", k.rsa, "", nil, claimsFor(issRSA, map[string]any{"cnf": "x"}))), audit.ReasonMissingClaim, "cnf"},
		{"cnf.jkt empty", Bearer(mint(t, "RS256", k.rsa, "", nil, claimsFor(issRSA, map[string]any{"cnf": map[string]any{"jkt": ""}}))), audit.ReasonMissingClaim, "cnf"},
		{"cnf x5t#S256 a number", Bearer(mint(t, "RS256", k.rsa, "", nil, claimsFor(issRSA, map[string]any{"cnf": map[string]any{"x5t#S256": 1}}))), audit.ReasonMissingClaim, "cnf"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, e := identityOf(v.Verify(t0ctx, tc.req))
			if e == nil || e.Reason != tc.reason || !strings.Contains(e.Detail, tc.detail) {
				t.Fatalf("got %v, want %s with %q", e, tc.reason, tc.detail)
			}
		})
	}
	// What passes: a bound token with its proof on the dpop issuer, a
	// certificate-bound one with its certificate on the mtls issuer, an
	// unbound bearer token elsewhere, cnf null.
	dpopTok := boundToken(t, issEC, map[string]any{"jkt": cl.jkt}, nil)
	for name, req := range map[string]*Request{
		"dpop issuer":  dpopRequest(dpopTok, cl.proof(t, proofClaims("GET", testHTU, dpopTok, testNow), nil)),
		"mtls issuer":  overTLS(Bearer(edToken(map[string]any{"x5t#S256": CertThumbprint(cert.Raw)})), cert),
		"plain bearer": Bearer(rsaPlain),
		"cnf null":     Bearer(mint(t, "RS256", k.rsa, "", nil, claimsFor(issRSA, map[string]any{"cnf": nil}))),
		"scheme is caseless": func() *Request {
			r := dpopRequest(dpopTok, cl.proof(t, proofClaims("GET", testHTU, dpopTok, testNow), nil))
			r.Scheme = "dpop"
			return r
		}(),
	} {
		if _, e := identityOf(v.Verify(t0ctx, req)); e != nil {
			t.Errorf("%s: %v", name, e)
		}
	}
	if bindingOf(Bearer(rsaPlain), nil) != BindingBearer || bindingOf(nil, nil) != "" {
		t.Fatal("bindingOf")
	}
}

func TestBothBindingsAreChecked(t *testing.T) {
	v := newVerifier(t, baseConfig(t))
	cl := newDPoPClient(t)
	cert := selfSigned(t, "c")
	tok := boundToken(t, issEC, map[string]any{"jkt": cl.jkt, "x5t#S256": CertThumbprint(cert.Raw)}, nil)
	req := func() *Request { return dpopRequest(tok, cl.proof(t, proofClaims("GET", testHTU, tok, testNow), nil)) }
	if _, e := identityOf(v.Verify(t0ctx, req())); e == nil || e.Reason != audit.ReasonBindingMismatch {
		t.Fatalf("DPoP proof without the bound certificate: %v", e)
	}
	if _, e := identityOf(v.Verify(t0ctx, overTLS(req(), cert))); e != nil {
		t.Fatalf("proof and certificate: %v", e)
	}
}

// A verified-token cache hit skips the token's signature, never the
// request's binding: the same cached token is judged anew every time.
func TestBindingRunsOnCacheHits(t *testing.T) {
	cfg := baseConfig(t)
	cfg.TokenCache = entries(100)
	v := newVerifier(t, cfg)
	cl := newDPoPClient(t)
	cert := selfSigned(t, "c")
	tok := boundToken(t, issEC, map[string]any{"jkt": cl.jkt}, nil)
	proof := cl.proof(t, proofClaims("GET", testHTU, tok, testNow), nil)
	if _, e := identityOf(v.Verify(t0ctx, dpopRequest(tok, proof))); e != nil {
		t.Fatalf("first use: %v", e)
	}
	for name, tc := range map[string]struct {
		req  *Request
		want audit.Reason
	}{
		"as Bearer":      {Bearer(tok), audit.ReasonBindingMismatch},
		"proof replayed": {dpopRequest(tok, proof), audit.ReasonBadDPoPProof},
		"no proof":       {dpopRequest(tok), audit.ReasonBadDPoPProof},
		"fresh proof":    {dpopRequest(tok, cl.proof(t, proofClaims("GET", testHTU, tok, testNow), nil)), ""},
	} {
		_, e := identityOf(v.Verify(t0ctx, tc.req))
		if (tc.want == "" && e != nil) || (tc.want != "" && (e == nil || e.Reason != tc.want)) {
			t.Errorf("%s on a cache hit: got %v, want %q", name, e, tc.want)
		}
	}
	mtlsTok := boundToken(t, issEC, map[string]any{"x5t#S256": CertThumbprint(cert.Raw)}, nil)
	if _, e := identityOf(v.Verify(t0ctx, overTLS(Bearer(mtlsTok), cert))); e != nil {
		t.Fatal(e)
	}
	if _, e := identityOf(v.Verify(t0ctx, overTLS(Bearer(mtlsTok), selfSigned(t, "other")))); e == nil || e.Reason != audit.ReasonBindingMismatch {
		t.Fatalf("another certificate on a cache hit: %v", e)
	}
}
