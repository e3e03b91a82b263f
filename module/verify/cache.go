package verify

import (
	"crypto"
	"crypto/sha256"
	"crypto/subtle"
	"time"
	"unsafe"

	"github.com/maypok86/otter/v2"

	"github.com/tenantgate/tenantgate/module/verify/jose"
)

// MaxCachedTokenBytes is the longest token the verified-token cache keeps.
// The cache holds only a hash of the token, but the Identity it keeps grows
// with the token (roles): the bound keeps a full cache within a few tens of
// megabytes. Longer tokens are verified every time.
const MaxCachedTokenBytes = 4096

// CacheObserver learns of every verified-token cache lookup (the gate turns
// them into Prometheus counters). It must be cheap and safe for concurrent use.
type CacheObserver interface {
	TokenCacheLookup(hit bool)
}

// verifiedToken is what a successful verification established about one
// token, the value of the verified-token cache. It is immutable once made:
// a cache hit shares it between requests.
type verifiedToken struct {
	id *Identity
	is *issuerState
	// hdr is the token's protected header (alg, kid, typ): properties of
	// the token that per-request checks may still judge.
	hdr jose.Header
	// set and key are the key set in force and the key of it that verified
	// the signature; a hit checks that the key is still in the issuer's set.
	set *jose.KeySet
	key *jose.Key
	// times as jwt.Validate saw them; zero when absent.
	exp, nbf, iat time.Time
}

// tokenCache maps the SHA-256 of the exact token bytes to what verifying
// it established. The hash of the exact bytes determines the token's iss
// too, so the issuer needs no part of its own in the key: it is in the
// value, and a hit re-checks the key against that issuer's current set.
type tokenCache struct {
	c   *otter.Cache[[sha256.Size]byte, *verifiedToken]
	obs CacheObserver
}

func newTokenCache(size int, leeway time.Duration, now func() time.Time, obs CacheObserver) *tokenCache {
	return &tokenCache{
		obs: obs,
		c: otter.Must(&otter.Options[[sha256.Size]byte, *verifiedToken]{
			MaximumSize: size,
			// An entry leaves once its token can no longer pass the exp
			// check; hits re-check the times anyway, this only frees memory.
			ExpiryCalculator: otter.ExpiryCreatingFunc(func(e otter.Entry[[sha256.Size]byte, *verifiedToken]) time.Duration {
				return e.Value.exp.Add(leeway + time.Second).Sub(now())
			}),
		}),
	}
}

// get returns the entry of token, or nil. An entry whose key left the
// issuer's set is removed and reported as a miss.
func (tc *tokenCache) get(sum [sha256.Size]byte) *verifiedToken {
	t, ok := tc.c.GetIfPresent(sum)
	if ok && !t.keyStillTrusted() {
		tc.c.Invalidate(sum)
		ok = false
	}
	if tc.obs != nil {
		tc.obs.TokenCacheLookup(ok)
	}
	if !ok {
		return nil
	}
	return t
}

func (tc *tokenCache) put(sum [sha256.Size]byte, t *verifiedToken) { tc.c.Set(sum, t) }

// Len is the number of entries (an estimate while entries come and go).
func (tc *tokenCache) Len() int { return tc.c.EstimatedSize() }

func (tc *tokenCache) close() {
	tc.c.InvalidateAll()
	tc.c.StopAllGoroutines()
}

// keyStillTrusted reports whether the key that verified t would still be
// chosen, by the same rules as candidates (verify.go), from the issuer's current set. A
// refresh builds new key objects, so keys are compared by kid and by the
// public key itself, not by pointer.
func (t *verifiedToken) keyStillTrusted() bool {
	if !t.is.live() {
		return false // a tenant's key set left its issuer: verify afresh
	}
	cur := t.is.src.Keys()
	if cur == nil {
		return false
	}
	if cur == t.set {
		return true
	}
	if t.hdr.Kid != "" {
		if k := cur.ByKid[t.hdr.Kid]; k != nil {
			return sameKey(k, t.key)
		}
		for _, k := range cur.NoKid {
			if sameKey(k, t.key) {
				return true
			}
		}
		return false
	}
	for _, k := range cur.All {
		if sameKey(k, t.key) {
			return true
		}
	}
	return false
}

func sameKey(a, b *jose.Key) bool {
	if a.Kid != b.Kid || a.Alg != b.Alg || a.Kind != b.Kind {
		return false
	}
	if sa, ok := a.Pub.([]byte); ok {
		sb, ok := b.Pub.([]byte)
		return ok && subtle.ConstantTimeCompare(sa, sb) == 1
	}
	pa, ok := a.Pub.(interface{ Equal(crypto.PublicKey) bool })
	return ok && pa.Equal(b.Pub)
}

// tokenSum is the cache key of a token: the SHA-256 of its exact bytes.
// The string's bytes are hashed where they are (Sum256 only reads them),
// instead of being copied into a buffer first.
func tokenSum(token string) [sha256.Size]byte {
	// #nosec G103 -- a read-only view of the string's bytes, not kept
	return sha256.Sum256(unsafe.Slice(unsafe.StringData(token), len(token)))
}

// CachedTokens is the number of entries in the verified-token cache (0 when
// it is off); an estimate while entries are being added or evicted.
func (v *Verifier) CachedTokens() int {
	if v.cache == nil {
		return 0
	}
	return v.cache.Len()
}
