package verify

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/tenantgate/tenantgate/module/audit"
)

// Bounds of a multi-tenant issuer. They are part of the documented
// behaviour (README "Multi-tenant issuers"): change both together.
const (
	// With `tenants *`, key fetches for tenants whose key set is not held
	// start at most NewTenantBurst at once, then one per NewTenantEvery,
	// per issuer template. A request over the bound gets keys_unavailable.
	NewTenantBurst = 10
	NewTenantEvery = time.Second
	// A tenant whose key or discovery URL answered 4xx (the IdP has no such
	// tenant) is answered unknown_issuer from memory for NegativeTTLUnknown;
	// any other failed first fetch is remembered for NegativeTTLFailed, so
	// an IdP outage does not keep a real tenant out for long.
	NegativeTTLUnknown = time.Minute
	NegativeTTLFailed  = 5 * time.Second
	// negativeEntries bounds the memory of failed tenants per template.
	negativeEntries = 4096
)

// firstFetcher is a key source a request can wait on for its first set.
type firstFetcher interface {
	fetchFirst(ctx context.Context) error
}

// templateIssuer is one issuer block whose URL holds {tenant}: one key set
// per tenant, fetched on first use, at most MaxTenants held at once.
type templateIssuer struct {
	v              *Verifier
	cfg            IssuerConfig // as configured, {tenant} unreplaced
	prefix, suffix string       // iss = prefix + tenant + suffix
	tenants        *tenantList

	held    *lru.Cache[string, *issuerState] // evicting stops the source
	failed  *lru.Cache[string, failure]      // negative cache
	limiter *rate.Limiter                    // only with tenants *

	mu      sync.Mutex              // makes one state per tenant; guards pending
	pending map[string]*issuerState // first fetch in flight, not yet held

	closeMu sync.Mutex
	toClose []keySource // evicted, to close outside mu

	statMu    sync.Mutex
	keysOf    map[string]int // keys per held tenant, for the gauges
	totalKeys int
}

// failure is a remembered failed first fetch.
type failure struct {
	err   *Error
	until time.Time
}

func (v *Verifier) newTemplate(ic IssuerConfig) (*templateIssuer, error) {
	i := strings.Index(ic.Issuer, TenantPlaceholder)
	t := &templateIssuer{
		v:       v,
		cfg:     ic,
		prefix:  ic.Issuer[:i],
		suffix:  ic.Issuer[i+len(TenantPlaceholder):],
		keysOf:  map[string]int{},
		pending: map[string]*issuerState{},
	}
	var err error
	if t.tenants, err = newTenantList(ic.Tenants, ic.TenantsFile); err != nil {
		return nil, fmt.Errorf("issuer %q: %w", ic.Issuer, err)
	}
	if t.tenants.any {
		t.limiter = rate.NewLimiter(rate.Every(NewTenantEvery), NewTenantBurst)
	}
	if t.held, err = lru.NewWithEvict(ic.MaxTenants, t.evicted); err != nil {
		return nil, fmt.Errorf("issuer %q: max_tenants: %w", ic.Issuer, err)
	}
	if t.failed, err = lru.New[string, failure](negativeEntries); err != nil {
		return nil, err
	}
	return t, nil
}

// match extracts the tenant from iss when iss has this template's shape.
// A shape match with a value that is not a tenant name is no match: that
// value never reaches a URL.
func (t *templateIssuer) match(iss string) (string, bool) {
	if len(iss) <= len(t.prefix)+len(t.suffix) || !strings.HasPrefix(iss, t.prefix) || !strings.HasSuffix(iss, t.suffix) {
		return "", false
	}
	tenant := iss[len(t.prefix) : len(iss)-len(t.suffix)]
	return tenant, ValidTenant(tenant)
}

// lookup returns the state of tenant's realm, fetching its keys on first
// use. A tenant not admitted costs no fetch at all; nor does a repeat of a
// remembered failure. A tenant enters the cache only once its keys have
// arrived, so made-up tenants never push real ones out.
func (t *templateIssuer) lookup(ctx context.Context, iss, tenant string) (*issuerState, *Error) {
	if !t.tenants.admits(tenant) {
		return nil, fail(audit.ReasonUnknownIssuer, fmt.Sprintf("issuer %q is configured for some tenants only, and %q is not one of them", t.cfg.Issuer, tenant), nil)
	}
	if is, ok := t.held.Get(tenant); ok {
		return is, nil
	}
	if f, ok := t.failed.Get(tenant); ok {
		if time.Now().Before(f.until) {
			return nil, f.err
		}
		t.failed.Remove(tenant)
	}
	t.mu.Lock()
	if is, ok := t.held.Get(tenant); ok {
		t.mu.Unlock()
		return is, nil
	}
	is, ok := t.pending[tenant]
	if !ok {
		if t.limiter != nil && !t.limiter.Allow() {
			t.mu.Unlock()
			return nil, fail(audit.ReasonKeysUnavailable, fmt.Sprintf("issuer %q: too many tenants not seen before at once (keys of at most %d are fetched at once, then one per %s); retry shortly", t.cfg.Issuer, NewTenantBurst, NewTenantEvery), nil)
		}
		var err error
		if is, err = t.newTenantState(iss, tenant); err != nil {
			t.mu.Unlock()
			return nil, fail(audit.ReasonKeysUnavailable, fmt.Sprintf("signing keys of issuer %q could not be set up", iss), err)
		}
		t.pending[tenant] = is
	}
	t.mu.Unlock()
	return t.first(ctx, tenant, is)
}

// newTenantState builds a tenant's issuer with the constructor every
// remote issuer uses; its refresh outcomes count under the template.
func (t *templateIssuer) newTenantState(iss, tenant string) (*issuerState, error) {
	ic := t.cfg
	ic.Issuer = iss
	ic.JWKSURL = strings.Replace(ic.JWKSURL, TenantPlaceholder, tenant, 1)
	ic.OIDCDiscovery = strings.Replace(ic.OIDCDiscovery, TenantPlaceholder, tenant, 1)
	ic.Tenants, ic.TenantsFile, ic.MaxTenants = nil, "", 0
	is := t.v.newIssuerState(ic)
	is.tenant, is.template = tenant, t
	src, err := t.v.newSource(ic, func(ok bool, keys int, at time.Time) { t.tenantKeys(tenant, is, ok, keys, at) })
	if err != nil {
		return nil, err
	}
	is.src = src
	return is, nil
}

// first waits for a tenant's first key set (joining a fetch in flight).
// On success the tenant enters the cache, which may evict the least
// recently used one, and its refresh loop starts; on failure the failure
// is remembered, so a made-up tenant costs one fetch per TTL.
func (t *templateIssuer) first(ctx context.Context, tenant string, is *issuerState) (*issuerState, *Error) {
	var err error
	if ff, ok := is.src.(firstFetcher); ok {
		err = ff.fetchFirst(ctx)
	}
	if is.src.keys() != nil {
		t.mu.Lock()
		if t.pending[tenant] == is {
			delete(t.pending, tenant)
			t.held.Add(tenant, is)
			t.countKeys(tenant, len(is.src.keys().all))
			is.src.start()
		}
		t.mu.Unlock()
		t.closeEvicted()
		return is, nil
	}
	if ctx.Err() != nil {
		// The caller went away; the fetch goes on for the next one.
		return nil, fail(audit.ReasonKeysUnavailable, fmt.Sprintf("signing keys of issuer %q are being fetched; retry shortly", is.cfg.Issuer), ctx.Err())
	}
	e, ttl := fail(audit.ReasonKeysUnavailable, fmt.Sprintf("signing keys of issuer %q could not be fetched; retry shortly", is.cfg.Issuer), err), NegativeTTLFailed
	var se *statusError
	if errors.As(err, &se) && se.code >= 400 && se.code < 500 {
		e = fail(audit.ReasonUnknownIssuer, fmt.Sprintf("the identity provider of issuer %q knows no tenant %q (its key URL answered %d)", t.cfg.Issuer, tenant, se.code), err)
		ttl = NegativeTTLUnknown
	}
	t.v.cfg.Logger.Debug("tenant key set unavailable", zap.String("issuer", is.cfg.Issuer), zap.Duration("remembered_for", ttl), zap.Error(err))
	t.mu.Lock()
	mine := t.pending[tenant] == is
	if mine {
		delete(t.pending, tenant)
		t.failed.Add(tenant, failure{err: e, until: time.Now().Add(ttl)})
	}
	t.mu.Unlock()
	if mine {
		// Not under t.mu: closing waits for the source's fetches, whose
		// reports take t.mu.
		is.src.close()
	}
	return nil, e
}

// evicted runs when a tenant's state leaves the cache (least recently
// used past MaxTenants, a failed first fetch, or removal from the tenant
// list): its refresh loop stops and it no longer counts in the gauges.
func (t *templateIssuer) evicted(tenant string, is *issuerState) {
	is.retired.Store(true)
	// Eviction may run under t.mu (held.Add in first), and closing waits
	// for the source's fetches, whose reports take t.mu: the caller closes
	// it once t.mu is released (closeEvicted).
	t.closeMu.Lock()
	t.toClose = append(t.toClose, is.src)
	t.closeMu.Unlock()
	t.statMu.Lock()
	t.totalKeys -= t.keysOf[tenant]
	delete(t.keysOf, tenant)
	total := t.totalKeys
	t.statMu.Unlock()
	t.v.observeTemplate(t.cfg.Issuer, t.held.Len(), total)
}

// closeEvicted closes the sources of the states evicted so far: each
// leaves the process's key store (its refresher stops when it was the last
// user; its last keys stay there, idle, for a return of the tenant).
func (t *templateIssuer) closeEvicted() {
	t.closeMu.Lock()
	list := t.toClose
	t.toClose = nil
	t.closeMu.Unlock()
	for _, src := range list {
		src.close()
	}
}

// tenantKeys records a held tenant's refresh outcome under the template's
// name: one metrics series per issuer block, not one per tenant. The first
// fetch (before the tenant is held) is counted by first.
func (t *templateIssuer) tenantKeys(tenant string, is *issuerState, ok bool, keys int, at time.Time) {
	t.mu.Lock()
	cur, held := t.held.Peek(tenant)
	owned := held && cur == is
	if owned && ok {
		t.countKeys(tenant, keys)
	}
	t.mu.Unlock()
	if owned || t.pendingIs(tenant, is) {
		t.v.observe(t.cfg.Issuer, ok, t.keyCount(), at)
	}
}

func (t *templateIssuer) pendingIs(tenant string, is *issuerState) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.pending[tenant] == is
}

// countKeys sets a held tenant's key count and publishes the gauges.
func (t *templateIssuer) countKeys(tenant string, keys int) {
	t.statMu.Lock()
	t.totalKeys += keys - t.keysOf[tenant]
	t.keysOf[tenant] = keys
	total := t.totalKeys
	t.statMu.Unlock()
	t.v.observeTemplate(t.cfg.Issuer, t.held.Len(), total)
}

// start begins watching the tenants file, if any.
func (t *templateIssuer) start() {
	t.v.observeTemplate(t.cfg.Issuer, 0, 0)
	if t.tenants.file == nil || !t.v.track() {
		return
	}
	go func() {
		defer t.v.wg.Done()
		t.tenants.watch(t.v.ctx, t.v.cfg.Logger.With(zap.String("issuer", t.cfg.Issuer)), t.dropTenants)
	}()
}

// dropTenants evicts the key sets of tenants that left the tenants file.
func (t *templateIssuer) dropTenants(gone []string) {
	for _, tenant := range gone {
		if !t.tenants.admits(tenant) {
			t.held.Remove(tenant)
		}
	}
	t.closeEvicted()
}

// heldTenants is the number of tenants whose key sets are held.
func (t *templateIssuer) heldTenants() int { return t.held.Len() }

func (t *templateIssuer) keyCount() int {
	t.statMu.Lock()
	defer t.statMu.Unlock()
	return t.totalKeys
}
