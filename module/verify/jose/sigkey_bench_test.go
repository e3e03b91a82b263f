package jose

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
)

type sigCase struct {
	alg  string
	p    Parts
	sig  []byte
	key  *Key
	priv any
}

func sigCases(tb testing.TB) []sigCase {
	tb.Helper()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatal(err)
	}
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	input := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"x"}`)) + "." +
		base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"someone","iss":"https://issuer.example"}`))
	var out []sigCase
	for _, c := range []struct {
		alg  string
		priv any
		key  *Key
	}{
		{"RS256", rsaKey, &Key{Kind: KindRSA, Pub: &rsaKey.PublicKey}},
		{"PS256", rsaKey, &Key{Kind: KindRSA, Pub: &rsaKey.PublicKey}},
		{"ES256", ec, &Key{Kind: KindEC, Curve: elliptic.P256(), Pub: &ec.PublicKey}},
		{"EdDSA", edPriv, &Key{Kind: KindEd25519, Pub: edPub}},
	} {
		s, err := jws.NewSigner(jwa.SignatureAlgorithm(c.alg))
		if err != nil {
			tb.Fatal(err)
		}
		sig, err := s.Sign([]byte(input), c.priv)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, sigCase{alg: c.alg, p: Parts{SigningInput: input}, sig: sig, key: c.key, priv: c.priv})
	}
	return out
}

// BenchmarkVerifySig is one signature check through jwx, per algorithm:
// the cryptography plus how the key reaches it.
func BenchmarkVerifySig(b *testing.B) {
	for _, c := range sigCases(b) {
		b.Run(c.alg, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := VerifySig(&c.p, c.sig, c.alg, c.key); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// A good signature verifies and a changed one does not, for every kind of
// key, and a verification key never signs.
func TestVerifySigKeys(t *testing.T) {
	for _, c := range sigCases(t) {
		if err := VerifySig(&c.p, c.sig, c.alg, c.key); err != nil {
			t.Errorf("%s: %v", c.alg, err)
		}
		bad := append([]byte(nil), c.sig...)
		bad[len(bad)/2] ^= 1
		if err := VerifySig(&c.p, bad, c.alg, c.key); err == nil {
			t.Errorf("%s: a changed signature verified", c.alg)
		}
		other := Parts{SigningInput: c.p.SigningInput + "x"}
		if err := VerifySig(&other, c.sig, c.alg, c.key); err == nil {
			t.Errorf("%s: a changed input verified", c.alg)
		}
	}
}
