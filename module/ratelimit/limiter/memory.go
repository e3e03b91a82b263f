package limiter

import (
	"context"
	"math"
	"time"

	"github.com/maypok86/otter/v2"
	"golang.org/x/time/rate"
)

// DefaultMaxTenants is how many tenants a memory store holds by default.
const DefaultMaxTenants = 10000

// Memory is the per-process store: one token bucket (golang.org/x/time/rate)
// per tenant and limit. Tenants live in a bounded cache (otter): a tenant
// idle long enough for every bucket to refill leaves it (its state then
// equals a fresh one, so nothing is lost), and beyond maxTenants the least
// valuable tenants leave (W-TinyLFU), so a flood of tenants costs bounded
// memory; a tenant that left starts again with full buckets.
type Memory struct {
	set   *Set
	cache *otter.Cache[string, *tenantBuckets]
	held  func(delta int)
	now   func() time.Time
}

type tenantBuckets struct {
	limiters []*rate.Limiter // by Policy.Index
}

// NewMemory makes a store for the limits of set. held, when not nil, is
// told of every tenant that enters (+1) or leaves (-1) the store.
func NewMemory(set *Set, maxTenants int, held func(delta int)) (*Memory, error) {
	if maxTenants <= 0 {
		maxTenants = DefaultMaxTenants
	}
	if held == nil {
		held = func(int) {}
	}
	m := &Memory{set: set, held: held, now: time.Now}
	c, err := otter.New(&otter.Options[string, *tenantBuckets]{
		MaximumSize:      maxTenants,
		ExpiryCalculator: otter.ExpiryAccessing[string, *tenantBuckets](set.refillTime()),
		OnDeletion:       func(otter.DeletionEvent[string, *tenantBuckets]) { held(-1) },
	})
	if err != nil {
		return nil, err
	}
	m.cache = c
	return m, nil
}

// refillTime is the longest time any bucket of the set takes to refill from
// empty: a tenant idle that long is indistinguishable from a new one.
func (s *Set) refillTime() time.Duration {
	longest := time.Second
	for _, p := range s.Policies {
		if d := time.Duration(p.Burst) * p.Period / time.Duration(p.N); d > longest {
			longest = d
		}
	}
	return longest
}

// Allow implements Store. It never fails.
func (m *Memory) Allow(_ context.Context, tenant string, p *Policy) (Result, error) {
	lim := m.buckets(tenant).limiters[p.Index]
	now := m.now()
	perSec := float64(lim.Limit())
	if lim.AllowN(now, 1) {
		tokens := lim.TokensAt(now)
		return Result{
			Allowed:    true,
			Remaining:  int(math.Max(0, math.Floor(tokens))),
			ResetAfter: seconds((float64(p.Burst) - tokens) / perSec),
		}, nil
	}
	// Ask when one token will be there, without taking it.
	r := lim.ReserveN(now, 1)
	wait := r.DelayFrom(now)
	r.CancelAt(now)
	tokens := lim.TokensAt(now)
	return Result{
		RetryAfter: wait,
		ResetAfter: seconds((float64(p.Burst) - tokens) / perSec),
	}, nil
}

func (m *Memory) buckets(tenant string) *tenantBuckets {
	if b, ok := m.cache.GetIfPresent(tenant); ok {
		return b
	}
	created := false
	b, _ := m.cache.ComputeIfAbsent(tenant, func() (*tenantBuckets, bool) {
		created = true
		return m.newBuckets(), false
	})
	if created {
		m.held(1)
	}
	return b
}

func (m *Memory) newBuckets() *tenantBuckets {
	b := &tenantBuckets{limiters: make([]*rate.Limiter, len(m.set.Policies))}
	for i, p := range m.set.Policies {
		b.limiters[i] = rate.NewLimiter(rate.Limit(float64(p.N)/p.Period.Seconds()), p.Burst)
	}
	return b
}

// Tenants is how many tenants the store holds now, after pending evictions.
func (m *Memory) Tenants() int {
	m.cache.CleanUp()
	return m.cache.EstimatedSize()
}

// Close implements Store: it drops every tenant and stops the cache's
// clean-up goroutine.
func (m *Memory) Close() error {
	m.cache.InvalidateAll()
	m.cache.StopAllGoroutines()
	return nil
}

func seconds(s float64) time.Duration {
	if s <= 0 || math.IsNaN(s) {
		return 0
	}
	return time.Duration(s * float64(time.Second))
}
