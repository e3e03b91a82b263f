package keysource

import (
	"net/netip"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"
)

// The new-tenant budget of a multi-tenant issuer: how many first fetches
// of tenants whose keys the process does not hold may start. It is spent
// twice, per issuer and per client address, so that one client flooding
// made-up tenants spends its own share and leaves the rest of the issuer's
// budget to everyone else. A tenant whose keys the process holds never
// spends it. It lives with the issuer's held set in the process (pool.go),
// so a reload neither refills nor forgets it.
//
// These bounds are documented (README "Multi-tenant issuers",
// docs/multi-tenant-issuers.md): change them together.
const (
	// NewTenantBurst first fetches at once per issuer, then one per
	// NewTenantEvery.
	NewTenantBurst = 10
	NewTenantEvery = time.Second
	// NewTenantClientBurst first fetches at once per client address, then
	// one per NewTenantClientEvery: half the issuer's rate, so a single
	// client can never keep the issuer's budget empty.
	NewTenantClientBurst = 5
	NewTenantClientEvery = 2 * time.Second
	// budgetClients bounds the client addresses remembered per issuer
	// (least recently seen leave, and come back with a full share; the
	// issuer's budget still bounds them all together).
	budgetClients = 4096
)

// Budget scopes: which share a refused request found empty.
const (
	budgetClient = "client"
	budgetIssuer = "issuer"
)

// Limits are the new-tenant budget's rates. Tests and benchmarks that hold
// thousands of tenants lift them (NoBudget); a config never changes them.
type Limits struct {
	Burst       int
	Every       time.Duration
	ClientBurst int
	ClientEvery time.Duration
}

// DefaultLimits are the documented bounds.
var DefaultLimits = Limits{Burst: NewTenantBurst, Every: NewTenantEvery, ClientBurst: NewTenantClientBurst, ClientEvery: NewTenantClientEvery}

// NoBudget lets every first fetch start: for measurements only.
var NoBudget = Limits{}

type budget struct {
	limits Limits
	issuer *rate.Limiter

	mu      sync.Mutex
	clients *lru.Cache[string, *rate.Limiter]
}

func newBudget(l Limits) *budget {
	b := &budget{limits: l}
	if l.Burst > 0 {
		b.issuer = rate.NewLimiter(rate.Every(l.Every), l.Burst)
		b.clients, _ = lru.New[string, *rate.Limiter](budgetClients)
	}
	return b
}

// spend takes one first fetch from client's share and from the issuer's.
// It returns "" when both had one, else the scope that had none and when
// it will have one again; a refusal by the issuer gives the client's
// share back.
func (b *budget) spend(client string, now time.Time) (refusedBy string, retry time.Duration) {
	if b.issuer == nil {
		return "", 0
	}
	c := b.client(clientKey(client))
	mine := c.ReserveN(now, 1)
	if d := mine.DelayFrom(now); d > 0 {
		mine.CancelAt(now)
		return budgetClient, d
	}
	all := b.issuer.ReserveN(now, 1)
	if d := all.DelayFrom(now); d > 0 {
		all.CancelAt(now)
		mine.CancelAt(now)
		return budgetIssuer, d
	}
	return "", 0
}

func (b *budget) client(key string) *rate.Limiter {
	b.mu.Lock()
	defer b.mu.Unlock()
	c, ok := b.clients.Get(key)
	if !ok {
		c = rate.NewLimiter(rate.Every(b.limits.ClientEvery), b.limits.ClientBurst)
		b.clients.Add(key, c)
	}
	return c
}

// clientKey is whose share a client address spends: the address itself,
// or for IPv6 its /64, the block one host or customer usually holds whole
// (an attacker with a /64 would otherwise have 2^64 shares). An address
// that does not parse (none given) shares one key.
func clientKey(addr string) string {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return addr
	}
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}
