package verify

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"
)

// BenchmarkCacheScale shows that a verified-token cache hit costs the same
// with 100 cached tokens and with 1,000,000 (issue 24: cost flat as the work
// grows), and reports the memory one cached token takes (B/token: heap growth
// over the fill, divided by the entries, after a GC).
//
// The cache is filled through put with entries shaped like real ones (an
// Identity of its own per token, with a subject, token id and two roles of
// their own), since verifying a million real tokens would take minutes.
// "hit" is a whole Verify of a real token among them; "lookup" reads a
// random entry of the fill, so the cost of touching cold memory shows.
func BenchmarkCacheScale(b *testing.B) {
	tok := mint(b, "EdDSA", keys(b).ed, "ed1", nil, claimsFor(issEd, nil))
	for _, n := range []int{100, 1_000_000} {
		v, perToken := scaleVerifier(b, tok, n)
		b.Run(fmt.Sprintf("hit/cached=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, e := v.Verify(t0ctx, Bearer(tok)); e != nil {
					b.Fatal(e)
				}
			}
			// After the loop: b.Loop's first call resets reported metrics.
			b.ReportMetric(perToken, "B/token")
		})
		b.Run(fmt.Sprintf("lookup/cached=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			i := uint64(0)
			for b.Loop() {
				i = (i + 7919) % uint64(n-1)
				if v.cache.get(fakeSum(i)) == nil {
					b.Fatal("miss")
				}
			}
		})
		v.Close()
	}
}

// BenchmarkCacheScalePaired measures the hit with 100 and with 1,000,000
// cached tokens side by side: blocks of hits alternate between the two
// verifiers, and the reported large/small is the median of each pair's
// ratio. On a shared machine, load that comes and goes moves both halves of a
// pair, so the ratio holds where two separate benchmarks' ns/op do not.
func BenchmarkCacheScalePaired(b *testing.B) {
	tok := mint(b, "EdDSA", keys(b).ed, "ed1", nil, claimsFor(issEd, nil))
	small, _ := scaleVerifier(b, tok, 100)
	large, _ := scaleVerifier(b, tok, 1_000_000)
	block := func(v *Verifier) time.Duration {
		start := time.Now()
		for range 2000 {
			if _, e := v.Verify(t0ctx, Bearer(tok)); e != nil {
				b.Fatal(e)
			}
		}
		return time.Since(start)
	}
	var ratios, smallNs, largeNs []float64
	for b.Loop() {
		s, l := block(small), block(large)
		ratios = append(ratios, float64(l)/float64(s))
		smallNs = append(smallNs, float64(s)/2000)
		largeNs = append(largeNs, float64(l)/2000)
	}
	b.ReportMetric(medianOf(ratios), "large/small")
	b.ReportMetric(medianOf(smallNs), "ns/hit-100")
	b.ReportMetric(medianOf(largeNs), "ns/hit-1M")
}

func medianOf(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// scaleVerifier is a verifier whose cache holds tok and n-1 other entries,
// with the heap bytes per entry of the fill.
func scaleVerifier(b *testing.B, tok string, n int) (*Verifier, float64) {
	b.Helper()
	cfg := baseConfig(b)
	cfg.TokenCache = entries(n + n/10)
	v := newVerifier(b, cfg)
	if _, e := v.Verify(t0ctx, Bearer(tok)); e != nil {
		b.Fatal(e)
	}
	real, ok := v.cache.c.GetIfPresent(tokenSum(tok))
	if !ok {
		b.Fatal("the real token is not cached")
	}
	perToken := fillCache(v.cache, real, n-1)
	if got := v.cache.Len(); got < n*9/10 {
		b.Fatalf("cache holds %d entries, want about %d", got, n)
	}
	return v, perToken
}

// fillCache adds count entries like like, each with an Identity of its own,
// and returns the heap bytes per entry.
func fillCache(tc *tokenCache, like *verifiedToken, count int) float64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range count {
		id := *like.id
		id.Subject = fmt.Sprintf("user-%08d", i)
		id.TokenID = fmt.Sprintf("jti-%08d-%08d", i, i)
		id.Roles = []string{"ensemble:read", "hedging:read"}
		vt := *like
		vt.id = &id
		tc.put(fakeSum(uint64(i)), &vt)
	}
	// Let otter apply the buffered writes, so no background work of the
	// fill runs during the measurement.
	tc.c.CleanUp()
	runtime.GC()
	runtime.ReadMemStats(&after)
	return float64(after.HeapAlloc-before.HeapAlloc) / float64(count)
}

func fakeSum(i uint64) [sha256.Size]byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], i)
	return sha256.Sum256(b[:])
}
