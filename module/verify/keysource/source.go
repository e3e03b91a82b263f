package keysource

import (
	"context"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/tenantgate/tenantgate/module/verify/jose"
)

// Source supplies the verification keys of one issuer. The verifier asks
// it for keys and tells it what it saw; how keys are loaded, refreshed or
// shared between configs is the source's business. Static sources
// (jwks_file, public_key_file, hmac_secret) hold one set for the config's
// life; Remote fetches jwks_url or oidc_discovery through the process's
// Feeds, which keep sets across reloads.
type Source interface {
	// Keys returns the set in use, or nil while none has loaded.
	Keys() *jose.KeySet
	// UnknownKid is called when a token names a kid the current set lacks.
	// A remote source refetches (bounded, shared by concurrent callers) and
	// returns the set to use afterwards with 0; when no fetch may start yet
	// it returns the current set and how long until one may, and the caller
	// answers 503 with that Retry-After. A static source returns its set, 0.
	UnknownKid(ctx context.Context, kid string) (*jose.KeySet, time.Duration)
	// Unavailable is called while Keys() is nil; it may start a fetch, must
	// not wait for it, and says when a retry may find keys.
	Unavailable() time.Duration
	// Announce tells the Observer which keys the source starts with, once
	// the config holding it is complete: a static set as a successful
	// load, a remote one as the keys in force (kept from an earlier
	// config, or none) and their last fetch.
	Announce()
	// Close ends the source's part in background work; idempotent.
	Close()
}

// Observer receives key refresh outcomes (the gate turns them into
// Prometheus metrics). keys is the number of keys in force after the
// attempt: on a failed refresh that is the count of the last good set that
// was kept. Static sources report once, from Announce.
type Observer interface {
	JWKSRefresh(issuer string, ok bool, keys int, at time.Time)
	// JWKSInUse reports, for a remote issuer of a config being loaded, the
	// keys it starts with (kept in the process's Feeds from an earlier
	// config, or 0) and their last successful fetch (zero when none), so
	// gauges describe the live config from its first moment.
	JWKSInUse(issuer string, keys int, lastSuccess time.Time)
}

// TemplateObserver is an Observer that also follows multi-tenant issuers:
// under the issuer as configured ({tenant} unreplaced), how many tenants'
// key sets are held and how many keys they hold together. It is called
// whenever either changes (a tenant's set arrives, refreshes or leaves).
// JWKSRefresh reports those issuers under the same name, with the total.
type TemplateObserver interface {
	IssuerTenants(issuer string, tenants, keys int)
}

// BudgetObserver is an Observer that also counts the requests the
// new-tenant budget of a multi-tenant issuer refused (503
// keys_unavailable, no fetch), by issuer as configured.
type BudgetObserver interface {
	TenantBudgetRefused(issuer string)
}

// DefaultRefetchGap is the base gap between unknown-kid refetches of one
// issuer when Env.RefetchGap is zero.
const DefaultRefetchGap = 2 * time.Second

// DefaultRefreshInterval is how often remote keys are refreshed when
// Spec.RefreshInterval is zero.
const DefaultRefreshInterval = 5 * time.Minute

// Env is everything a source needs from its surroundings, passed in
// explicitly: no source reaches back into the verifier that holds it.
type Env struct {
	// Feeds is the process's store of remote key sets; required for
	// jwks_url and oidc_discovery (and so for every multi-tenant issuer).
	Feeds *Feeds
	// Client for JWKS and discovery fetches. Default: http.DefaultClient.
	Client *http.Client
	// Logger for fetch outcomes and skipped keys. Default: zap.NewNop().
	Logger *zap.Logger
	// Observer receives refresh outcomes; may be nil. When it is also a
	// TemplateObserver it follows multi-tenant issuers too.
	Observer Observer
	// RefetchGap is the base gap between unknown-kid refetches.
	// Default: DefaultRefetchGap.
	RefetchGap time.Duration
	// Now is the clock of remembered tenant failures. Refresh timers and
	// refetch gaps use the wall clock. Default: time.Now.
	Now func() time.Time
}

func (e Env) withDefaults() Env {
	if e.Client == nil {
		e.Client = http.DefaultClient
	}
	if e.Logger == nil {
		e.Logger = zap.NewNop()
	}
	if e.RefetchGap <= 0 {
		e.RefetchGap = DefaultRefetchGap
	}
	if e.Now == nil {
		e.Now = time.Now
	}
	return e
}

func (e Env) refresh(issuer string, ok bool, keys int, at time.Time) {
	if e.Observer != nil {
		e.Observer.JWKSRefresh(issuer, ok, keys, at)
	}
}

// temporary counts a temporary IdP failure of class; "" counts nothing.
func (e Env) temporary(issuer, class string) {
	if o, ok := e.Observer.(FailureObserver); ok && class != "" {
		o.IdPTemporaryFailure(issuer, class)
	}
}

// budgetRefused counts a request the new-tenant budget refused.
func (e Env) budgetRefused(issuer string) {
	if o, ok := e.Observer.(BudgetObserver); ok {
		o.TenantBudgetRefused(issuer)
	}
}

func (e Env) tenants(issuer string, tenants, keys int) {
	if o, ok := e.Observer.(TemplateObserver); ok {
		o.IssuerTenants(issuer, tenants, keys)
	}
}

// Spec names one issuer's key source: exactly one of the URL, file or
// secret fields is set.
type Spec struct {
	// Issuer is the exact iss the keys are for; a discovery document must
	// name it.
	Issuer string
	// JWKSURL is a remote JWKS; https, or http only to a loopback host.
	JWKSURL string
	// OIDCDiscovery is the URL of a discovery document whose jwks_uri is
	// used like JWKSURL.
	OIDCDiscovery string
	// JWKSFile is a local JWKS file, read once.
	JWKSFile string
	// PublicKeyFile is a PEM public key or certificate, read once.
	PublicKeyFile string
	// HMACSecret is a shared secret, placeholders already expanded.
	HMACSecret string
	// RefreshInterval is how often remote keys are refreshed.
	// Default: DefaultRefreshInterval.
	RefreshInterval time.Duration
	// Algorithms is the allow-list: a static set none of whose keys fits
	// one of them is refused at once, since every token would fail.
	Algorithms []string
}

// Static is a key set loaded once from the config.
type Static struct {
	issuer string
	set    *jose.KeySet
	env    Env
}

// NewStatic is a source of issuer holding set for good.
func NewStatic(issuer string, set *jose.KeySet, env Env) *Static {
	return &Static{issuer: issuer, set: set, env: env}
}

func (s *Static) Keys() *jose.KeySet { return s.set }
func (s *Static) UnknownKid(context.Context, string) (*jose.KeySet, time.Duration) {
	return s.set, 0
}
func (s *Static) Unavailable() time.Duration { return 0 }
func (s *Static) Announce()                  { s.env.refresh(s.issuer, true, len(s.set.All), time.Now()) }
func (s *Static) Close()                     {}

// Keys returns the shared remote set, nil until the first successful fetch.
func (r *Remote) Keys() *jose.KeySet { return r.feed.set.Load() }

func (r *Remote) UnknownKid(ctx context.Context, kid string) (*jose.KeySet, time.Duration) {
	return r.feed.unknownKid(ctx, kid)
}

func (r *Remote) Unavailable() time.Duration { return r.feed.unavailable() }

// LastFailure says why the last fetch of the shared set failed, for a 503's
// detail ("the identity provider answered a server error (5xx)"); "" when
// it did not fail.
func (r *Remote) LastFailure() string {
	r.feed.mu.Lock()
	err := r.feed.lastErr
	r.feed.mu.Unlock()
	if err == nil {
		return ""
	}
	if unknownTenant(err) {
		return "the identity provider answered " + err.Error()
	}
	class, _ := classify(err)
	return describe(class)
}

// Announce reports the keys the live config starts with: those kept from
// an earlier config, or none.
func (r *Remote) Announce() {
	if r.conf.Load().env.Observer == nil {
		return
	}
	keys := 0
	if ks := r.Keys(); ks != nil {
		keys = len(ks.All)
	}
	r.conf.Load().env.Observer.JWKSInUse(r.spec.Issuer, keys, r.lastSuccess())
}

// Close leaves the process's Feeds: the last user of a set stops its
// schedule (the keys stay, for the next config naming the same source).
func (r *Remote) Close() {
	r.closeOnce.Do(func() { r.feeds.release(r.feed, r) })
}

var (
	_ Source = (*Static)(nil)
	_ Source = (*Remote)(nil)
)
