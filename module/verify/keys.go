package verify

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"sort"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

type keyKind int

const (
	kindRSA keyKind = iota + 1
	kindEC
	kindEd25519
	kindHMAC
)

func (k keyKind) String() string {
	switch k {
	case kindRSA:
		return "RSA"
	case kindEC:
		return "EC"
	case kindEd25519:
		return "OKP Ed25519"
	case kindHMAC:
		return "oct (HMAC secret)"
	}
	return "unknown"
}

// algInfo says which key an algorithm needs.
type algInfo struct {
	alg    jwa.SignatureAlgorithm
	kind   keyKind
	curve  elliptic.Curve // EC only
	minKey int            // HMAC only: RFC 7518 §3.2, a key at least as long as the hash
}

// algorithms is the closed set of JWS algorithms tenantgate can verify.
var algorithms = map[string]*algInfo{
	"RS256": {alg: jwa.RS256, kind: kindRSA},
	"RS384": {alg: jwa.RS384, kind: kindRSA},
	"RS512": {alg: jwa.RS512, kind: kindRSA},
	"PS256": {alg: jwa.PS256, kind: kindRSA},
	"PS384": {alg: jwa.PS384, kind: kindRSA},
	"PS512": {alg: jwa.PS512, kind: kindRSA},
	"ES256": {alg: jwa.ES256, kind: kindEC, curve: elliptic.P256()},
	"ES384": {alg: jwa.ES384, kind: kindEC, curve: elliptic.P384()},
	"ES512": {alg: jwa.ES512, kind: kindEC, curve: elliptic.P521()},
	"EdDSA": {alg: jwa.EdDSA, kind: kindEd25519},
	"HS256": {alg: jwa.HS256, kind: kindHMAC, minKey: 32},
	"HS384": {alg: jwa.HS384, kind: kindHMAC, minKey: 48},
	"HS512": {alg: jwa.HS512, kind: kindHMAC, minKey: 64},
}

// AlgorithmNames lists the algorithm names Config.Algorithms accepts.
func AlgorithmNames() []string {
	names := make([]string, 0, len(algorithms))
	for n := range algorithms {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Limits on keys we load.
const (
	minRSABits = 2048
	maxRSABits = 16384 // bigger keys only make verification a DoS lever
	maxKeyBody = 1 << 20
)

// verifyKey is one usable verification key, already checked.
type verifyKey struct {
	kid   string
	alg   string // declared alg, "" when the key does not pin one
	kind  keyKind
	curve elliptic.Curve
	pub   any // *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey or []byte
}

// fits reports why k cannot verify a token with alg, or nil when it can.
func (k *verifyKey) fits(alg string) error {
	info := algorithms[alg]
	if info == nil {
		return fmt.Errorf("algorithm %q is not supported", alg)
	}
	if k.alg != "" && k.alg != alg {
		return fmt.Errorf("the key is for %s, the token says %s", k.alg, alg)
	}
	if k.kind != info.kind {
		return fmt.Errorf("%s needs a %s key, the key is %s", alg, info.kind, k.kind)
	}
	if info.kind == kindEC && k.curve != info.curve {
		return fmt.Errorf("%s needs curve %s, the key is on %s", alg, info.curve.Params().Name, k.curve.Params().Name)
	}
	if info.kind == kindHMAC {
		if n := len(k.pub.([]byte)); n < info.minKey {
			return fmt.Errorf("%s needs a secret of at least %d bytes, this one has %d", alg, info.minKey, n)
		}
	}
	return nil
}

// keySet is an immutable set of usable keys of one issuer.
type keySet struct {
	byKid map[string]*verifyKey
	noKid []*verifyKey
	all   []*verifyKey
}

func newKeySet(keys []*verifyKey) (*keySet, error) {
	s := &keySet{byKid: map[string]*verifyKey{}, all: keys}
	for _, k := range keys {
		if k.kid == "" {
			s.noKid = append(s.noKid, k)
			continue
		}
		if _, dup := s.byKid[k.kid]; dup {
			return nil, fmt.Errorf("duplicate kid %q: a key set must name each key once", truncate(k.kid, 64))
		}
		s.byKid[k.kid] = k
	}
	return s, nil
}

// setPolicy says what a key set may contain.
type setPolicy struct {
	// remote sets are published: they must never carry a secret.
	remote bool
}

// errUnusable marks a key that is valid but not for verifying signatures
// (use "enc", key_ops without "verify", an unknown or non-JWS alg, X25519).
// Such keys are skipped; dangerous keys fail the whole set instead.
var errUnusable = errors.New("key not usable for signature verification")

// convertJWK turns a parsed JWK into a verifyKey, enforcing key strength.
// It returns an error wrapping errUnusable for keys to skip.
func convertJWK(k jwk.Key, p setPolicy) (*verifyKey, error) {
	vk := &verifyKey{kid: k.KeyID()}
	if k.KeyType() == jwa.OctetSeq && p.remote {
		return nil, errors.New("contains a symmetric (oct) key; a published JWKS must never contain secrets")
	}
	if asym, ok := k.(jwk.AsymmetricKey); ok && asym.IsPrivate() {
		return nil, errors.New(`contains private key material ("d"); a JWKS for verification must hold public keys only`)
	}
	if u := k.KeyUsage(); u != "" && u != string(jwk.ForSignature) {
		return nil, fmt.Errorf("%w: use is %q", errUnusable, u)
	}
	if ops := k.KeyOps(); len(ops) > 0 && !slices.Contains(ops, jwk.KeyOpVerify) {
		return nil, fmt.Errorf("%w: key_ops lacks \"verify\"", errUnusable)
	}
	if a := k.Algorithm().String(); a != "" {
		if algorithms[a] == nil {
			return nil, fmt.Errorf("%w: alg %q is not a supported JWS algorithm", errUnusable, truncate(a, 32))
		}
		vk.alg = a
	}
	var raw any
	if err := k.Raw(&raw); err != nil {
		return nil, fmt.Errorf("invalid %s key: %w", k.KeyType(), err)
	}
	switch pub := raw.(type) {
	case *rsa.PublicKey:
		if err := checkRSA(pub); err != nil {
			return nil, err
		}
		vk.kind, vk.pub = kindRSA, pub
	case *ecdsa.PublicKey:
		if err := checkEC(pub); err != nil {
			return nil, err
		}
		vk.kind, vk.curve, vk.pub = kindEC, pub.Curve, pub
	case ed25519.PublicKey:
		if len(pub) != ed25519.PublicKeySize {
			return nil, errors.New("invalid Ed25519 key length")
		}
		vk.kind, vk.pub = kindEd25519, pub
	case []byte:
		if p.remote {
			return nil, errors.New("contains a symmetric (oct) key; a published JWKS must never contain secrets")
		}
		if len(pub) < MinHMACSecretBytes {
			return nil, fmt.Errorf("HMAC key is %d bytes, need at least %d", len(pub), MinHMACSecretBytes)
		}
		vk.kind, vk.pub = kindHMAC, pub
	default:
		return nil, fmt.Errorf("%w: key type %s", errUnusable, k.KeyType())
	}
	if vk.alg != "" {
		if err := vk.fits(vk.alg); err != nil {
			if vk.kind == kindHMAC && algorithms[vk.alg].kind == kindHMAC {
				return nil, err // a short secret is weak, not merely unusable
			}
			return nil, fmt.Errorf("%w: %v", errUnusable, err)
		}
	}
	return vk, nil
}

func checkRSA(pub *rsa.PublicKey) error {
	bits := pub.N.BitLen()
	if bits < minRSABits {
		return fmt.Errorf("RSA key is %d bits, need at least %d", bits, minRSABits)
	}
	if bits > maxRSABits {
		return fmt.Errorf("RSA key is %d bits, more than %d", bits, maxRSABits)
	}
	if pub.E < 3 || pub.E%2 == 0 {
		return fmt.Errorf("RSA public exponent %d is invalid", pub.E)
	}
	if hasROCAFingerprint(pub.N) {
		return errors.New("RSA key has the ROCA fingerprint (CVE-2017-15361); it must be replaced")
	}
	return nil
}

func checkEC(pub *ecdsa.PublicKey) error {
	switch pub.Curve {
	case elliptic.P256(), elliptic.P384(), elliptic.P521():
	default:
		return errors.New("unsupported EC curve (need P-256, P-384 or P-521)")
	}
	// ECDH() validates that the point is on the curve and not the identity.
	if _, err := pub.ECDH(); err != nil {
		return fmt.Errorf("invalid EC public key: %w", err)
	}
	return nil
}

// rocaPrimes and the subgroups generated by 65537 modulo each of them are the
// fingerprint test of Nemec et al. (CVE-2017-15361): a modulus from the
// vulnerable generator lies in that subgroup for every prime.
var rocaPrimes = []int64{3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97, 101, 103, 107, 109, 113, 127, 131, 137, 139, 149, 151, 157, 163, 167}

var rocaSubgroups = func() []map[int64]bool {
	out := make([]map[int64]bool, len(rocaPrimes))
	for i, p := range rocaPrimes {
		g := 65537 % p
		m := map[int64]bool{}
		for x := int64(1); !m[x]; x = x * g % p {
			m[x] = true
		}
		out[i] = m
	}
	return out
}()

func hasROCAFingerprint(n *big.Int) bool {
	var r, p big.Int
	for i, prime := range rocaPrimes {
		p.SetInt64(prime)
		r.Mod(n, &p)
		if !rocaSubgroups[i][r.Int64()] {
			return false
		}
	}
	return true
}

// buildKeySet checks a parsed JWKS as a whole: dangerous content fails the
// set, unusable keys are skipped (and reported in skipped), and a set with no
// usable key, duplicate kids, or secrets mixed with public keys fails.
func buildKeySet(set jwk.Set, p setPolicy) (ks *keySet, skipped []error, err error) {
	var keys []*verifyKey
	var errs []error
	for i := 0; i < set.Len(); i++ {
		k, _ := set.Key(i)
		vk, err := convertJWK(k, p)
		if errors.Is(err, errUnusable) {
			skipped = append(skipped, fmt.Errorf("key %d (kid %q): %w", i, truncate(k.KeyID(), 64), err))
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("key %d (kid %q): %w", i, truncate(k.KeyID(), 64), err))
			continue
		}
		keys = append(keys, vk)
	}
	if len(errs) > 0 {
		return nil, skipped, errors.Join(errs...)
	}
	var sym, asym bool
	for _, k := range keys {
		if k.kind == kindHMAC {
			sym = true
		} else {
			asym = true
		}
	}
	if sym && asym {
		return nil, skipped, errors.New("the set mixes symmetric (oct) keys with public keys; keep secrets and public keys apart")
	}
	if len(keys) == 0 {
		return nil, skipped, errors.New("no usable signing key (keys need use \"sig\" or none, a supported alg or none, and a supported type)")
	}
	ks, err = newKeySet(keys)
	return ks, skipped, err
}

// parseJWKS parses JWKS bytes with jwx after our own JSON checks.
func parseJWKS(data []byte, p setPolicy) (*keySet, []error, error) {
	if err := checkJSONObject(data); err != nil {
		return nil, nil, fmt.Errorf("not a valid JWKS JSON object: %w", err)
	}
	set, err := jwk.Parse(data)
	if err != nil {
		return nil, nil, fmt.Errorf("parse JWKS: %w", err)
	}
	return buildKeySet(set, p)
}

// parsePublicKeyPEM reads exactly one PEM block holding a public key (PKIX,
// PKCS#1 RSA, or an X.509 certificate). Private keys are refused.
func parsePublicKeyPEM(data []byte) (*verifyKey, error) {
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block found")
	}
	if next, _ := pem.Decode(rest); next != nil {
		return nil, errors.New("more than one PEM block; give exactly one public key or certificate")
	}
	var pub any
	var err error
	switch block.Type {
	case "PUBLIC KEY":
		pub, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		var cert *x509.Certificate
		cert, err = x509.ParseCertificate(block.Bytes)
		if err == nil {
			pub = cert.PublicKey
		}
	default:
		return nil, fmt.Errorf("PEM block %q is not a public key; give a PUBLIC KEY or CERTIFICATE (never a private key)", block.Type)
	}
	if err != nil {
		return nil, err
	}
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if err := checkRSA(k); err != nil {
			return nil, err
		}
		return &verifyKey{kind: kindRSA, pub: k}, nil
	case *ecdsa.PublicKey:
		if err := checkEC(k); err != nil {
			return nil, err
		}
		return &verifyKey{kind: kindEC, curve: k.Curve, pub: k}, nil
	case ed25519.PublicKey:
		return &verifyKey{kind: kindEd25519, pub: k}, nil
	}
	return nil, fmt.Errorf("unsupported public key type %T", pub)
}
