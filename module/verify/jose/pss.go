package jose

import (
	"crypto"
	"crypto/rsa"
	"errors"
	"fmt"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// jwx v2 verifies PS256/384/512 with rsa.PSSSaltLengthAuto, so a signature
// with any salt length passes. RFC 7518 §3.5 fixes the salt length to the
// hash size, and Wycheproof's SaltLenChanged vectors expect the rest to fail.
// We register RFC-exact PSS verifiers with jwx under private algorithm names
// and verify PS* tokens through them; jwx still drives verification, the
// verifier of the public names PS256/384/512 is left untouched for any other
// jwx user in the process, and no token can name the private algorithms
// (a token's alg must be in the algorithms table first).
var (
	strictPS256 = jwa.SignatureAlgorithm("tenantgate-strict-PS256")
	strictPS384 = jwa.SignatureAlgorithm("tenantgate-strict-PS384")
	strictPS512 = jwa.SignatureAlgorithm("tenantgate-strict-PS512")
)

// strictPSSRegistered is set once the strict verifiers are registered and
// the algorithms table points at them; sigVerifiers names it so that Go's
// initialisation order builds the table of verifiers after this.
var strictPSSRegistered = registerStrictPSS()

func registerStrictPSS() bool {
	for alg, h := range map[jwa.SignatureAlgorithm]crypto.Hash{
		strictPS256: crypto.SHA256, strictPS384: crypto.SHA384, strictPS512: crypto.SHA512,
	} {
		v := strictPSSVerifier{hash: h}
		jws.RegisterVerifier(alg, jws.VerifierFactoryFn(func() (jws.Verifier, error) { return v, nil }))
	}
	algorithms["PS256"].Alg = strictPS256
	algorithms["PS384"].Alg = strictPS384
	algorithms["PS512"].Alg = strictPS512
	return true
}

type strictPSSVerifier struct{ hash crypto.Hash }

func (v strictPSSVerifier) Verify(payload, signature []byte, key any) error {
	pub, ok := key.(*rsa.PublicKey)
	if !ok {
		return fmt.Errorf("PSS verification needs *rsa.PublicKey, got %T", key)
	}
	h := v.hash.New()
	h.Write(payload)
	if err := rsa.VerifyPSS(pub, v.hash, h.Sum(nil), signature, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: v.hash}); err != nil {
		return errors.New("failed to verify signature using RSASSA-PSS")
	}
	return nil
}
