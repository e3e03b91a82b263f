package keysource

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
)

// Scale goals of the key machinery (issue 18, DESIGN "Scale"): 10,000 held
// tenants in at most 64 MB and 100 goroutines.
const (
	scaleMaxBytes      = 64 << 20
	scaleMaxGoroutines = 100
)

// keyMachineryGoroutines counts the goroutines running this package's
// code (the scheduler, fetches in flight), not the test's own.
func keyMachineryGoroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "verify/keysource.") && !strings.Contains(g, "testing.tRunner") && !strings.Contains(g, "keysource.holdScale") {
			count++
		}
	}
	return count
}

// scaleIdP is a loopback IdP answering every realm with one RSA-2048 key
// (as Keycloak realms publish), counting fetches.
func scaleIdP(t testing.TB) (*httptest.Server, *atomic.Int64) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	k, err := jwk.FromRaw(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	_ = k.Set(jwk.KeyIDKey, "k1")
	_ = k.Set(jwk.AlgorithmKey, "RS256")
	set := jwk.NewSet()
	_ = set.AddKey(k)
	body, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

// scaleSpec is a multi-tenant issuer on srv admitting any tenant, holding
// up to n.
func scaleSpec(srv *httptest.Server, n int, interval time.Duration) TemplateSpec {
	return TemplateSpec{Spec: Spec{Issuer: srv.URL + "/realms/{tenant}", JWKSURL: srv.URL + "/realms/{tenant}/jwks", RefreshInterval: interval},
		Tenants: []string{AnyTenant}, MaxTenants: n}
}

// holdScale has tmpl hold tenants t0 … t(n-1), 16 first fetches at a time.
func holdScale(t testing.TB, tmpl *Template, base string, n int) {
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 16 {
				name := fmt.Sprintf("t%d", i)
				if _, e := tmpl.Lookup(context.Background(), base+"/realms/"+name, name, ""); e != nil {
					t.Error(e)
					return
				}
			}
		}()
	}
	wg.Wait()
	if tmpl.Len() != n {
		t.Fatalf("held %d tenants, want %d", tmpl.Len(), n)
	}
}

// What 1,000 and 10,000 held tenants cost the process: heap and goroutine
// stacks after a GC, goroutines in all and of the key machinery; and that
// a reload (a second config attaching, the first leaving) keeps them all
// with no fetch. The figures are in docs/multi-tenant-issuers.md.
func TestHeldTenantsAtScale(t *testing.T) {
	if testing.Short() {
		t.Skip("holds 10,000 tenants (about 10,000 loopback fetches)")
	}
	srv, hits := scaleIdP(t)
	for _, n := range []int{1000, 10000} {
		tr := &http.Transport{MaxIdleConnsPerHost: 16}
		feeds := NewFeedsWith(NoBudget) // the budget is not what is measured
		e := Env{Feeds: feeds, Client: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		g0 := runtime.NumGoroutine()
		tmpl, err := NewTemplate(scaleSpec(srv, n, time.Hour), e)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.Start()
		start := time.Now()
		holdScale(t, tmpl, srv.URL, n)
		load := time.Since(start)
		tr.CloseIdleConnections() // the transport's goroutines are not the key machinery's
		waitFor(t, "idle connections to close", func() bool { return runtime.NumGoroutine()-g0 <= 2 })
		runtime.GC()
		runtime.ReadMemStats(&after)
		heap := int64(after.HeapAlloc) - int64(before.HeapAlloc)
		stacks := int64(after.StackInuse) - int64(before.StackInuse)
		goroutines, machinery := runtime.NumGoroutine()-g0, keyMachineryGoroutines()
		t.Logf("%d tenants held: heap %+.1f MB, stacks %+.1f MB, total %.1f MB (%d B/tenant); goroutines %+d (key machinery %d); held in %s",
			n, float64(heap)/(1<<20), float64(stacks)/(1<<20), float64(heap+stacks)/(1<<20), (heap+stacks)/int64(n), goroutines, machinery, load.Round(time.Millisecond))
		if heap+stacks > scaleMaxBytes || machinery > scaleMaxGoroutines || goroutines > scaleMaxGoroutines {
			t.Errorf("%d tenants: %d bytes, %d goroutines (%d of the key machinery); goal ≤ %d bytes, ≤ %d goroutines",
				n, heap+stacks, goroutines, machinery, scaleMaxBytes, scaleMaxGoroutines)
		}

		// A reload: the new config attaches, the old one leaves. Every
		// tenant stays held, and not one is fetched again.
		fetched := hits.Load()
		reloadStart := time.Now()
		next, err := NewTemplate(scaleSpec(srv, n, time.Hour), e)
		if err != nil {
			t.Fatal(err)
		}
		next.Start()
		tmpl.Close()
		reload := time.Since(reloadStart)
		if next.Len() != n || hits.Load() != fetched {
			t.Fatalf("after a reload: %d held, %d fetches", next.Len(), hits.Load()-fetched)
		}
		h, ve := next.Lookup(context.Background(), srv.URL+"/realms/t7", "t7", "")
		if ve != nil || h.Source().Keys() == nil || hits.Load() != fetched {
			t.Fatalf("a held tenant after a reload: %v", ve)
		}
		t.Logf("%d tenants: reload (attach + leave) in %s, 0 fetches", n, reload.Round(time.Microsecond))
		next.Close()
		feeds.Close()
	}
}

// A shorter refresh_interval in a reloaded config brings every held
// tenant's refresh forward, and the one scheduler works through them with
// at most maxScheduledFetches fetches at once: goroutines stay bounded
// while thousands of tenants are due together.
func TestSchedulerRefreshesManyTenantsBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("holds 2,000 tenants")
	}
	const n = 2000
	srv, hits := scaleIdP(t)
	tr := &http.Transport{MaxIdleConnsPerHost: maxScheduledFetches}
	feeds := NewFeedsWith(NoBudget)
	t.Cleanup(feeds.Close)
	e := Env{Feeds: feeds, Client: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
	tmpl, err := NewTemplate(scaleSpec(srv, n, time.Hour), e)
	if err != nil {
		t.Fatal(err)
	}
	holdScale(t, tmpl, srv.URL, n)
	fetched := hits.Load()
	// The reload: one second instead of an hour. Every tenant is due
	// at once.
	next, err := NewTemplate(scaleSpec(srv, n, time.Second), e)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(next.Close)
	tmpl.Close()
	peak := 0
	deadline := time.Now().Add(10 * time.Second)
	for hits.Load()-fetched < n && time.Now().Before(deadline) {
		peak = max(peak, keyMachineryGoroutines())
		time.Sleep(20 * time.Millisecond)
	}
	if got := hits.Load() - fetched; got < n {
		t.Fatalf("%d of %d tenants refreshed within 10 s", got, n)
	}
	t.Logf("%d tenants refreshed at once: peak %d key-machinery goroutines", n, peak)
	if peak > maxScheduledFetches+2 {
		t.Fatalf("peak %d goroutines; at most %d scheduled fetches and the scheduler", peak, maxScheduledFetches)
	}
}
