package jose

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

type KeyKind int

const (
	KindRSA KeyKind = iota + 1
	KindEC
	KindEd25519
	KindHMAC
)

func (k KeyKind) String() string {
	switch k {
	case KindRSA:
		return "RSA"
	case KindEC:
		return "EC"
	case KindEd25519:
		return "OKP Ed25519"
	case KindHMAC:
		return "oct (HMAC secret)"
	}
	return "unknown"
}

// AlgInfo says which key an algorithm needs.
type AlgInfo struct {
	Alg    jwa.SignatureAlgorithm
	Kind   KeyKind
	Curve  elliptic.Curve // EC only
	MinKey int            // HMAC only: RFC 7518 §3.2, a key at least as long as the hash
}

// algorithms is the closed set of JWS algorithms tenantgate can verify.
var algorithms = map[string]*AlgInfo{
	"RS256": {Alg: jwa.RS256, Kind: KindRSA},
	"RS384": {Alg: jwa.RS384, Kind: KindRSA},
	"RS512": {Alg: jwa.RS512, Kind: KindRSA},
	"PS256": {Alg: jwa.PS256, Kind: KindRSA},
	"PS384": {Alg: jwa.PS384, Kind: KindRSA},
	"PS512": {Alg: jwa.PS512, Kind: KindRSA},
	"ES256": {Alg: jwa.ES256, Kind: KindEC, Curve: elliptic.P256()},
	"ES384": {Alg: jwa.ES384, Kind: KindEC, Curve: elliptic.P384()},
	"ES512": {Alg: jwa.ES512, Kind: KindEC, Curve: elliptic.P521()},
	"EdDSA": {Alg: jwa.EdDSA, Kind: KindEd25519},
	"HS256": {Alg: jwa.HS256, Kind: KindHMAC, MinKey: 32},
	"HS384": {Alg: jwa.HS384, Kind: KindHMAC, MinKey: 48},
	"HS512": {Alg: jwa.HS512, Kind: KindHMAC, MinKey: 64},
}

// DefaultAlgorithms is the allow-list of token (and DPoP proof) algorithms
// when none is configured.
var DefaultAlgorithms = []string{"RS256", "ES256", "EdDSA"}

// AlgorithmNames lists the supported algorithm names, sorted.
func AlgorithmNames() []string {
	names := make([]string, 0, len(algorithms))
	for n := range algorithms {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// MinHMACSecretBytes is the shortest HMAC secret accepted (HS256; HS384 and
// HS512 need their hash's length, AlgInfo.MinKey).
const MinHMACSecretBytes = 32

// Algorithm describes the supported JWS algorithm name, nil for any other.
func Algorithm(name string) *AlgInfo { return algorithms[name] }

// Limits on keys we load.
const (
	minRSABits = 2048
	maxRSABits = 16384 // bigger keys only make verification a DoS lever
	MaxKeyBody = 1 << 20
)

// Key is one usable verification key, already checked.
type Key struct {
	Kid   string
	Alg   string // declared alg, "" when the key does not pin one
	Kind  KeyKind
	Curve elliptic.Curve
	Pub   any // *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey or []byte
}

// Fits reports why k cannot verify a token with alg, or nil when it can.
func (k *Key) Fits(alg string) error {
	info := algorithms[alg]
	if info == nil {
		return fmt.Errorf("algorithm %q is not supported", alg)
	}
	if k.Alg != "" && k.Alg != alg {
		return fmt.Errorf("the key is for %s, the token says %s", k.Alg, alg)
	}
	if k.Kind != info.Kind {
		return fmt.Errorf("%s needs a %s key, the key is %s", alg, info.Kind, k.Kind)
	}
	if info.Kind == KindEC && k.Curve != info.Curve {
		return fmt.Errorf("%s needs curve %s, the key is on %s", alg, info.Curve.Params().Name, k.Curve.Params().Name)
	}
	if info.Kind == KindHMAC {
		if n := len(k.Pub.([]byte)); n < info.MinKey {
			return fmt.Errorf("%s needs a secret of at least %d bytes, this one has %d", alg, info.MinKey, n)
		}
	}
	return nil
}

// KeySet is an immutable set of usable keys of one issuer.
type KeySet struct {
	ByKid map[string]*Key
	NoKid []*Key
	All   []*Key
}

// NewKeySet indexes keys by kid; a kid named twice is an error.
func NewKeySet(keys []*Key) (*KeySet, error) {
	s := &KeySet{ByKid: map[string]*Key{}, All: keys}
	for _, k := range keys {
		if k.Kid == "" {
			s.NoKid = append(s.NoKid, k)
			continue
		}
		if _, dup := s.ByKid[k.Kid]; dup {
			return nil, fmt.Errorf("duplicate kid %q: a key set must name each key once", Truncate(k.Kid, 64))
		}
		s.ByKid[k.Kid] = k
	}
	return s, nil
}

// SetPolicy says what a key set may contain.
type SetPolicy struct {
	// Remote sets are published: they must never carry a secret.
	Remote bool
}

// ErrUnusable marks a key that is valid but not for verifying signatures
// (use "enc", key_ops without "verify", an unknown or non-JWS alg, X25519).
// Such keys are skipped; dangerous keys fail the whole set instead.
var ErrUnusable = errors.New("key not usable for signature verification")

// ConvertJWK turns a parsed JWK into a Key, enforcing key strength.
// It returns an error wrapping errUnusable for keys to skip.
func ConvertJWK(k jwk.Key, p SetPolicy) (*Key, error) {
	vk := &Key{Kid: k.KeyID()}
	if k.KeyType() == jwa.OctetSeq && p.Remote {
		return nil, errors.New("contains a symmetric (oct) key; a published JWKS must never contain secrets")
	}
	if asym, ok := k.(jwk.AsymmetricKey); ok && asym.IsPrivate() {
		return nil, errors.New(`contains private key material ("d"); a JWKS for verification must hold public keys only`)
	}
	if u := k.KeyUsage(); u != "" && u != string(jwk.ForSignature) {
		return nil, fmt.Errorf("%w: use is %q", ErrUnusable, u)
	}
	if ops := k.KeyOps(); len(ops) > 0 && !slices.Contains(ops, jwk.KeyOpVerify) {
		return nil, fmt.Errorf("%w: key_ops lacks \"verify\"", ErrUnusable)
	}
	if a := k.Algorithm().String(); a != "" {
		if algorithms[a] == nil {
			return nil, fmt.Errorf("%w: alg %q is not a supported JWS algorithm", ErrUnusable, Truncate(a, 32))
		}
		vk.Alg = a
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
		vk.Kind, vk.Pub = KindRSA, pub
	case *ecdsa.PublicKey:
		if err := checkEC(pub); err != nil {
			return nil, err
		}
		vk.Kind, vk.Curve, vk.Pub = KindEC, pub.Curve, pub
	case ed25519.PublicKey:
		if len(pub) != ed25519.PublicKeySize {
			return nil, errors.New("invalid Ed25519 key length")
		}
		vk.Kind, vk.Pub = KindEd25519, pub
	case []byte:
		if p.Remote {
			return nil, errors.New("contains a symmetric (oct) key; a published JWKS must never contain secrets")
		}
		if len(pub) < MinHMACSecretBytes {
			return nil, fmt.Errorf("HMAC key is %d bytes, need at least %d", len(pub), MinHMACSecretBytes)
		}
		vk.Kind, vk.Pub = KindHMAC, pub
	default:
		return nil, fmt.Errorf("%w: key type %s", ErrUnusable, k.KeyType())
	}
	if vk.Alg != "" {
		if err := vk.Fits(vk.Alg); err != nil {
			if vk.Kind == KindHMAC && algorithms[vk.Alg].Kind == KindHMAC {
				return nil, err // a short secret is weak, not merely unusable
			}
			return nil, fmt.Errorf("%w: %v", ErrUnusable, err)
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

// BuildKeySet checks a parsed JWKS as a whole: dangerous content fails the
// set, unusable keys are skipped (and reported in skipped), and a set with no
// usable key, duplicate kids, or secrets mixed with public keys fails.
func BuildKeySet(set jwk.Set, p SetPolicy) (ks *KeySet, skipped []error, err error) {
	var keys []*Key
	var errs []error
	for i := 0; i < set.Len(); i++ {
		k, _ := set.Key(i)
		vk, err := ConvertJWK(k, p)
		if errors.Is(err, ErrUnusable) {
			skipped = append(skipped, fmt.Errorf("key %d (kid %q): %w", i, Truncate(k.KeyID(), 64), err))
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("key %d (kid %q): %w", i, Truncate(k.KeyID(), 64), err))
			continue
		}
		keys = append(keys, vk)
	}
	if len(errs) > 0 {
		return nil, skipped, errors.Join(errs...)
	}
	var sym, asym bool
	for _, k := range keys {
		if k.Kind == KindHMAC {
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
	ks, err = NewKeySet(keys)
	return ks, skipped, err
}

// ParseJWKS parses JWKS bytes with jwx after our own JSON checks.
func ParseJWKS(data []byte, p SetPolicy) (*KeySet, []error, error) {
	if err := CheckJSONObject(data); err != nil {
		return nil, nil, fmt.Errorf("not a valid JWKS JSON object: %w", err)
	}
	set, err := jwk.Parse(data)
	if err != nil {
		return nil, nil, fmt.Errorf("parse JWKS: %w", err)
	}
	return BuildKeySet(set, p)
}

// ParsePublicKeyPEM reads exactly one PEM block holding a public key (PKIX,
// PKCS#1 RSA, or an X.509 certificate). Private keys are refused.
func ParsePublicKeyPEM(data []byte) (*Key, error) {
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
		return &Key{Kind: KindRSA, Pub: k}, nil
	case *ecdsa.PublicKey:
		if err := checkEC(k); err != nil {
			return nil, err
		}
		return &Key{Kind: KindEC, Curve: k.Curve, Pub: k}, nil
	case ed25519.PublicKey:
		return &Key{Kind: KindEd25519, Pub: k}, nil
	}
	return nil, fmt.Errorf("unsupported public key type %T", pub)
}
