package keysource

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/tenantgate/tenantgate/module/audit"
	"github.com/tenantgate/tenantgate/module/tenantid"
	"github.com/tenantgate/tenantgate/module/verify/verr"
)

// Bounds of a multi-tenant issuer. They are part of the documented
// behaviour (README "Multi-tenant issuers"): change both together. The
// new-tenant budget's are in budget.go.
const (
	// A tenant whose key or discovery URL answered 404 or 410, or whose
	// discovery document names another issuer (the IdP has no such
	// tenant), is answered unknown_issuer from memory for
	// NegativeTTLUnknown. Any other failed first fetch is temporary: 503
	// keys_unavailable, retried after a backoff of 1 s doubling up to
	// NegativeTTLFailed (or the IdP's own Retry-After, up to 10 s), so a
	// tenant comes back within seconds of the IdP answering again.
	NegativeTTLUnknown = time.Minute
	NegativeTTLFailed  = 5 * time.Second
	// negativeEntries bounds the memory of failed tenants per issuer block.
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

// Template is one config's issuer block whose URL holds {tenant}: it
// decides which tenants the config admits, and finds their key sets in the
// process's pool for the block (pool.go), which outlives the config.
type Template struct {
	spec           TemplateSpec // as configured, {tenant} unreplaced
	env            Env
	prefix, suffix string // iss = prefix + tenant + suffix
	tenants        *tenantList
	pool           *tenantPool

	closeOnce sync.Once
	stopWatch context.CancelFunc
	watching  sync.WaitGroup
}

// Live reports whether h may still verify tokens under this config: while
// its set is held and the config admits it, so a cached token of a tenant
// taken off tenants_file stops passing at once.
func (t *Template) Live(h *Tenant) bool { return !h.retired.Load() && t.tenants.admits(h.Name) }

// NewTemplate checks spec's tenant list (reading tenants_file) and joins
// the process's pool for the issuer block, whose held tenants serve at
// once (those an earlier config fetched included); Start begins its
// background work, Close leaves the pool.
func NewTemplate(spec TemplateSpec, env Env) (*Template, error) {
	env = env.withDefaults()
	if spec.MaxTenants == 0 {
		spec.MaxTenants = DefaultMaxTenants
	}
	if spec.RefreshInterval <= 0 {
		spec.RefreshInterval = DefaultRefreshInterval
	}
	i := strings.Index(spec.Issuer, TenantPlaceholder)
	if i < 0 {
		return nil, fmt.Errorf("issuer %q has no %s", spec.Issuer, TenantPlaceholder)
	}
	if spec.MaxTenants < 0 {
		return nil, fmt.Errorf("issuer %q: max_tenants must be at least 1", spec.Issuer)
	}
	t := &Template{
		spec:   spec,
		env:    env,
		prefix: spec.Issuer[:i],
		suffix: spec.Issuer[i+len(TenantPlaceholder):],
	}
	var err error
	if t.tenants, err = newTenantList(spec.Tenants, spec.TenantsFile); err != nil {
		return nil, fmt.Errorf("issuer %q: %w", spec.Issuer, err)
	}
	if env.Feeds == nil {
		return nil, fmt.Errorf("issuer %q: remote keys need the process's key feeds (Env.Feeds)", spec.Issuer)
	}
	if t.pool, err = env.Feeds.attachPool(t); err != nil {
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

// Lookup returns tenant's state, fetching its keys on first use. A tenant
// not admitted costs no fetch at all; nor does a repeat of a remembered
// failure. client is the request's client address: a tenant whose keys the
// process does not hold spends the new-tenant budget of that client and of
// the issuer (budget.go).
func (t *Template) Lookup(ctx context.Context, iss, tenant, client string) (*Tenant, *verr.Error) {
	if !t.tenants.admits(tenant) {
		return nil, verr.New(audit.ReasonUnknownIssuer, fmt.Sprintf("issuer %q is configured for some tenants only, and %q is not one of them", t.spec.Issuer, tenant), nil)
	}
	return t.pool.lookup(ctx, t, iss, tenant, client)
}

// tenantSpec is the key source of one tenant: {tenant} replaced.
func (t *Template) tenantSpec(iss, tenant string) Spec {
	spec := t.spec.Spec
	spec.Issuer = iss
	spec.JWKSURL = strings.Replace(spec.JWKSURL, TenantPlaceholder, tenant, 1)
	spec.OIDCDiscovery = strings.Replace(spec.OIDCDiscovery, TenantPlaceholder, tenant, 1)
	return spec
}

// Start reports the held set (the tenants an earlier config held, or
// none) and begins watching the tenants file, if any, until Close.
func (t *Template) Start() {
	t.pool.publish()
	if t.tenants.file == nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.stopWatch = cancel
	t.watching.Add(1)
	go func() {
		defer t.watching.Done()
		t.tenants.watch(ctx, t.env.Logger.With(zap.String("issuer", t.spec.Issuer)), func(gone []string) { t.pool.drop(t, gone) })
	}()
}

// Close stops watching the tenants file and leaves the pool; the last
// config to leave it closes every tenant's source. Idempotent.
func (t *Template) Close() {
	t.closeOnce.Do(func() {
		if t.stopWatch != nil {
			t.stopWatch()
			t.watching.Wait()
		}
		t.env.Feeds.detachPool(t.pool, t)
	})
}

// Len is the number of tenants whose key sets are held.
func (t *Template) Len() int { return t.pool.held.Len() }

// KeyCount is the number of keys the held tenants hold together.
func (t *Template) KeyCount() int { return t.pool.keyCount() }
