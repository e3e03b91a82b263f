package jose

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"unsafe"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/tenantgate/tenantgate/module/audit"
	"github.com/tenantgate/tenantgate/module/verify/verr"
)

// sigVerifiers holds one jwx verifier per supported algorithm, made once:
// jwx's verifiers are stateless, and verifying the parts PreCheck already
// split spares jws.Verify's second parse of the whole token.
var sigVerifiers = func() map[string]jws.Verifier {
	if !strictPSSRegistered || !voiEdDSARegistered {
		panic("the strict PSS and voi EdDSA verifiers are not registered")
	}
	out := make(map[string]jws.Verifier, len(algorithms))
	for name, info := range algorithms {
		v, err := jws.NewVerifier(info.Alg)
		if err != nil {
			panic(fmt.Sprintf("jwx has no verifier for %s: %v", name, err))
		}
		out[name] = v
	}
	return out
}()

// VerifySig checks a signature over the signing input (header.payload) with
// one key through jwx. alg has been checked against the key (k.Fits).
//
// The signing input is handed over as a read-only view of the token's
// bytes rather than a copy (about 800 bytes per verification): every jwx
// verifier only hashes or reads its payload.
func VerifySig(p *Parts, sig []byte, alg string, k *Key) error {
	// #nosec G103 -- read-only view of a string, not kept past the call
	in := unsafe.Slice(unsafe.StringData(p.SigningInput), len(p.SigningInput))
	v := sigVerifiers[alg]
	if _, strict := v.(strictPSSVerifier); strict {
		return v.Verify(in, sig, k.Pub)
	}
	return v.Verify(in, sig, verifyingKey(k))
}

// verifyingKey hands a public key to jwx as a crypto.Signer. jwx's RSA,
// ECDSA and EdDSA verifiers take Public() of a crypto.Signer as it is; any
// other key goes through jwx's keyconv, which converts it by reflection on
// every verification. The key is the same and jwx still does the
// verification; Sign is never called and refuses. publicOnly points at the
// Key's own field, so handing it over allocates nothing.
func verifyingKey(k *Key) any {
	switch k.Pub.(type) {
	case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
		return publicOnly{&k.Pub}
	}
	return k.Pub
}

type publicOnly struct{ pub *any }

func (k publicOnly) Public() crypto.PublicKey { return *k.pub }

func (publicOnly) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, errors.New("a verification key cannot sign")
}

// DecodeSignature decodes the signature part once per token.
func DecodeSignature(p *Parts) ([]byte, *verr.Error) {
	sig, err := StrictB64.DecodeString(p.Signature)
	if err != nil {
		return nil, Malformed("token signature is not canonical unpadded base64url", err)
	}
	return sig, nil
}

// VerifySignature is the signature layer alone: PreCheck, the header rules,
// the key's fit for the token's alg (type, curve, declared alg, use/key_ops,
// strength), and jwx verification. Claims are not looked at, and every
// supported algorithm is allowed. It exists for peer test suites such as
// Wycheproof. The returned error is an *verr.Error or nil.
func VerifySignature(raw string, key jwk.Key) error {
	p, e := Split(raw, 0)
	if e != nil {
		return e
	}
	h, e := CheckHeader(p.HeaderMembers)
	if e != nil {
		return e
	}
	if algorithms[h.Alg] == nil {
		return verr.New(audit.ReasonBadAlgorithm, "token algorithm is not supported", nil)
	}
	vk, err := ConvertJWK(key, SetPolicy{})
	if err != nil {
		return verr.New(audit.ReasonUnknownKey, "the key cannot verify signatures", err)
	}
	if h.Kid != "" && vk.Kid != "" && h.Kid != vk.Kid {
		return verr.New(audit.ReasonUnknownKey, "token kid does not name this key", nil)
	}
	if err := vk.Fits(h.Alg); err != nil {
		return verr.New(audit.ReasonBadAlgorithm, "token algorithm does not fit the key", err)
	}
	sig, e := DecodeSignature(&p)
	if e != nil {
		return e
	}
	if err := VerifySig(&p, sig, h.Alg, vk); err != nil {
		return verr.New(audit.ReasonBadSignature, "signature does not verify", err)
	}
	return nil
}
