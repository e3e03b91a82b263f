package revocation

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

// filled is a set with n entries spread over the three kinds, half of
// them narrowed by iss, none matching the benchmark token.
func filled(tb testing.TB, n int) *Set {
	s := NewSet(Options{MaxEntries: max(n, 1)})
	now := time.Now()
	for i := range n {
		var r Request
		v := fmt.Sprintf("v%07d", i)
		switch i % 3 {
		case 0:
			r.JTI = &v
		case 1:
			r.Sub = &v
		default:
			r.Tenant = &v
		}
		if i%2 == 0 {
			iss := "https://idp.example.com"
			r.Iss = &iss
		}
		mustAdd(tb, s, mustEntry(tb, r, now))
	}
	return s
}

// BenchmarkRevoked is the per-request cost of the check on a token that
// is not revoked (the common case: every lookup misses), with an empty
// set and with a flood of 100,000 entries.
func BenchmarkRevoked(b *testing.B) {
	for _, n := range []int{0, 100_000} {
		s := filled(b, n)
		t := &Token{Issuer: "https://idp.example.com", ID: "0b6f1c1e-jti", Subject: "user-42", Tenant: "acme",
			IssuedAt: time.Now().Add(-time.Minute), Expiry: time.Now().Add(9 * time.Minute)}
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, r := s.Revoked(t); r {
					b.Fatal("revoked")
				}
			}
		})
	}
}

// BenchmarkRevokedHit is the check on a revoked token (a sub hit).
func BenchmarkRevokedHit(b *testing.B) {
	s := filled(b, 100_000)
	t := &Token{Issuer: "https://other", ID: "x", Subject: "v0000001", Tenant: "acme", IssuedAt: time.Now().Add(-time.Hour)}
	b.ReportAllocs()
	for b.Loop() {
		if _, r := s.Revoked(t); !r {
			b.Fatal("not revoked")
		}
	}
}

// TestFloodMemoryIsBounded fills a set to 100,000 entries (the default
// cap) and checks the heap it takes, and that the next entry is refused.
func TestFloodMemoryIsBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("fills 100,000 entries")
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	s := filled(t, DefaultMaxEntries)
	runtime.GC()
	runtime.ReadMemStats(&after)
	perEntry := float64(after.HeapAlloc-before.HeapAlloc) / DefaultMaxEntries
	t.Logf("%d entries: %.0f bytes each, %.1f MB", s.Len(), perEntry, float64(after.HeapAlloc-before.HeapAlloc)/1e6)
	if perEntry > 1024 {
		t.Errorf("%.0f bytes per entry", perEntry)
	}
	if _, err := s.Add(mustEntry(t, Request{JTI: ptr("one-more")}, time.Now())); err == nil {
		t.Error("the entry past the cap was stored")
	}
	runtime.KeepAlive(s)
}
