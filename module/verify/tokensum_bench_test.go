package verify

import (
	"crypto/sha256"
	"strings"
	"testing"
)

// BenchmarkTokenSum is the cache key of a typical RS256 token (about 800
// bytes), computed on every request before the cache lookup.
func BenchmarkTokenSum(b *testing.B) {
	tok := strings.Repeat("eyJhbGciOiJSUzI1NiJ9.", 40)
	b.ReportAllocs()
	for b.Loop() {
		_ = tokenSum(tok)
	}
}

// The key is the SHA-256 of the token's exact bytes, for every length the
// cache takes.
func TestTokenSumIsSHA256(t *testing.T) {
	for _, n := range []int{0, 1, 31, 32, 33, 800, MaxCachedTokenBytes} {
		tok := strings.Repeat("a.b-", n/4+1)[:n]
		if got, want := tokenSum(tok), sha256.Sum256([]byte(tok)); got != want {
			t.Errorf("len %d: %x, want %x", n, got, want)
		}
	}
}
