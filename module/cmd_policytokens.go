package tenantgate

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// testKeys is the one key `tenant-gate test` makes and trusts for every
// issuer of the config, and the files and loopback JWKS that publish it.
type testKeys struct {
	alg      jwa.SignatureAlgorithm
	priv     jwk.Key // asymmetric algorithms
	raw      any     // priv as a crypto key: signing with it skips a conversion per token
	secret   []byte  // HS256/HS384/HS512
	jwksPath string
	jwks     []byte
	srv      *httptest.Server // multi-tenant issuers fetch from here, on loopback
}

const testKeyID = "tenant-gate-test"

// The contract's words (DESIGN.md), kept here so the command does not lean on
// the verifier's package layout: the default algorithms allow-list and the
// placeholder of a multi-tenant issuer.
var defaultAlgorithms = []string{"RS256", "ES256", "EdDSA"}

const tenantPlaceholder = "{tenant}"

// cheapFirst orders algorithms by signing cost: an RSA signature costs
// about a millisecond, which a 10,000-case file would feel.
var cheapFirst = []string{"EdDSA", "ES256", "ES384", "ES512", "PS256", "RS256", "PS384", "RS384", "PS512", "RS512", "HS256", "HS384", "HS512"}

// newTestKeys makes a key for the cheapest algorithm of the allow-list
// that it can make, and writes its JWKS to dir.
func newTestKeys(dir string, algorithms []string) (*testKeys, error) {
	if len(algorithms) == 0 {
		algorithms = defaultAlgorithms
	}
	for _, name := range cheapFirst {
		if !slices.Contains(algorithms, name) {
			continue
		}
		k := &testKeys{alg: jwa.SignatureAlgorithm(name)}
		var raw any
		var err error
		switch name {
		case "ES256":
			raw, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		case "ES384":
			raw, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		case "ES512":
			raw, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
		case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
			raw, err = rsa.GenerateKey(rand.Reader, 2048)
		case "EdDSA":
			_, raw, err = ed25519.GenerateKey(rand.Reader)
		case "HS256", "HS384", "HS512":
			// Printable, because it travels in the JSON config as a string.
			random := make([]byte, 32)
			_, err = rand.Read(random)
			k.secret = []byte(hex.EncodeToString(random))
			return k, err
		}
		if err != nil {
			return nil, fmt.Errorf("making a %s test key: %w", name, err)
		}
		k.raw = raw
		if k.priv, err = jwk.FromRaw(raw); err != nil {
			return nil, err
		}
		_ = k.priv.Set(jwk.KeyIDKey, testKeyID)
		_ = k.priv.Set(jwk.AlgorithmKey, k.alg)
		pub, err := jwk.PublicKeyOf(k.priv)
		if err != nil {
			return nil, err
		}
		set := jwk.NewSet()
		_ = set.AddKey(pub)
		if k.jwks, err = json.Marshal(set); err != nil {
			return nil, err
		}
		k.jwksPath = filepath.Join(dir, "jwks.json")
		return k, os.WriteFile(k.jwksPath, k.jwks, 0o600)
	}
	return nil, fmt.Errorf("algorithms %v: none the test command can sign with", algorithms)
}

// jwksURL is a URL template for a multi-tenant issuer: the same JWKS for
// every tenant, served on loopback (such issuers may not use jwks_file).
func (k *testKeys) jwksURL() (string, error) {
	if k.priv == nil {
		return "", fmt.Errorf("a multi-tenant issuer needs an asymmetric algorithm in algorithms, not %s", k.alg)
	}
	if k.srv == nil {
		k.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(k.jwks)
		}))
	}
	return k.srv.URL + "/" + tenantPlaceholder + "/jwks.json", nil
}

func (k *testKeys) close() {
	if k.srv != nil {
		k.srv.Close()
	}
}

// sign makes a compact JWS of claims; typ is the JOSE typ header ("" for JWT).
func (k *testKeys) sign(claims map[string]any, typ string) (string, error) {
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("claims: %w", err)
	}
	h := jws.NewHeaders()
	if typ == "" {
		typ = "JWT"
	}
	_ = h.Set(jws.TypeKey, typ)
	var key any = k.secret
	if k.priv != nil {
		key = k.raw
		_ = h.Set(jws.KeyIDKey, testKeyID)
	}
	tok, err := jws.Sign(payload, jws.WithKey(k.alg, key, jws.WithProtectedHeaders(h)))
	return string(tok), err
}

// writeAssertionKey writes an Ed25519 key for the gate's identity
// assertion: the test never reaches a backend, but the gate needs one.
func writeAssertionKey(dir string) (string, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "assertion.pem")
	return path, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
}

// issuerInfo is what a case's default claims come from.
type issuerInfo struct {
	iss       string
	audiences []string
	tokenType string
}

func (is issuerInfo) template() bool { return strings.Contains(is.iss, tenantPlaceholder) }

// matches reports whether iss is this issuer, or one of its tenants.
func (is issuerInfo) matches(iss string) bool {
	if !is.template() {
		return iss == is.iss
	}
	pre, post, _ := strings.Cut(is.iss, tenantPlaceholder)
	return len(iss) > len(pre)+len(post) && strings.HasPrefix(iss, pre) && strings.HasSuffix(iss, post)
}

// relativeTimeBound: a numeric iat, nbf or exp below this many seconds is
// relative to now (exp: -60 expired a minute ago); larger ones are Unix times.
const relativeTimeBound = 1e9

// caseClaims completes a case's claims: iss defaults to the first issuer
// (its {tenant} from the tenant claim), aud to that issuer's first
// audience, iat to now and exp to ten minutes on. A claim set to null is
// left out. It returns the claims and the issuer they name, if any.
func caseClaims(given map[string]any, issuers []issuerInfo, tenantClaim string, now time.Time) (map[string]any, *issuerInfo) {
	claims := make(map[string]any, len(given)+4)
	for k, v := range given {
		claims[k] = v
	}
	if _, set := claims["iss"]; !set && len(issuers) > 0 {
		iss := issuers[0].iss
		if tenant, ok := claimAt(claims, tenantClaim).(string); ok {
			iss = strings.Replace(iss, tenantPlaceholder, tenant, 1)
		}
		claims["iss"] = iss
	}
	var named *issuerInfo
	if iss, ok := claims["iss"].(string); ok {
		for i := range issuers {
			if issuers[i].matches(iss) {
				named = &issuers[i]
				break
			}
		}
	}
	if _, set := claims["aud"]; !set && named != nil && len(named.audiences) > 0 {
		claims["aud"] = named.audiences[0]
	}
	if _, set := claims["iat"]; !set {
		claims["iat"] = now.Unix()
	}
	if _, set := claims["exp"]; !set {
		claims["exp"] = now.Add(10 * time.Minute).Unix()
	}
	for _, name := range []string{"iat", "nbf", "exp"} {
		if v, ok := asNumber(claims[name]); ok && math.Abs(v) < relativeTimeBound {
			claims[name] = now.Unix() + int64(v)
		}
	}
	for k, v := range claims {
		if v == nil {
			delete(claims, k)
		}
	}
	return claims, named
}

func asNumber(v any) (float64, bool) {
	switch n := v.(type) {
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	case float64:
		return n, true
	}
	return 0, false
}

// claimAt reads a claim by name, or by RFC 6901 pointer when name starts
// with "/" (as tenant_claim may).
func claimAt(claims map[string]any, name string) any {
	if !strings.HasPrefix(name, "/") {
		return claims[name]
	}
	var cur any = claims
	for _, tok := range strings.Split(name[1:], "/") {
		tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[tok]
	}
	return cur
}
