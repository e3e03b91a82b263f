package keysource

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/tenantgate/tenantgate/module/audit"
	"github.com/tenantgate/tenantgate/module/tenantid"
	"github.com/tenantgate/tenantgate/module/verify/verr"
)

// Bounds of a multi-tenant issuer. They are part of the documented
// behaviour (README "Multi-tenant issuers"): change both together.
const (
	// Key fetches for tenants whose key set the process does not hold
	// start at most NewTenantBurst at once, then one per NewTenantEvery,
	// per issuer template, listed tenants as well as `tenants *`. A request
	// over the bound gets keys_unavailable. A tenant whose keys the process
	// holds (in the process's Feeds, also from the config before a reload)
	// never waits on this budget.
	NewTenantBurst = 10
	NewTenantEvery = time.Second
	// A tenant whose key or discovery URL answered 404 or 410, or whose
	// discovery document names another issuer (the IdP has no such
	// tenant), is answered unknown_issuer from memory for
	// NegativeTTLUnknown. Any other failed first fetch is temporary: 503
	// keys_unavailable, retried after a backoff of 1 s doubling up to
	// NegativeTTLFailed (or the IdP's own Retry-After, up to 10 s), so a
	// tenant comes back within seconds of the IdP answering again.
	NegativeTTLUnknown = time.Minute
	NegativeTTLFailed  = 5 * time.Second
	// negativeEntries bounds the memory of failed tenants per template.
	negativeEntries = 4096
)

// TemplateSpec is a multi-tenant issuer: Spec.Issuer and its JWKSURL or
// OIDCDiscovery hold TenantPlaceholder once, in their path.
type TemplateSpec struct {
	Spec
	// Tenants admitted: names, or AnyTenant alone. Unioned with TenantsFile.
	Tenants []string
	// TenantsFile has one tenant per line, re-read when it changes.
	TenantsFile string
	// MaxTenants is how many tenants' key sets are held at once.
	// Default: DefaultMaxTenants.
	MaxTenants int
}

// TenantPlaceholder marks the tenant's place in a multi-tenant issuer and
// in its jwks_url or oidc_discovery.
const TenantPlaceholder = "{tenant}"

// AnyTenant in Tenants admits every tenant name (bounded: NewTenantBurst).
const AnyTenant = "*"

// DefaultMaxTenants is how many tenants' key sets a multi-tenant issuer
// holds at once (least recently used leave).
const DefaultMaxTenants = 1000

// Template is one issuer block whose URL holds {tenant}: one key set per
// tenant, fetched on first use, at most MaxTenants held at once.
type Template struct {
	spec           TemplateSpec // as configured, {tenant} unreplaced
	env            Env
	prefix, suffix string // iss = prefix + tenant + suffix
	tenants        *tenantList

	held    *lru.Cache[string, *Tenant] // evicting closes the source
	failed  *lru.Cache[string, failure] // negative cache
	limiter *rate.Limiter               // the new-tenant budget

	mu      sync.Mutex         // makes one state per tenant; guards pending, closed
	pending map[string]*Tenant // first fetch in flight, not yet held
	closed  bool
	// shut is closed, readable where t.mu may be held (eviction): a
	// closing config reports nothing, the next config owns the gauges.
	shut atomic.Bool

	closeMu sync.Mutex
	toClose []*Remote // evicted, to close outside mu

	statMu    sync.Mutex
	keysOf    map[string]int // keys per held tenant, for the gauges
	totalKeys int

	stopWatch context.CancelFunc
	watching  sync.WaitGroup
}

// Tenant is one tenant of a Template: its issuer, and its key source while
// its set is held.
type Tenant struct {
	Name   string // the tenant, from the token's iss
	Issuer string // the tenant's iss
	src    *Remote
	t      *Template
	// retired: the tenant's set was evicted or the tenant removed.
	retired atomic.Bool
}

// Source is the tenant's key source.
func (h *Tenant) Source() Source { return h.src }

// Live reports whether the tenant may still verify tokens: while its set
// is held and it is admitted, so a cached token of a tenant taken off
// tenants_file stops passing at once.
func (h *Tenant) Live() bool { return !h.retired.Load() && h.t.tenants.admits(h.Name) }

// failure is a remembered failed first fetch.
type failure struct {
	err   *verr.Error
	until time.Time
	fails int // temporary failures in a row: the backoff's exponent
}

// answer is the remembered failure as a request sees it now: an unknown
// tenant as remembered, a temporary one with the time left to its retry.
func (f failure) answer(now time.Time) *verr.Error {
	if f.err.Reason != audit.ReasonKeysUnavailable {
		return f.err
	}
	e := *f.err
	e.RetryAfter = max(f.until.Sub(now), time.Second)
	return &e
}

// tenantBackoff is the wait before the next first fetch of a tenant after
// fails temporary failures in a row.
func tenantBackoff(fails int) time.Duration {
	d := time.Second
	for i := 1; i < fails && d < NegativeTTLFailed; i++ {
		d *= 2
	}
	return min(d, NegativeTTLFailed)
}

// NewTemplate checks spec's tenant list (reading tenants_file) and returns
// the template with no tenant held yet; Start begins its background work.
func NewTemplate(spec TemplateSpec, env Env) (*Template, error) {
	env = env.withDefaults()
	if spec.MaxTenants == 0 {
		spec.MaxTenants = DefaultMaxTenants
	}
	i := strings.Index(spec.Issuer, TenantPlaceholder)
	if i < 0 {
		return nil, fmt.Errorf("issuer %q has no %s", spec.Issuer, TenantPlaceholder)
	}
	t := &Template{
		spec:    spec,
		env:     env,
		prefix:  spec.Issuer[:i],
		suffix:  spec.Issuer[i+len(TenantPlaceholder):],
		keysOf:  map[string]int{},
		pending: map[string]*Tenant{},
	}
	var err error
	if t.tenants, err = newTenantList(spec.Tenants, spec.TenantsFile); err != nil {
		return nil, fmt.Errorf("issuer %q: %w", spec.Issuer, err)
	}
	t.limiter = rate.NewLimiter(rate.Every(NewTenantEvery), NewTenantBurst)
	if t.held, err = lru.NewWithEvict(spec.MaxTenants, t.evicted); err != nil {
		return nil, fmt.Errorf("issuer %q: max_tenants: %w", spec.Issuer, err)
	}
	if t.failed, err = lru.New[string, failure](negativeEntries); err != nil {
		return nil, err
	}
	return t, nil
}

// Issuer is the issuer as configured, {tenant} unreplaced.
func (t *Template) Issuer() string { return t.spec.Issuer }

// A shape match with a value that is not a tenant name is no match: that
// value never reaches a URL.
// Match extracts the tenant from iss when iss has this template's shape.
func (t *Template) Match(iss string) (string, bool) {
	if len(iss) <= len(t.prefix)+len(t.suffix) || !strings.HasPrefix(iss, t.prefix) || !strings.HasSuffix(iss, t.suffix) {
		return "", false
	}
	tenant := iss[len(t.prefix) : len(iss)-len(t.suffix)]
	return tenant, tenantid.Valid(tenant)
}

// Lookup returns tenant's state, fetching its keys on first use. A
// tenant not admitted costs no fetch at all; nor does a repeat of a
// remembered failure. A tenant enters the held set only once its keys have
// arrived, so made-up tenants never push real ones out.
func (t *Template) Lookup(ctx context.Context, iss, tenant string) (*Tenant, *verr.Error) {
	if !t.tenants.admits(tenant) {
		return nil, verr.New(audit.ReasonUnknownIssuer, fmt.Sprintf("issuer %q is configured for some tenants only, and %q is not one of them", t.spec.Issuer, tenant), nil)
	}
	if h, ok := t.held.Get(tenant); ok {
		return h, nil
	}
	if f, ok := t.failed.Get(tenant); ok {
		if now := t.env.Now(); now.Before(f.until) {
			return nil, f.answer(now)
		}
		// Kept until the next outcome: a temporary failure's count sets
		// the next backoff.
	}
	t.mu.Lock()
	if h, ok := t.held.Get(tenant); ok {
		t.mu.Unlock()
		return h, nil
	}
	h, ok := t.pending[tenant]
	if !ok {
		if !t.env.Feeds.holds(t.feedKeyOf(iss, tenant)) && !t.limiter.Allow() {
			t.mu.Unlock()
			return nil, verr.New(audit.ReasonKeysUnavailable, fmt.Sprintf("issuer %q: too many tenants not seen before at once (keys of at most %d are fetched at once, then one per %s); retry shortly", t.spec.Issuer, NewTenantBurst, NewTenantEvery), nil)
		}
		var err error
		if t.closed {
			err = errors.New("the config holding this issuer was unloaded")
		} else {
			h, err = t.newTenant(iss, tenant)
		}
		if err != nil {
			t.mu.Unlock()
			return nil, verr.New(audit.ReasonKeysUnavailable, fmt.Sprintf("signing keys of issuer %q could not be set up", iss), err)
		}
		t.pending[tenant] = h
	}
	t.mu.Unlock()
	return t.first(ctx, h)
}

// tenantSpec is the key source of one tenant: {tenant} replaced.
func (t *Template) tenantSpec(iss, tenant string) Spec {
	spec := t.spec.Spec
	spec.Issuer = iss
	spec.JWKSURL = strings.Replace(spec.JWKSURL, TenantPlaceholder, tenant, 1)
	spec.OIDCDiscovery = strings.Replace(spec.OIDCDiscovery, TenantPlaceholder, tenant, 1)
	return spec
}

// feedKeyOf names the tenant's key set in the process's Feeds.
func (t *Template) feedKeyOf(iss, tenant string) feedKey {
	spec := t.tenantSpec(iss, tenant)
	return feedKey{issuer: spec.Issuer, jwksURL: spec.JWKSURL, discoveryURL: spec.OIDCDiscovery}
}

// newTenant makes a tenant's source with the constructor every remote
// issuer uses; its refresh outcomes count under the template.
func (t *Template) newTenant(iss, tenant string) (*Tenant, error) {
	spec := t.tenantSpec(iss, tenant)
	h := &Tenant{Name: tenant, Issuer: iss, t: t}
	src, err := NewRemote(spec, t.env, func(ok bool, keys int, at time.Time, class string) {
		t.tenantKeys(h, ok, keys, at, class)
	})
	if err != nil {
		return nil, err
	}
	h.src = src
	return h, nil
}

// first waits for a tenant's first key set (joining a fetch in flight).
// On success the tenant enters the held set, which may evict the least
// recently used one; on failure the failure is remembered, so a made-up
// tenant costs one fetch per TTL.
func (t *Template) first(ctx context.Context, h *Tenant) (*Tenant, *verr.Error) {
	err := h.src.fetchFirst(ctx)
	if ks := h.src.Keys(); ks != nil {
		t.mu.Lock()
		late := false
		if t.pending[h.Name] == h {
			delete(t.pending, h.Name)
			t.failed.Remove(h.Name)
			if late = t.closed; !late {
				t.held.Add(h.Name, h)
				t.countKeys(h.Name, len(ks.All))
			}
		}
		t.mu.Unlock()
		if late {
			h.src.Close() // the template closed while the fetch ran
		}
		t.closeEvicted()
		return h, nil
	}
	if ctx.Err() != nil {
		// The caller went away; the fetch goes on for the next one.
		return nil, verr.New(audit.ReasonKeysUnavailable, fmt.Sprintf("signing keys of issuer %q are being fetched; retry shortly", h.Issuer), ctx.Err())
	}
	fails := 1
	if prev, ok := t.failed.Peek(h.Name); ok && prev.err.Reason == audit.ReasonKeysUnavailable {
		fails = prev.fails + 1
	}
	var e *verr.Error
	var ttl time.Duration
	if unknownTenant(err) {
		e = verr.New(audit.ReasonUnknownIssuer, fmt.Sprintf("the identity provider of issuer %q knows no tenant %q (%v)", t.spec.Issuer, h.Name, err), err)
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
	t.env.Logger.Debug("tenant key set unavailable", zap.String("issuer", h.Issuer), zap.Duration("remembered_for", ttl), zap.Error(err))
	t.mu.Lock()
	mine := t.pending[h.Name] == h
	if mine {
		delete(t.pending, h.Name)
		t.failed.Add(h.Name, failure{err: e, until: t.env.Now().Add(ttl), fails: fails})
	}
	t.mu.Unlock()
	if mine {
		// Not under t.mu: closing waits for the source's fetches, whose
		// reports take t.mu.
		h.src.Close()
	}
	return nil, e
}

// evicted runs when a tenant leaves the held set (least recently used
// past MaxTenants, removal from the tenant list, Close): its source
// closes and it no longer counts in the gauges.
func (t *Template) evicted(tenant string, h *Tenant) {
	h.retired.Store(true)
	// Eviction may run under t.mu (held.Add in first), and closing waits
	// for the source's fetches, whose reports take t.mu: the caller closes
	// it once t.mu is released (closeEvicted).
	t.closeMu.Lock()
	t.toClose = append(t.toClose, h.src)
	t.closeMu.Unlock()
	t.statMu.Lock()
	t.totalKeys -= t.keysOf[tenant]
	delete(t.keysOf, tenant)
	total := t.totalKeys
	t.statMu.Unlock()
	if !t.shut.Load() {
		t.env.tenants(t.spec.Issuer, t.held.Len(), total)
	}
}

// closeEvicted closes the sources of the tenants evicted so far: each
// leaves the process's Feeds (its refresher stops when it was the last
// user; its last keys stay there, idle, for a return of the tenant).
func (t *Template) closeEvicted() {
	t.closeMu.Lock()
	list := t.toClose
	t.toClose = nil
	t.closeMu.Unlock()
	for _, src := range list {
		src.Close()
	}
}

// tenantKeys records a held tenant's refresh outcome under the template's
// name: one metrics series per issuer block, not one per tenant. The first
// fetch (before the tenant is held) is counted too.
func (t *Template) tenantKeys(h *Tenant, ok bool, keys int, at time.Time, class string) {
	t.mu.Lock()
	cur, held := t.held.Peek(h.Name)
	owned := held && cur == h
	if owned && ok {
		t.countKeys(h.Name, keys)
	}
	pending := t.pending[h.Name] == h
	t.mu.Unlock()
	if owned || pending {
		t.env.refresh(t.spec.Issuer, ok, t.KeyCount(), at)
	}
	// Counted whoever owns the tenant now: a first fetch's failure is
	// reported after its requests were answered (the tenant no longer
	// pending), and it did fail.
	t.env.temporary(t.spec.Issuer, class)
}

// countKeys sets a held tenant's key count and publishes the gauges.
func (t *Template) countKeys(tenant string, keys int) {
	t.statMu.Lock()
	t.totalKeys += keys - t.keysOf[tenant]
	t.keysOf[tenant] = keys
	total := t.totalKeys
	t.statMu.Unlock()
	t.env.tenants(t.spec.Issuer, t.held.Len(), total)
}

// Start reports the template (no tenant held yet) and begins watching the
// tenants file, if any, until Close.
func (t *Template) Start() {
	t.env.tenants(t.spec.Issuer, 0, 0)
	if t.tenants.file == nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.stopWatch = cancel
	t.watching.Add(1)
	go func() {
		defer t.watching.Done()
		t.tenants.watch(ctx, t.env.Logger.With(zap.String("issuer", t.spec.Issuer)), t.dropTenants)
	}()
}

// Close stops watching the tenants file and closes every tenant's source.
// Idempotent.
func (t *Template) Close() {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	t.shut.Store(true)
	if t.stopWatch != nil {
		t.stopWatch()
		t.watching.Wait()
	}
	t.held.Purge() // evicts each: retired, queued for closing
	t.closeEvicted()
}

// dropTenants evicts the key sets of tenants that left the tenants file.
func (t *Template) dropTenants(gone []string) {
	for _, tenant := range gone {
		if !t.tenants.admits(tenant) {
			t.held.Remove(tenant)
		}
	}
	t.closeEvicted()
}

// Len is the number of tenants whose key sets are held.
func (t *Template) Len() int { return t.held.Len() }

// KeyCount is the number of keys the held tenants hold together.
func (t *Template) KeyCount() int {
	t.statMu.Lock()
	defer t.statMu.Unlock()
	return t.totalKeys
}
