package verify

import (
	"fmt"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/tenantgate/tenantgate/module/audit"
)

// sigVerifiers holds one jwx verifier per supported algorithm, made once:
// jwx's verifiers are stateless, and verifying the parts PreCheck already
// split spares jws.Verify's second parse of the whole token.
var sigVerifiers = func() map[string]jws.Verifier {
	if !strictPSSRegistered {
		panic("strict PSS verifiers are not registered")
	}
	out := make(map[string]jws.Verifier, len(algorithms))
	for name, info := range algorithms {
		v, err := jws.NewVerifier(info.alg)
		if err != nil {
			panic(fmt.Sprintf("jwx has no verifier for %s: %v", name, err))
		}
		out[name] = v
	}
	return out
}()

// verifySig checks a signature over the signing input (header.payload) with
// one key through jwx. alg has been checked against the key (k.fits).
func verifySig(p *compactParts, sig []byte, alg string, k *verifyKey) error {
	return sigVerifiers[alg].Verify([]byte(p.signingInput), sig, k.pub)
}

// decodeSignature decodes the signature part once per token.
func decodeSignature(p *compactParts) ([]byte, *Error) {
	sig, err := strictB64.DecodeString(p.signature)
	if err != nil {
		return nil, malformed("token signature is not canonical unpadded base64url", err)
	}
	return sig, nil
}

// VerifySignature is the signature layer alone: PreCheck, the header rules,
// the key's fit for the token's alg (type, curve, declared alg, use/key_ops,
// strength), and jwx verification. Claims are not looked at, and every
// supported algorithm is allowed. It exists for peer test suites such as
// Wycheproof. The returned error is an *Error or nil.
func VerifySignature(raw string, key jwk.Key) error {
	p, e := precheck(raw, 0)
	if e != nil {
		return e
	}
	h, e := checkHeader(p.headerMembers)
	if e != nil {
		return e
	}
	if algorithms[h.alg] == nil {
		return fail(audit.ReasonBadAlgorithm, "token algorithm is not supported", nil)
	}
	vk, err := convertJWK(key, setPolicy{})
	if err != nil {
		return fail(audit.ReasonUnknownKey, "the key cannot verify signatures", err)
	}
	if h.kid != "" && vk.kid != "" && h.kid != vk.kid {
		return fail(audit.ReasonUnknownKey, "token kid does not name this key", nil)
	}
	if err := vk.fits(h.alg); err != nil {
		return fail(audit.ReasonBadAlgorithm, "token algorithm does not fit the key", err)
	}
	sig, e := decodeSignature(&p)
	if e != nil {
		return e
	}
	if err := verifySig(&p, sig, h.alg, vk); err != nil {
		return fail(audit.ReasonBadSignature, "signature does not verify", err)
	}
	return nil
}
