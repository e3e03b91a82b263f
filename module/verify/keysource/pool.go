package keysource

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"go.uber.org/zap"

	"github.com/tenantgate/tenantgate/module/audit"
	"github.com/tenantgate/tenantgate/module/verify/verr"
)

// tenantPool is a multi-tenant issuer's state in the process: the held
// tenants (an LRU bounded by max_tenants), the first fetches in flight,
// the remembered failures and the new-tenant budget. It lives in Feeds,
// keyed like a key feed by the issuer and key URL as configured ({tenant}
// unreplaced), and every config naming that issuer block shares it: `caddy
// reload` provisions the new config (a new Template attaches) before the
// old one goes (it detaches), so the held set, its budget and its memory
// of made-up tenants pass from one to the other with no fetch. The newest
// attached Template's settings rule (max_tenants, client, observer,
// refresh interval); the last one to detach closes the pool.
type tenantPool struct {
	key    feedKey
	feeds  *Feeds
	conf   *atomic.Pointer[sourceConf] // the newest owner's; shared by every tenant's source
	budget *budget

	mu      sync.Mutex  // makes one state per tenant; guards owners, pending, closed
	owners  []*Template // attached configs, oldest first
	held    *lru.Cache[string, *Tenant]
	pending map[string]*Tenant // first fetch in flight, not yet held
	failed  *lru.Cache[string, failure]
	closed  bool
	// shut is closed, readable where p.mu may be held (eviction): a
	// closing pool reports nothing.
	shut atomic.Bool

	closeMu sync.Mutex
	toClose []*Remote // evicted, to close outside mu

	statMu    sync.Mutex
	totalKeys int // keys of the held tenants together, for the gauges
}

// Tenant is one tenant of a multi-tenant issuer: its issuer, and its key
// source while its set is held. Tenants belong to the process's pool, not
// to a config.
type Tenant struct {
	Name   string // the tenant, from the token's iss
	Issuer string // the tenant's iss
	src    *Remote
	keys   int // keys in its set, for the gauges; under its pool's statMu
	// retired: the tenant's set was evicted or the tenant removed.
	retired atomic.Bool
}

// Source is the tenant's key source.
func (h *Tenant) Source() Source { return h.src }

// attachPool joins t to the pool of its issuer block, making the pool if
// none exists; t's settings become the pool's.
func (s *Feeds) attachPool(t *Template) (*tenantPool, error) {
	key := feedKey{issuer: t.spec.Issuer, jwksURL: t.spec.JWKSURL, discoveryURL: t.spec.OIDCDiscovery}
	s.poolMu.Lock()
	defer s.poolMu.Unlock()
	p := s.pools[key]
	if p == nil {
		p = &tenantPool{key: key, feeds: s, conf: newConf(t.env, t.spec.RefreshInterval), budget: newBudget(s.limits), pending: map[string]*Tenant{}}
		var err error
		if p.held, err = lru.NewWithEvict(t.spec.MaxTenants, p.evicted); err != nil {
			return nil, fmt.Errorf("issuer %q: max_tenants: %w", t.spec.Issuer, err)
		}
		if p.failed, err = lru.New[string, failure](negativeEntries); err != nil {
			return nil, err
		}
		s.pools[key] = p
	}
	p.mu.Lock()
	p.owners = append(p.owners, t)
	p.mu.Unlock()
	p.follow(t)
	return p, nil
}

// detachPool drops t; the last owner closes the pool (its tenants' sources
// leave the Feeds, whose sets stay idle for a return).
func (s *Feeds) detachPool(p *tenantPool, t *Template) {
	s.poolMu.Lock()
	p.mu.Lock()
	for i, o := range p.owners {
		if o == t {
			p.owners = append(p.owners[:i], p.owners[i+1:]...)
			break
		}
	}
	var newest *Template
	if len(p.owners) > 0 {
		newest = p.owners[len(p.owners)-1]
	} else {
		p.closed = true
		p.shut.Store(true)
		delete(s.pools, p.key)
	}
	p.mu.Unlock()
	s.poolMu.Unlock()
	if newest != nil {
		p.follow(newest)
		return
	}
	p.held.Purge() // evicts each: retired, queued for closing
	p.closeEvicted()
}

// follow takes t's settings: its max_tenants (the least recently used
// leave when it is lower), its client, observer and refresh interval for
// every tenant's next fetch (a shorter interval brings them forward).
func (p *tenantPool) follow(t *Template) {
	prev := p.conf.Load().interval
	interval := t.spec.RefreshInterval
	if interval <= 0 {
		interval = DefaultRefreshInterval
	}
	p.conf.Store(&sourceConf{env: t.env, interval: interval})
	p.held.Resize(t.spec.MaxTenants)
	p.closeEvicted()
	if interval < prev {
		for _, h := range p.held.Values() {
			h.src.feed.sooner(interval)
		}
	}
}

// env is the newest owner's environment.
func (p *tenantPool) env() Env { return p.conf.Load().env }

// lookup returns tenant's state, fetching its keys on first use. A repeat
// of a remembered failure costs no fetch; a tenant whose keys the process
// does not hold spends the new-tenant budget of client first. A tenant
// enters the held set only once its keys have arrived, so made-up tenants
// never push real ones out.
func (p *tenantPool) lookup(ctx context.Context, t *Template, iss, tenant, client string) (*Tenant, *verr.Error) {
	if h, ok := p.held.Get(tenant); ok {
		return h, nil
	}
	// A failure past its time is kept until the next outcome: a
	// temporary failure's count sets the next backoff.
	now := p.env().Now()
	if f, ok := p.failed.Get(tenant); ok && now.Before(f.until) {
		return nil, f.answer(now)
	}
	spec := t.tenantSpec(iss, tenant)
	p.mu.Lock()
	if h, ok := p.held.Get(tenant); ok {
		p.mu.Unlock()
		return h, nil
	}
	h, ok := p.pending[tenant]
	if !ok {
		if p.closed {
			p.mu.Unlock()
			return nil, verr.New(audit.ReasonKeysUnavailable, fmt.Sprintf("signing keys of issuer %q could not be set up", iss), fmt.Errorf("the config holding this issuer was unloaded"))
		}
		if !p.feeds.holds(feedKey{issuer: spec.Issuer, jwksURL: spec.JWKSURL, discoveryURL: spec.OIDCDiscovery}) {
			if scope, retry := p.budget.spend(client, now); scope != "" {
				p.mu.Unlock()
				p.env().budgetRefused(p.key.issuer)
				return nil, p.refusal(scope, retry)
			}
		}
		h = &Tenant{Name: tenant, Issuer: iss}
		h.src = newRemote(spec, p.conf, p.feeds, func(ok bool, keys int, at time.Time, class string) {
			p.tenantKeys(h, ok, keys, at, class)
		})
		p.pending[tenant] = h
	}
	p.mu.Unlock()
	return p.first(ctx, h)
}

// refusal is the 503 of a request the new-tenant budget refused: it says
// whose share was empty, and when it has room again.
func (p *tenantPool) refusal(scope string, retry time.Duration) *verr.Error {
	l := p.budget.limits
	var detail string
	if scope == budgetClient {
		detail = fmt.Sprintf("issuer %q: new-tenant budget spent by this client address (keys of at most %d tenants not seen before are fetched at once per client address, then one per %s); retry in %s",
			p.key.issuer, l.ClientBurst, l.ClientEvery, retryCeil(retry))
	} else {
		detail = fmt.Sprintf("issuer %q: new-tenant budget spent (keys of at most %d tenants not seen before are fetched at once, then one per %s); retry in %s",
			p.key.issuer, l.Burst, l.Every, retryCeil(retry))
	}
	e := verr.New(audit.ReasonKeysUnavailable, detail, nil)
	e.RetryAfter = max(retry, time.Second)
	return e
}

// first waits for a tenant's first key set (joining a fetch in flight).
// On success the tenant enters the held set, which may evict the least
// recently used one; on failure the failure is remembered, so a made-up
// tenant costs one fetch per TTL.
func (p *tenantPool) first(ctx context.Context, h *Tenant) (*Tenant, *verr.Error) {
	err := h.src.fetchFirst(ctx)
	if ks := h.src.Keys(); ks != nil {
		p.mu.Lock()
		late := false
		if p.pending[h.Name] == h {
			delete(p.pending, h.Name)
			p.failed.Remove(h.Name)
			if late = p.closed; !late {
				p.held.Add(h.Name, h)
				p.countKeys(h, len(ks.All))
			}
		}
		p.mu.Unlock()
		if late {
			h.src.Close() // the pool closed while the fetch ran
		}
		p.closeEvicted()
		return h, nil
	}
	if ctx.Err() != nil {
		// The caller went away; the fetch goes on for the next one.
		return nil, verr.New(audit.ReasonKeysUnavailable, fmt.Sprintf("signing keys of issuer %q are being fetched; retry shortly", h.Issuer), ctx.Err())
	}
	fails := 1
	if prev, ok := p.failed.Peek(h.Name); ok && prev.err.Reason == audit.ReasonKeysUnavailable {
		fails = prev.fails + 1
	}
	var e *verr.Error
	var ttl time.Duration
	if unknownTenant(err) {
		e = verr.New(audit.ReasonUnknownIssuer, fmt.Sprintf("the identity provider of issuer %q knows no tenant %q (%v)", p.key.issuer, h.Name, err), err)
		ttl, fails = NegativeTTLUnknown, 0
	} else {
		class, asked := classify(err)
		ttl = tenantBackoff(fails)
		if asked > 0 {
			ttl = asked // the IdP said when; bounded by maxIdPRetryAfter
		}
		e = verr.New(audit.ReasonKeysUnavailable, fmt.Sprintf("signing keys of issuer %q could not be fetched: %s; retry in %s", h.Issuer, describe(class), retryCeil(ttl)), err)
		e.RetryAfter = ttl
	}
	p.env().Logger.Debug("tenant key set unavailable", zap.String("issuer", h.Issuer), zap.Duration("remembered_for", ttl), zap.Error(err))
	p.mu.Lock()
	mine := p.pending[h.Name] == h
	if mine {
		delete(p.pending, h.Name)
		p.failed.Add(h.Name, failure{err: e, until: p.env().Now().Add(ttl), fails: fails})
	}
	p.mu.Unlock()
	if mine {
		// Not under p.mu: closing waits for the source's fetches, whose
		// reports take p.mu.
		h.src.Close()
	}
	return nil, e
}

// evicted runs when a tenant leaves the held set (least recently used
// past max_tenants, removal from the tenant list, the pool's close): its
// source closes and it no longer counts in the gauges.
func (p *tenantPool) evicted(_ string, h *Tenant) {
	h.retired.Store(true)
	// Eviction may run under p.mu (held.Add in first), and closing waits
	// for the source's fetches, whose reports take p.mu: the caller closes
	// it once p.mu is released (closeEvicted).
	p.closeMu.Lock()
	p.toClose = append(p.toClose, h.src)
	p.closeMu.Unlock()
	p.statMu.Lock()
	p.totalKeys -= h.keys
	h.keys = 0
	total := p.totalKeys
	p.statMu.Unlock()
	if !p.shut.Load() {
		p.env().tenants(p.key.issuer, p.held.Len(), total)
	}
}

// closeEvicted closes the sources of the tenants evicted so far: each
// leaves the process's Feeds (off the scheduler when it was the last user;
// its last keys stay there, idle, for a return of the tenant).
func (p *tenantPool) closeEvicted() {
	p.closeMu.Lock()
	list := p.toClose
	p.toClose = nil
	p.closeMu.Unlock()
	for _, src := range list {
		src.Close()
	}
}

// drop evicts the tenants t no longer admits (they left its tenants_file).
func (p *tenantPool) drop(t *Template, gone []string) {
	for _, tenant := range gone {
		if !t.tenants.admits(tenant) {
			p.held.Remove(tenant)
		}
	}
	p.closeEvicted()
}

// tenantKeys records a held tenant's refresh outcome under the issuer
// block's name: one metrics series per issuer block, not one per tenant.
// The first fetch (before the tenant is held) is counted too.
func (p *tenantPool) tenantKeys(h *Tenant, ok bool, keys int, at time.Time, class string) {
	p.mu.Lock()
	cur, held := p.held.Peek(h.Name)
	owned := held && cur == h
	if owned && ok {
		p.countKeys(h, keys)
	}
	pending := p.pending[h.Name] == h
	p.mu.Unlock()
	env := p.env()
	if (owned || pending) && !p.shut.Load() {
		env.refresh(p.key.issuer, ok, p.keyCount(), at)
	}
	// Counted whoever holds the tenant now: a first fetch's failure is
	// reported after its requests were answered (the tenant no longer
	// pending), and it did fail.
	env.temporary(p.key.issuer, class)
}

// countKeys sets a held tenant's key count and publishes the gauges.
func (p *tenantPool) countKeys(h *Tenant, keys int) {
	p.statMu.Lock()
	p.totalKeys += keys - h.keys
	h.keys = keys
	total := p.totalKeys
	p.statMu.Unlock()
	if !p.shut.Load() {
		p.env().tenants(p.key.issuer, p.held.Len(), total)
	}
}

// publish reports the held set as it is (a config that attaches starts
// with the tenants its predecessor held).
func (p *tenantPool) publish() {
	if !p.shut.Load() {
		p.env().tenants(p.key.issuer, p.held.Len(), p.keyCount())
	}
}

func (p *tenantPool) keyCount() int {
	p.statMu.Lock()
	defer p.statMu.Unlock()
	return p.totalKeys
}

// HeldTenants is the number of tenants' key sets held over every
// multi-tenant issuer of the process.
func (s *Feeds) HeldTenants() int {
	s.poolMu.Lock()
	defer s.poolMu.Unlock()
	n := 0
	for _, p := range s.pools {
		n += p.held.Len()
	}
	return n
}
