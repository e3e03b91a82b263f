package jose

import (
	"crypto"
	"crypto/ed25519"
	"errors"
	"fmt"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
	voied25519 "github.com/oasisprotocol/curve25519-voi/primitives/ed25519"
)

// jwx v2 verifies EdDSA with crypto/ed25519 (66-72 µs a signature on the
// machines we measure on, the largest single cost of a request with an
// uncached EdDSA token). curve25519-voi verifies the same signatures in
// 46-59 µs. As for PSS (pss.go), we register its verifier with jwx under a
// private algorithm name and point the algorithms table's EdDSA at it: jwx
// still drives verification, the public EdDSA verifier is left untouched
// for any other jwx user in the process, and no token can name the private
// algorithm.
//
// The rules are crypto/ed25519's exactly (voi's VerifyOptionsStdLib:
// cofactorless equation, S < L, R compared as encoded, non-canonical and
// small-order A accepted as Go accepts them): TestEdDSAVerifierIsStdlibs
// holds the two to the same verdict on the published edge-case vectors
// (testdata/ed25519) and FuzzEdDSAVerifierIsStdlibs on anything else.
var voiEdDSA = jwa.SignatureAlgorithm("tenantgate-voi-EdDSA")

// voiEdDSARegistered: see strictPSSRegistered.
var voiEdDSARegistered = registerVoiEdDSA()

func registerVoiEdDSA() bool {
	jws.RegisterVerifier(voiEdDSA, jws.VerifierFactoryFn(func() (jws.Verifier, error) { return voiEdDSAVerifier{}, nil }))
	algorithms["EdDSA"].Alg = voiEdDSA
	return true
}

var stdlibRules = &voied25519.Options{Verify: voied25519.VerifyOptionsStdLib}

type voiEdDSAVerifier struct{}

// Verify takes the key as verifyingKey hands it (a crypto.Signer view) or
// as an ed25519.PublicKey.
func (voiEdDSAVerifier) Verify(payload, signature []byte, key any) error {
	var pub ed25519.PublicKey
	switch k := key.(type) {
	case ed25519.PublicKey:
		pub = k
	case crypto.Signer:
		pub, _ = k.Public().(ed25519.PublicKey)
	}
	if len(pub) != ed25519.PublicKeySize { // voi panics on a wrong length
		return fmt.Errorf("EdDSA verification needs an Ed25519 public key, got %T", key)
	}
	if !voied25519.VerifyWithOptions(voied25519.PublicKey(pub), payload, signature, stdlibRules) {
		return errors.New("failed to verify EdDSA signature")
	}
	return nil
}
