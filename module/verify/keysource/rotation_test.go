package keysource

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/module/verify/jose"
)

// remoteOn makes a Remote of s's /jwks with the given base refetch gap and
// waits for its first set.
func remoteOn(t *testing.T, s *idp, gap time.Duration) *Remote {
	t.Helper()
	e := env(t, nil)
	e.RefetchGap = gap
	r, err := NewRemote(Spec{Issuer: s.URL, JWKSURL: s.URL + "/jwks"}, e, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	if err := r.fetchFirst(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first fetch to end", func() bool { last, _ := r.Schedule(); return !last.IsZero() })
	return r
}

// A key published right after a fetch passes on the first request: it
// waits for the next allowed refetch instead of answering 503.
func TestNewKidWaitsForTheNextRefetch(t *testing.T) {
	s := newIdP(t)
	s.set("/jwks", jwks(t, "a"), 0)
	r := remoteOn(t, s, 300*time.Millisecond)
	s.set("/jwks", jwks(t, "a", "b"), 0)
	hits := s.hits.Load()
	ks, retry := r.UnknownKid(context.Background(), "b")
	if retry != 0 || ks == nil || ks.ByKid["b"] == nil {
		t.Fatalf("new kid: retry %s, set %v", retry, ks)
	}
	if n := s.hits.Load() - hits; n != 1 {
		t.Fatalf("fetches for one new kid: %d, want 1", n)
	}
	// Kid-less: the same refetch under the same bound.
	s.set("/jwks", jwks(t, "a", "b", "c"), 0)
	if ks, retry := r.UnknownKid(context.Background(), ""); retry != 0 || ks.ByKid["c"] == nil {
		t.Fatalf("kid-less: retry %s", retry)
	}
}

// Past the bound (the next refetch more than MaxKidWait away) the answer
// is 503 at once, with no fetch; a caller that goes away stops waiting.
func TestNewKidPastTheBoundAnswersRetryAfter(t *testing.T) {
	s := newIdP(t)
	s.set("/jwks", jwks(t, "a"), 0)
	r := remoteOn(t, s, MaxKidWait+2*time.Second)
	hits := s.hits.Load()
	if ks, retry := r.UnknownKid(context.Background(), "b"); retry <= 0 || ks.ByKid["b"] != nil {
		t.Fatalf("past the bound: retry %s", retry)
	}
	r2 := remoteOn(t, newIdPWith(t, "a"), 2*time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, retry := r2.UnknownKid(ctx, "b"); retry < time.Second {
		t.Fatalf("cancelled waiter: retry %s", retry)
	}
	if s.hits.Load() != hits {
		t.Fatal("a refused kid fetched")
	}
}

func newIdPWith(t *testing.T, kids ...string) *idp {
	s := newIdP(t)
	s.set("/jwks", jwks(t, kids...), 0)
	return s
}

// A flood of random kids shares the fetches: waiting requests join one
// fetch per gap; a real rotation afterwards still passes within the bound.
func TestRandomKidFloodCostsOneFetchPerGap(t *testing.T) {
	s := newIdPWith(t, "a")
	// A gap long beside the time to start the flood: under load the flood
	// must not straddle several gaps by accident.
	r := remoteOn(t, s, time.Second)
	hits := s.hits.Load()
	const flood = 5000
	var wg sync.WaitGroup
	var mu sync.Mutex
	found, retryLater := 0, 0
	for i := range flood {
		wg.Add(1)
		go func() {
			defer wg.Done()
			kid := fmt.Sprintf("made-up-%d", i)
			ks, retry := r.UnknownKid(context.Background(), kid)
			mu.Lock()
			defer mu.Unlock()
			if ks.ByKid[kid] != nil {
				found++
			}
			if retry > 0 {
				retryLater++ // past the bound: 503 with Retry-After
			}
		}()
	}
	wg.Wait()
	fetches := s.hits.Load() - hits
	t.Logf("%d random kids: %d fetches, %d answered retry-later, the rest final", flood, fetches, retryLater)
	if fetches > 3 || found != 0 {
		t.Fatalf("%d random kids: %d fetches (want <= 3), %d found", flood, fetches, found)
	}
	// The flood stops (no unknown kid for a base gap): the gap is back to
	// base, and a real rotation passes on its first request.
	time.Sleep(1200 * time.Millisecond)
	s.set("/jwks", jwks(t, "a", "rotated"), 0)
	if ks, retry := r.UnknownKid(context.Background(), "rotated"); retry != 0 || ks.ByKid["rotated"] == nil {
		t.Fatalf("rotation after the flood: retry %s", retry)
	}
}

// A kid the IdP dropped is answered at once with no fetch for as long as
// it stays dropped, however many fetches ago it left.
func TestRemovedKidIsRememberedWhileRemoved(t *testing.T) {
	s := newIdPWith(t, "a", "old")
	r := remoteOn(t, s, 10*time.Millisecond)
	s.set("/jwks", jwks(t, "a"), 0)
	for _, probe := range []string{"x1", "x2", "x3"} { // three fetches after the drop
		r.Backdate(time.Hour)
		r.UnknownKid(context.Background(), probe)
	}
	hits := s.hits.Load()
	r.Backdate(time.Hour)
	if ks, retry := r.UnknownKid(context.Background(), "old"); retry != 0 || ks.ByKid["old"] != nil || s.hits.Load() != hits {
		t.Fatalf("removed kid: retry %s, %d fetches", retry, s.hits.Load()-hits)
	}
	// Published again: no longer removed, and it verifies after a refetch.
	s.set("/jwks", jwks(t, "a", "old"), 0)
	r.UnknownKid(context.Background(), "x4")
	if ks, retry := r.UnknownKid(context.Background(), "old"); retry != 0 || ks.ByKid["old"] == nil {
		t.Fatalf("republished kid: retry %s", retry)
	}
}

func TestRemovedKidsAreBounded(t *testing.T) {
	var rk removedKids
	rk.update(mustSet(t, "k0", "keep"), mustSet(t, "keep")) // the oldest
	var kids []string
	for i := range maxRemovedKids + 50 {
		kids = append(kids, fmt.Sprintf("k%d", i+1))
	}
	rk.update(mustSet(t, append(kids, "keep")...), mustSet(t, "keep"))
	if rk.len() != maxRemovedKids || rk.has("k0") {
		t.Fatalf("bound: %d held, oldest kept %v", rk.len(), rk.has("k0"))
	}
	rk.update(mustSet(t, "keep"), mustSet(t, append(kids, "keep")...))
	if rk.len() != 0 {
		t.Fatalf("republished kids stay removed: %d", rk.len())
	}
}

func mustSet(t *testing.T, kids ...string) *jose.KeySet {
	t.Helper()
	ks, _, err := jose.ParseJWKS(jwks(t, kids...), jose.SetPolicy{Remote: true})
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

// What a waiting request costs: 1,000 requests with new kids wait for the
// next allowed refetch. Each holds its own goroutine (the one serving it)
// parked on a timer, and nothing else: the IdP sees one fetch on one
// connection for all of them. The figures are in the README ("Keys").
func TestWaitingRequestsHoldNoConnection(t *testing.T) {
	s := newIdPWith(t, "a")
	var conns atomic.Int64
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	r := remoteOn(t, s, time.Second) // the next refetch is a gap (1 s) after this fetch
	hits, connsBefore := s.hits.Load(), conns.Load()
	const waiters = 1000
	var before, during runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	g0 := runtime.NumGoroutine()
	var wg sync.WaitGroup
	var waited atomic.Int64
	for i := range waiters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, retry := r.UnknownKid(context.Background(), fmt.Sprintf("new-%d", i)); retry == 0 {
				waited.Add(1)
			}
		}()
	}
	time.Sleep(300 * time.Millisecond) // all parked, the gap not yet over
	runtime.ReadMemStats(&during)
	parked := runtime.NumGoroutine() - g0
	wg.Wait()
	perWaiter := (int64(during.HeapAlloc) - int64(before.HeapAlloc) + int64(during.StackInuse) - int64(before.StackInuse)) / waiters
	t.Logf("%d waiting requests: %d goroutines (their own), about %d B each (goroutine stack included), %d fetch, %d new IdP connection",
		waiters, parked, perWaiter, s.hits.Load()-hits, conns.Load()-connsBefore)
	if fetches := s.hits.Load() - hits; fetches != 1 || conns.Load()-connsBefore > 1 || waited.Load() != waiters {
		t.Fatalf("%d waiters: %d fetches, %d connections, %d waited for the refetch", waiters, fetches, conns.Load()-connsBefore, waited.Load())
	}
}
