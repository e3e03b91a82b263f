package jose

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/tenantgate/tenantgate/module/audit"
	"github.com/tenantgate/tenantgate/module/verify/verr"
)

func mustKey(t *testing.T, raw any, set map[string]any) jwk.Key {
	t.Helper()
	k, err := jwk.FromRaw(raw)
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range set {
		if err := k.Set(name, v); err != nil {
			t.Fatal(err)
		}
	}
	return k
}

func TestConvertJWK(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	weak, _ := rsa.GenerateKey(rand.Reader, 1024)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	for _, tc := range []struct {
		name     string
		key      jwk.Key
		policy   SetPolicy
		kind     KeyKind
		unusable bool
		err      string
	}{
		{"RSA", mustKey(t, &rsaKey.PublicKey, map[string]any{"kid": "r", "alg": "RS256"}), SetPolicy{Remote: true}, KindRSA, false, ""},
		{"EC", mustKey(t, &ec.PublicKey, nil), SetPolicy{Remote: true}, KindEC, false, ""},
		{"Ed25519", mustKey(t, edPub, nil), SetPolicy{Remote: true}, KindEd25519, false, ""},
		{"HMAC local", mustKey(t, []byte(strings.Repeat("s", 32)), nil), SetPolicy{}, KindHMAC, false, ""},
		{"HMAC published", mustKey(t, []byte(strings.Repeat("s", 32)), nil), SetPolicy{Remote: true}, 0, false, "symmetric"},
		{"HMAC short", mustKey(t, []byte("short"), nil), SetPolicy{}, 0, false, "at least 32"},
		{"HS512 pinned, short", mustKey(t, []byte(strings.Repeat("s", 32)), map[string]any{"alg": "HS512"}), SetPolicy{}, 0, false, "at least 64"},
		{"private", mustKey(t, ec, nil), SetPolicy{}, 0, false, "private key material"},
		{"weak RSA", mustKey(t, &weak.PublicKey, nil), SetPolicy{}, 0, false, "1024 bits"},
		{"use enc", mustKey(t, &ec.PublicKey, map[string]any{"use": "enc"}), SetPolicy{}, 0, true, ""},
		{"key_ops sign", mustKey(t, &ec.PublicKey, map[string]any{"key_ops": []string{"sign"}}), SetPolicy{}, 0, true, ""},
		{"alg ES521", mustKey(t, &ec.PublicKey, map[string]any{"alg": "ES521"}), SetPolicy{}, 0, true, ""},
		{"alg not fitting", mustKey(t, &ec.PublicKey, map[string]any{"alg": "RS256"}), SetPolicy{}, 0, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := ConvertJWK(tc.key, tc.policy)
			switch {
			case tc.unusable:
				if !errors.Is(err, ErrUnusable) {
					t.Fatalf("want unusable, got %v", err)
				}
			case tc.err != "":
				if err == nil || errors.Is(err, ErrUnusable) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("want %q, got %v", tc.err, err)
				}
			case err != nil:
				t.Fatal(err)
			case k.Kind != tc.kind:
				t.Fatalf("kind %s", k.Kind)
			}
		})
	}
}

func TestKeyFitsAndKinds(t *testing.T) {
	ec384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	k := &Key{Kind: KindEC, Curve: ec384.Curve, Pub: &ec384.PublicKey}
	if k.Fits("ES384") != nil || k.Fits("ES256") == nil || k.Fits("RS256") == nil || k.Fits("XX") == nil {
		t.Fatal("EC P-384 fits ES384 only")
	}
	pinned := &Key{Alg: "ES384", Kind: KindEC, Curve: ec384.Curve}
	if pinned.Fits("ES512") == nil {
		t.Fatal("a key pinned to ES384 fits ES512")
	}
	if (&Key{Kind: KindHMAC, Pub: make([]byte, 32)}).Fits("HS384") == nil {
		t.Fatal("a 32-byte secret fits HS384")
	}
	for kind, name := range map[KeyKind]string{KindRSA: "RSA", KindEC: "EC", KindEd25519: "OKP Ed25519", KindHMAC: "oct (HMAC secret)", 0: "unknown"} {
		if kind.String() != name {
			t.Errorf("%d: %s", kind, kind)
		}
	}
	names := AlgorithmNames()
	if len(names) != 13 || names[0] != "ES256" || Algorithm("none") != nil || Algorithm("EdDSA").Kind != KindEd25519 {
		t.Fatalf("algorithms: %v", names)
	}
}

func TestParseJWKSSets(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pub := func(kid string) json.RawMessage {
		b, _ := json.Marshal(mustKey(t, &ec.PublicKey, map[string]any{"kid": kid}))
		return b
	}
	secret, _ := json.Marshal(mustKey(t, []byte(strings.Repeat("s", 32)), nil))
	set := func(keys ...json.RawMessage) []byte {
		b, _ := json.Marshal(map[string]any{"keys": keys})
		return b
	}
	encKey, _ := json.Marshal(mustKey(t, &ec.PublicKey, map[string]any{"kid": "e", "use": "enc"}))
	ks, skipped, err := ParseJWKS(set(pub("a"), pub(""), encKey), SetPolicy{Remote: true})
	if err != nil || len(ks.All) != 2 || ks.ByKid["a"] == nil || len(ks.NoKid) != 1 || len(skipped) != 1 {
		t.Fatalf("set: %v, skipped %v", err, skipped)
	}
	for name, tc := range map[string]struct {
		data []byte
		want string
	}{
		"duplicate kid":    {set(pub("a"), pub("a")), "duplicate kid"},
		"mixed":            {set(pub("a"), secret), "mixes symmetric"},
		"nothing usable":   {set(encKey), "no usable signing key"},
		"duplicate member": {[]byte(`{"keys":[],"keys":[]}`), "duplicate member"},
		"not JSON":         {[]byte(`{"keys":`), "not a valid JWKS"},
		"not a JWKS":       {[]byte(`{"keys":5}`), "parse JWKS"},
	} {
		if _, _, err := ParseJWKS(tc.data, SetPolicy{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", name, err, tc.want)
		}
	}
}

func TestParsePublicKeyPEM(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	block := func(typ string, der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}) }
	pkix := func(pub any) []byte {
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkixName("idp"), NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	cert, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, edPub, edPriv)
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		data []byte
		kind KeyKind
		err  string
	}{
		"PKIX RSA":    {block("PUBLIC KEY", pkix(&rsaKey.PublicKey)), KindRSA, ""},
		"PKCS1 RSA":   {block("RSA PUBLIC KEY", x509.MarshalPKCS1PublicKey(&rsaKey.PublicKey)), KindRSA, ""},
		"PKIX EC":     {block("PUBLIC KEY", pkix(&ec.PublicKey)), KindEC, ""},
		"certificate": {block("CERTIFICATE", cert), KindEd25519, ""},
		"private key": {block("PRIVATE KEY", []byte{1}), 0, "not a public key"},
		"two blocks":  {append(block("PUBLIC KEY", pkix(&ec.PublicKey)), block("PUBLIC KEY", pkix(&ec.PublicKey))...), 0, "more than one"},
		"no block":    {[]byte("hello"), 0, "no PEM block"},
		"garbage DER": {block("PUBLIC KEY", []byte{1, 2, 3}), 0, "asn1"},
	} {
		k, err := ParsePublicKeyPEM(tc.data)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: got %v, want %q", name, err, tc.err)
			}
		case err != nil:
			t.Errorf("%s: %v", name, err)
		case k.Kind != tc.kind:
			t.Errorf("%s: kind %s", name, k.Kind)
		}
	}
	if hasROCAFingerprint(rsaKey.N) {
		t.Fatal("a fresh key has the ROCA fingerprint")
	}
}

func pkixName(cn string) pkix.Name { return pkix.Name{CommonName: cn} }

func TestVerifySignatureLayer(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	sign := func(alg jwa.SignatureAlgorithm, key any, header string) string {
		input := base64.RawURLEncoding.EncodeToString([]byte(header)) + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"x"}`))
		s, err := jws.NewSigner(alg)
		if err != nil {
			t.Fatal(err)
		}
		sig, err := s.Sign([]byte(input), key)
		if err != nil {
			t.Fatal(err)
		}
		return input + "." + base64.RawURLEncoding.EncodeToString(sig)
	}
	ecPub := mustKey(t, &ec.PublicKey, map[string]any{"kid": "k1"})
	good := sign(jwa.ES256, ec, `{"alg":"ES256","kid":"k1"}`)
	pss := sign(jwa.PS256, rsaKey, `{"alg":"PS256"}`)
	for name, tc := range map[string]struct {
		raw  string
		key  jwk.Key
		want audit.Reason
	}{
		"ES256":         {good, ecPub, audit.ReasonOK},
		"PS256":         {pss, mustKey(t, &rsaKey.PublicKey, nil), audit.ReasonOK},
		"tampered":      {good[:len(good)-4] + "AAAA", ecPub, audit.ReasonBadSignature},
		"other kid":     {sign(jwa.ES256, ec, `{"alg":"ES256","kid":"k2"}`), ecPub, audit.ReasonUnknownKey},
		"alg not fit":   {sign(jwa.PS256, rsaKey, `{"alg":"PS256"}`), ecPub, audit.ReasonBadAlgorithm},
		"unknown alg":   {sign(jwa.ES256, ec, `{"alg":"XX1"}`), ecPub, audit.ReasonBadAlgorithm},
		"jku":           {sign(jwa.ES256, ec, `{"alg":"ES256","jku":"https://x"}`), ecPub, audit.ReasonBadHeader},
		"private key":   {good, mustKey(t, ec, nil), audit.ReasonUnknownKey},
		"not a JWS":     {"a.b", ecPub, audit.ReasonMalformedToken},
		"bad signature": {good + "=", ecPub, audit.ReasonMalformedToken},
	} {
		got := audit.ReasonOK
		if err := VerifySignature(tc.raw, tc.key); err != nil {
			var e *verr.Error
			if !errors.As(err, &e) {
				t.Fatalf("%s: %T", name, err)
			}
			got = e.Reason
		}
		if got != tc.want {
			t.Errorf("%s: %s, want %s", name, got, tc.want)
		}
	}
	if err := (strictPSSVerifier{}).Verify(nil, nil, "not a key"); err == nil {
		t.Fatal("PSS with a non-RSA key")
	}
}

func TestHeaderAndJSONHelpers(t *testing.T) {
	for hdr, want := range map[string]audit.Reason{
		`{"alg":"ES256","kid":"a","typ":"at+jwt"}`: audit.ReasonOK,
		`{"alg":"none"}`:               audit.ReasonBadAlgorithm,
		`{"kid":"a"}`:                  audit.ReasonBadAlgorithm,
		`{"alg":5}`:                    audit.ReasonBadAlgorithm,
		`{"alg":"ES256","kid":5}`:      audit.ReasonBadHeader,
		`{"alg":"ES256","crit":["x"]}`: audit.ReasonBadHeader,
		`{"alg":"ES256","b64":false}`:  audit.ReasonBadHeader,
		`{"alg":"ES256","x5c":[]}`:     audit.ReasonBadHeader,
	} {
		m, err := ParseObject([]byte(hdr))
		if err != nil {
			t.Fatal(err)
		}
		h, e := CheckHeader(m)
		got := audit.ReasonOK
		if e != nil {
			got = e.Reason
		}
		if got != want {
			t.Errorf("%s: %s, want %s", hdr, got, want)
		}
		if got == audit.ReasonOK && (h.Alg != "ES256" || h.Kid != "a" || h.Typ != "at+jwt") {
			t.Errorf("header read as %+v", h)
		}
	}
	if CheckJSONObject([]byte(`{"a":1}`)) != nil || CheckJSONObject([]byte(`{"a":1,"a":2}`)) == nil || CheckJSONObject([]byte("[1]")) == nil {
		t.Fatal("CheckJSONObject")
	}
	if !IsJSONNumber(json.RawMessage(" 12")) || IsJSONNumber(json.RawMessage("-1")) || !IsJSONString(json.RawMessage(`"x"`)) ||
		!IsJSONNull(json.RawMessage("null")) || FirstByte(json.RawMessage("  ")) != 0 {
		t.Fatal("JSON shape helpers")
	}
	if Truncate("abcdef", 3) != "abc…" || Truncate("ab", 3) != "ab" {
		t.Fatal("Truncate")
	}
}
