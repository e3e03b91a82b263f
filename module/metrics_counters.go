package tenantgate

import (
	"maps"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tenantgate/tenantgate/module/audit"
)

// maxCachedCounters bounds requestCounters' map: decisions × reasons ×
// tenants seen. Past it, requests take the CounterVec's own lookup; the
// copy-on-write map would otherwise cost a copy per new combination.
const maxCachedCounters = 4096

// counterKey is one series of tenantgate_requests_total, by the raw
// tenant (its label, capped, is computed once when the key is added).
type counterKey struct {
	d      audit.Decision
	r      audit.Reason
	tenant string
}

// requestCounters keeps the counter of each series a request has named, so
// a request costs one map read instead of the CounterVec's label hashing,
// lock and the tenant-cap lookup. The map is immutable behind an atomic
// pointer: readers take no lock; a new series copies it under mu.
type requestCounters struct {
	vec     *prometheus.CounterVec
	tenants *tenantLabels
	m       atomic.Pointer[map[counterKey]prometheus.Counter]
	mu      sync.Mutex
}

func newRequestCounters(vec *prometheus.CounterVec, tenants *tenantLabels) *requestCounters {
	c := &requestCounters{vec: vec, tenants: tenants}
	c.m.Store(&map[counterKey]prometheus.Counter{})
	return c
}

func (c *requestCounters) get(k counterKey) prometheus.Counter {
	if ctr, ok := (*c.m.Load())[k]; ok {
		return ctr
	}
	label := c.tenants.label(k.tenant)
	ctr := c.vec.WithLabelValues(string(k.d), string(k.r), label)
	// A tenant that keeps its own series keeps it for the process's life,
	// so its counter can be cached; one counted as _other may get its own
	// series after a reload raises the cap, so it is looked up every time.
	if label == tenantOther {
		return ctr
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	cur := *c.m.Load()
	if len(cur) >= maxCachedCounters {
		return ctr
	}
	next := maps.Clone(cur)
	next[k] = ctr
	c.m.Store(&next)
	return ctr
}
