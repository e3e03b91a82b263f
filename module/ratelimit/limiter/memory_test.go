package limiter

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

func mustSet(t testing.TB, limits ...Limit) *Set {
	t.Helper()
	s, err := Compile(limits)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestMemoryBurstThenDenyThenRefill(t *testing.T) {
	s := mustSet(t, Limit{Methods: []string{"*"}, Pattern: "/**", Rate: "10/m", Burst: 3})
	m, err := NewMemory(s, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	now := time.Unix(1_700_000_000, 0)
	m.now = func() time.Time { return now }
	p := s.Policies[0]
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		res, _ := m.Allow(ctx, "acme", p)
		if !res.Allowed || res.Remaining != 2-i {
			t.Fatalf("request %d: %+v", i+1, res)
		}
	}
	res, _ := m.Allow(ctx, "acme", p)
	if res.Allowed || res.RetryAfter != 6*time.Second || res.Remaining != 0 || res.ResetAfter != 18*time.Second {
		t.Fatalf("over the burst: %+v", res)
	}
	// Another tenant has its own bucket.
	if res, _ := m.Allow(ctx, "globex", p); !res.Allowed {
		t.Fatalf("globex limited by acme's requests: %+v", res)
	}
	// A denied request took nothing: after RetryAfter exactly one passes.
	now = now.Add(6 * time.Second)
	if res, _ := m.Allow(ctx, "acme", p); !res.Allowed {
		t.Fatalf("after Retry-After: %+v", res)
	}
	if res, _ := m.Allow(ctx, "acme", p); res.Allowed {
		t.Fatalf("a second one passed: %+v", res)
	}
}

// 100,000 made-up tenants: the store holds at most max_tenants of them, and
// the held counter (the tenantgate_rate_limit_tenants gauge) says so.
func TestMemoryTenantsBounded(t *testing.T) {
	s := mustSet(t, Limit{Methods: []string{"*"}, Pattern: "/**", Rate: "100/s"})
	var held atomic.Int64
	const maxTenants = 1000
	m, err := NewMemory(s, maxTenants, func(d int) { held.Add(int64(d)) })
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := 0; i < 100_000; i++ {
		if res, _ := m.Allow(ctx, fmt.Sprintf("made-up-%d", i), s.Policies[0]); !res.Allowed {
			t.Fatalf("a fresh tenant was limited: %+v", res)
		}
	}
	if n := m.Tenants(); n > maxTenants {
		t.Fatalf("store holds %d tenants, cap %d", n, maxTenants)
	}
	waitFor(t, func() bool { return held.Load() <= maxTenants }, "held counter %d above the cap", &held)
	if held.Load() <= 0 {
		t.Fatalf("held counter %d", held.Load())
	}
	_ = m.Close()
	waitFor(t, func() bool { return held.Load() == 0 }, "held counter %d after Close", &held)
}

func waitFor(t *testing.T, ok func() bool, msg string, v *atomic.Int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf(msg, v.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRefillTime(t *testing.T) {
	s := mustSet(t,
		Limit{Methods: []string{"*"}, Pattern: "/**", Rate: "100/s", Burst: 200},
		Limit{Methods: []string{"POST"}, Pattern: "/x", Rate: "10/m", Burst: 2},
	)
	if got := s.refillTime(); got != 12*time.Second {
		t.Fatalf("refillTime = %s, want 12s", got)
	}
	if got := mustSet(t, Limit{Methods: []string{"*"}, Pattern: "/**", Rate: "1000/s"}).refillTime(); got != time.Second {
		t.Fatalf("refillTime floor = %s, want 1s", got)
	}
}
