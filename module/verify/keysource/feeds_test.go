package keysource

import (
	"context"
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

// Idle sets (no config uses them) are bounded, oldest out first; a set
// used again leaves the idle list.
func TestIdleFeedsAreBounded(t *testing.T) {
	s := NewFeeds()
	s.Close() // no fetching: only the bookkeeping is tested
	for i := range maxIdleFeeds + 10 {
		newRemote(Spec{Issuer: fmt.Sprint(i)}, newConf(Env{}, 0), s, nil).Close()
	}
	if s.Len() != maxIdleFeeds || s.idle.Len() != maxIdleFeeds {
		t.Fatalf("%d idle sets kept (%d listed)", s.Len(), s.idle.Len())
	}
	if _, ok := s.m[feedKey{issuer: "0"}]; ok {
		t.Fatal("the oldest idle set was kept")
	}
	back := newRemote(Spec{Issuer: "500"}, newConf(Env{}, 0), s, nil)
	if s.idle.Len() != maxIdleFeeds-1 || s.Len() != maxIdleFeeds {
		t.Fatalf("a set used again: %d idle, %d held", s.idle.Len(), s.Len())
	}
	back.Close()
	if s.idle.Len() != maxIdleFeeds {
		t.Fatalf("a set left again: %d idle", s.idle.Len())
	}
}

// A set that comes back into use (an evicted tenant returning, an issuer
// a reload brings back) is fetched when it is due, not at once: within the
// refresh interval of its last success it costs nothing; past it, or never
// fetched, it is fetched at once.
func TestRejoinFetchesOnlyWhenDue(t *testing.T) {
	s := newIdPWith(t, "a")
	e := env(t, nil)
	spec := Spec{Issuer: s.URL, JWKSURL: s.URL + "/jwks", RefreshInterval: 300 * time.Millisecond}
	r, err := NewRemote(spec, e, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.fetchFirst(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.Close()
	hits := s.hits.Load()
	back, _ := NewRemote(spec, e, nil)
	if _, next := back.Schedule(); time.Until(next) < 100*time.Millisecond {
		t.Fatalf("a fresh set back in use is due in %s", time.Until(next))
	}
	back.Close()
	time.Sleep(350 * time.Millisecond)
	stale, _ := NewRemote(spec, e, nil)
	defer stale.Close()
	waitFor(t, "the stale set to be fetched", func() bool { return s.hits.Load() > hits })
}
