package verify

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"strings"
	"testing"

	"github.com/tenantgate/tenantgate/module/verify/jose"
)

type benchToken struct {
	name, token string
	// raw is the bare signature check of the algorithm with the standard
	// library, over the same signing input: the floor of a full verification.
	raw func() bool
}

func benchTokens(b *testing.B) []benchToken {
	k := keys(b)
	mk := func(name, alg string, key any, kid, iss string) benchToken {
		tok := mint(b, alg, key, kid, nil, claimsFor(iss, nil))
		i := strings.LastIndexByte(tok, '.')
		input := []byte(tok[:i])
		sig, err := jose.StrictB64.DecodeString(tok[i+1:])
		if err != nil {
			b.Fatal(err)
		}
		bt := benchToken{name: name, token: tok}
		switch alg {
		case "RS256":
			bt.raw = func() bool {
				h := sha256.Sum256(input)
				return rsa.VerifyPKCS1v15(&k.rsa.PublicKey, crypto.SHA256, h[:], sig) == nil
			}
		case "ES256":
			bt.raw = func() bool {
				h := sha256.Sum256(input)
				var r, s bigInt
				r.SetBytes(sig[:32])
				s.SetBytes(sig[32:])
				return ecdsa.Verify(&k.ec256.PublicKey, h[:], r.Int, s.Int)
			}
		case "EdDSA":
			pub := k.ed.Public().(ed25519.PublicKey)
			bt.raw = func() bool { return ed25519.Verify(pub, input, sig) }
		case "HS256":
			bt.raw = func() bool {
				m := hmac.New(sha256.New, k.hmac)
				m.Write(input)
				return hmac.Equal(m.Sum(nil), sig)
			}
		}
		return bt
	}
	return []benchToken{
		mk("RS256", "RS256", k.rsa, "", issRSA),
		mk("ES256", "ES256", k.ec256, "ec1", issEC),
		mk("EdDSA", "EdDSA", k.ed, "ed1", issEd),
		mk("HS256", "HS256", k.hmac, "", issHS),
	}
}

// BenchmarkVerify measures, per algorithm and in the same run: the raw
// signature check alone (raw), a full verification (miss: cache off, every
// step), and a verified-token cache hit (hit). miss/raw is the overhead of
// parsing and validation on top of the cryptography.
func BenchmarkVerify(b *testing.B) {
	miss := newVerifier(b, baseConfig(b))
	cfg := baseConfig(b)
	cfg.TokenCache = entries(1000)
	hit := newVerifier(b, cfg)
	for _, bt := range benchTokens(b) {
		b.Run(bt.name+"/raw", func(b *testing.B) {
			if !bt.raw() {
				b.Fatal("raw signature check failed")
			}
			b.ReportAllocs()
			for b.Loop() {
				bt.raw()
			}
		})
		for _, v := range []struct {
			name string
			v    *Verifier
		}{{"miss", miss}, {"hit", hit}} {
			b.Run(bt.name+"/"+v.name, func(b *testing.B) {
				if _, e := identityOf(v.v.Verify(t0ctx, Bearer(bt.token))); e != nil {
					b.Fatal(e)
				}
				b.ReportAllocs()
				for b.Loop() {
					if _, e := identityOf(v.v.Verify(t0ctx, Bearer(bt.token))); e != nil {
						b.Fatal(e)
					}
				}
			})
		}
	}
}

func BenchmarkPreCheck(b *testing.B) {
	k := keys(b)
	tok := mint(b, "ES256", k.ec256, "ec1", nil, claimsFor(issEC, nil))
	b.ReportAllocs()
	for b.Loop() {
		if e := jose.PreCheck(tok, 0); e != nil {
			b.Fatal(e)
		}
	}
}
