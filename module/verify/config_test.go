package verify

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
)

func TestValidateReportsEveryProblem(t *testing.T) {
	cfg := Config{
		Settings: Settings{
			Algorithms: []string{"RS256", "none", "NoNe", "RS999", "HS512"},
			Leeway:     new(Duration(-time.Second)),
			Issuers: []IssuerConfig{
				{Issuer: "https://idp", Audiences: []string{"api"}},
				{Issuer: "x", Audiences: []string{"api"}, HMACSecret: "too-short-secret"},
				{Issuer: "x", JWKSURL: "https://x/jwks", PublicKeyFile: "/k.pem"},
				{Issuer: "plain", Audiences: []string{""}, JWKSURL: "http://idp.example/jwks"},
				{Issuer: "", Audiences: []string{"api"}, OIDCDiscovery: "ftp://x"},
			},
			MaxTokenBytes: -1,
		},
	}
	err := cfg.Validate()
	if err == nil {
		t.Fatal("want errors")
	}
	msg := err.Error()
	for _, want := range []string{
		`issuer "https://idp": no key source (set one of jwks_url, oidc_discovery, jwks_file, public_key_file, hmac_secret)`,
		`algorithms: "none" is never allowed`,
		`algorithms: unknown algorithm "RS999"`,
		`issuer "x": hmac_secret is 16 bytes, need at least 32`,
		`issuer "x": more than one key source`,
		`issuer "x": at least one audience is required`,
		`issuer "x": duplicate issuer`,
		`issuer "plain": empty audience`,
		`issuer "plain": jwks_url: "http://idp.example/jwks" uses http`,
		`issuer[4]: the issuer value is empty`,
		`issuer[4]: oidc_discovery:`,
		`leeway: must not be negative`,
		`max_token_bytes: must not be negative`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("missing %q in:\n%s", want, msg)
		}
	}
	if strings.Count(msg, `"none" is never allowed`) != 2 {
		t.Errorf("each none spelling should be reported:\n%s", msg)
	}
}

// dpop and mtls_binding are the JSON's strings: verify checks their
// values, and says which option a bad one is in so the Caddyfile parser
// can name its line.
func TestValidateIssuerRequirements(t *testing.T) {
	base := IssuerConfig{Issuer: "https://idp", Audiences: []string{"api"}, JWKSFile: "/dev/null"}
	for _, tc := range []struct {
		dpop, mtls string
		options    []string
	}{
		{"", "", nil},
		{Required, Optional, nil},
		{"maybe", "", []string{"dpop"}},
		{Optional, "always", []string{"mtls_binding"}},
		{"Required", "REQUIRED", []string{"dpop", "mtls_binding"}}, // exact words only
	} {
		is := base
		is.DPoP, is.MTLSBinding = tc.dpop, tc.mtls
		var got []string
		for _, e := range splitJoined(Config{Settings: Settings{Issuers: []IssuerConfig{is}}}.Validate()) {
			var ie *IssuerError
			if errors.As(e, &ie) && ie.Option != "" {
				if !strings.Contains(e.Error(), ie.Option+" ") || !strings.Contains(e.Error(), "want required or optional") {
					t.Errorf("%q", e)
				}
				got = append(got, ie.Option)
			}
		}
		if !slices.Equal(got, tc.options) {
			t.Errorf("dpop %q mtls_binding %q: problems in %v, want %v", tc.dpop, tc.mtls, got, tc.options)
		}
	}
	is := base
	is.DPoP, is.MTLSBinding = Required, Optional
	if !is.RequiresDPoP() || is.RequiresMTLS() {
		t.Fatal("RequiresDPoP/RequiresMTLS do not read the config")
	}
}

func splitJoined(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	if err != nil {
		return []error{err}
	}
	return nil
}

func TestValidateHMACConsistency(t *testing.T) {
	secret := strings.Repeat("s", 32)
	cases := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no issuers", Config{}, "issuers: at least one issuer is required"},
		{"HS allowed without HMAC issuer", Config{Settings: Settings{Algorithms: []string{"HS256"}, Issuers: []IssuerConfig{{Issuer: "a", Audiences: []string{"x"}, JWKSURL: "https://a/jwks"}}}}, "HS256/HS384/HS512 allowed but no issuer"},
		{"secret without HS algorithm", Config{Settings: Settings{Issuers: []IssuerConfig{{Issuer: "a", Audiences: []string{"x"}, HMACSecret: secret}}}}, "hmac_secret is set but no HS256/HS384/HS512"},
		{"secret too short for HS512", Config{Settings: Settings{Algorithms: []string{"HS512"}, Issuers: []IssuerConfig{{Issuer: "a", Audiences: []string{"x"}, HMACSecret: secret}}}}, "HS512 needs at least 64"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want %q, got %v", tc.want, err)
			}
		})
	}
	ok := Config{Settings: Settings{Algorithms: []string{"HS256"}, Issuers: []IssuerConfig{{Issuer: "a", Audiences: []string{"x"}, HMACSecret: secret}}}}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	loop := Config{Settings: Settings{Issuers: []IssuerConfig{{Issuer: "a", Audiences: []string{"x"}, JWKSURL: "http://127.0.0.1:9/jwks"}}}}
	if err := loop.Validate(); err != nil {
		t.Fatalf("http to loopback must be allowed: %v", err)
	}
}

func TestSetDefaults(t *testing.T) {
	var c Config
	c.Issuers = []IssuerConfig{{}}
	c.SetDefaults()
	if strings.Join(c.Algorithms, " ") != "RS256 ES256 EdDSA" || c.EffectiveLeeway() != 30*time.Second || c.TokenCacheSize() != 10000 || c.MaxTokenBytes != 8192 ||
		c.TenantClaim != "tenant_id" || c.UserClaim != "sub" || c.RolesClaim != "roles" || c.HTTPClient == nil ||
		c.RefetchInterval != 2*time.Second || c.Logger == nil || c.Now == nil || c.Issuers[0].RefreshInterval != Duration(5*time.Minute) {
		t.Fatalf("%+v", c)
	}
}

func TestNewLoadsStaticKeys(t *testing.T) {
	k := keys(t)
	dir := t.TempDir()
	weak, _ := rsa.GenerateKey(rand.Reader, 1024)
	privDER, _ := x509.MarshalPKCS8PrivateKey(k.ec256)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "idp"}, NotBefore: testNow, NotAfter: testNow.Add(time.Hour)}
	certDER, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.rsa.PublicKey, k.rsa)
	if err != nil {
		t.Fatal(err)
	}
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	p224DER, _ := x509.MarshalPKIXPublicKey(&p224.PublicKey)
	privJWK, _ := jwk.FromRaw(k.ec256)
	octJWK, _ := jwk.FromRaw(k.hmac)
	shortOct, _ := jwk.FromRaw([]byte("short"))

	cases := []struct {
		name    string
		ic      IssuerConfig
		algs    []string
		wantErr string
	}{
		{"PKIX PEM", IssuerConfig{PublicKeyFile: writeFile(t, dir, "a.pem", pemPublic(t, &k.rsa.PublicKey))}, nil, ""},
		{"certificate PEM", IssuerConfig{PublicKeyFile: writeFile(t, dir, "c.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certDER}))}, nil, ""},
		{"PKCS1 PEM", IssuerConfig{PublicKeyFile: writeFile(t, dir, "p1.pem", pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&k.rsa.PublicKey)}))}, nil, ""},
		{"Ed25519 PEM", IssuerConfig{PublicKeyFile: writeFile(t, dir, "ed.pem", pemPublic(t, k.ed.Public()))}, nil, ""},
		{"private key PEM refused", IssuerConfig{PublicKeyFile: writeFile(t, dir, "priv.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}))}, nil, "is not a public key"},
		{"1024-bit RSA refused", IssuerConfig{PublicKeyFile: writeFile(t, dir, "weak.pem", pemPublic(t, &weak.PublicKey))}, nil, "1024 bits, need at least 2048"},
		{"RSA exponent 1 refused", IssuerConfig{PublicKeyFile: writeFile(t, dir, "e1.pem", pemPublic(t, &rsa.PublicKey{N: k.rsa.N, E: 1}))}, nil, "exponent 1"},
		{"P-224 refused", IssuerConfig{PublicKeyFile: writeFile(t, dir, "p224.pem", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: p224DER}))}, nil, ""},
		{"two PEM blocks refused", IssuerConfig{PublicKeyFile: writeFile(t, dir, "two.pem", append(pemPublic(t, &k.rsa.PublicKey), pemPublic(t, &k.rsa2.PublicKey)...))}, nil, "more than one PEM block"},
		{"missing file", IssuerConfig{PublicKeyFile: dir + "/nope.pem"}, nil, "no such file"},
		{"key fits no allowed algorithm", IssuerConfig{PublicKeyFile: writeFile(t, dir, "ec.pem", pemPublic(t, &k.ec384.PublicKey))}, []string{"ES256"}, "no key fits the allowed algorithms"},
		{"JWKS with private key refused", IssuerConfig{JWKSFile: writeFile(t, dir, "priv.json", jwksJSON(t, privJWK))}, nil, "private key material"},
		{"JWKS file with secrets", IssuerConfig{JWKSFile: writeFile(t, dir, "oct.json", jwksJSON(t, octJWK))}, []string{"HS256"}, ""},
		{"JWKS file with a short secret", IssuerConfig{JWKSFile: writeFile(t, dir, "short.json", jwksJSON(t, shortOct))}, []string{"HS256"}, "need at least 32"},
		{"JWKS mixing secret and public key", IssuerConfig{JWKSFile: writeFile(t, dir, "mix.json", jwksJSON(t, octJWK, publicJWK(t, &k.rsa.PublicKey, "r", "")))}, []string{"HS256", "RS256"}, "mixes symmetric"},
		{"JWKS duplicate kid", IssuerConfig{JWKSFile: writeFile(t, dir, "dup.json", jwksJSON(t, publicJWK(t, &k.rsa.PublicKey, "a", ""), publicJWK(t, &k.rsa2.PublicKey, "a", "")))}, nil, "duplicate kid"},
		{"JWKS duplicate JSON member", IssuerConfig{JWKSFile: writeFile(t, dir, "dupjson.json", []byte(`{"keys":[],"keys":[]}`))}, nil, "duplicate member"},
		{"JWKS with only an enc key", IssuerConfig{JWKSFile: writeFile(t, dir, "enc.json", func() []byte {
			kk := publicJWK(t, &k.rsa.PublicKey, "e", "")
			_ = kk.Set(jwk.KeyUsageKey, "enc")
			return jwksJSON(t, kk)
		}())}, nil, "no usable signing key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.ic.Issuer, tc.ic.Audiences = "https://idp", []string{"api"}
			cfg := Config{Settings: Settings{Issuers: []IssuerConfig{tc.ic}, Algorithms: tc.algs}}
			v, err := New(t0ctx, cfg)
			if v != nil {
				defer v.Close()
			}
			if tc.name == "P-224 refused" {
				if err == nil {
					t.Fatal("P-224 accepted")
				}
				return
			}
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if v.KeyStatus()["https://idp"] != 1 {
					t.Fatalf("status %v", v.KeyStatus())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("want %q, got %v", tc.wantErr, err)
			}
			if strings.Contains(err.Error(), "BEGIN") {
				t.Fatal("error echoes key material")
			}
		})
	}
}

func TestStaticObserverAndErrorFormat(t *testing.T) {
	obs := &recordingObserver{}
	cfg := baseConfig(t)
	cfg.Observer = obs
	newVerifier(t, cfg)
	if n := len(obs.snapshot()); n != 4 {
		t.Fatalf("want one report per static issuer, got %d", n)
	}
	e := &Error{Reason: "bad_signature", Detail: "d", Err: errTest}
	if e.Error() != "bad_signature: d: boom" || e.Unwrap() != errTest {
		t.Fatal(e.Error())
	}
}

var errTest = errorString("boom")

type errorString string

func (e errorString) Error() string { return string(e) }
