package keysource

import (
	"fmt"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/module/verify/jose"
)

func TestBackoffAndGapSteps(t *testing.T) {
	var got []time.Duration
	b := time.Duration(0)
	for range 6 {
		b = nextBackoff(b, time.Hour)
		got = append(got, b)
	}
	if fmt.Sprint(got) != "[1s 2s 4s 5s 5s 5s]" {
		t.Fatalf("backoff %v", got)
	}
	if b := nextBackoff(0, 300*time.Millisecond); b != 300*time.Millisecond {
		t.Fatalf("backoff longer than the refresh interval: %v", b)
	}
	ks := &jose.KeySet{ByKid: map[string]*jose.Key{"k2": {}}}
	if g := nextGap(2*time.Second, 2*time.Second, ks, map[string]struct{}{"x": {}}); g != 4*time.Second {
		t.Fatalf("fruitless refetch: gap %v", g)
	}
	if g := nextGap(16*time.Second, 2*time.Second, ks, map[string]struct{}{"x": {}}); g != maxRefetchGap {
		t.Fatalf("gap beyond its cap: %v", g)
	}
	if g := nextGap(16*time.Second, 2*time.Second, ks, map[string]struct{}{"k2": {}}); g != 2*time.Second {
		t.Fatalf("a refetch that found its kid should reset the gap: %v", g)
	}
}

// Idle sets (no config uses them) are bounded.
func TestIdleFeedsAreBounded(t *testing.T) {
	s := NewFeeds()
	base := time.Now()
	for i := range maxIdleFeeds + 10 {
		key := feedKey{issuer: fmt.Sprint(i)}
		s.m[key] = &keyFeed{key: key, idleSince: base.Add(time.Duration(i) * time.Second)}
	}
	s.evictIdleLocked()
	if len(s.m) != maxIdleFeeds {
		t.Fatalf("%d idle sets kept", len(s.m))
	}
	if _, ok := s.m[feedKey{issuer: "0"}]; ok {
		t.Fatal("the oldest idle set was kept")
	}
}
