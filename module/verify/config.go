package verify

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/tenantgate/tenantgate/module/verify/dpop"
	"github.com/tenantgate/tenantgate/module/verify/jose"
	"github.com/tenantgate/tenantgate/module/verify/keysource"
)

// Defaults applied by SetDefaults.
const (
	DefaultLeeway          = 30 * time.Second
	DefaultRefreshInterval = keysource.DefaultRefreshInterval
	DefaultRefetchInterval = keysource.DefaultRefetchGap
	DefaultTenantClaim     = "tenant_id"
	DefaultUserClaim       = "sub"
	DefaultRolesClaim      = "roles"
	DefaultHTTPTimeout     = 10 * time.Second
	MinHMACSecretBytes     = jose.MinHMACSecretBytes
	DefaultMaxTenants      = keysource.DefaultMaxTenants
	TenantPlaceholder      = keysource.TenantPlaceholder
	AnyTenant              = keysource.AnyTenant
	DefaultTokenCacheSize  = 10000
	DefaultMaxTokenBytes   = jose.DefaultMaxTokenBytes
	DefaultDPoPMaxAge      = dpop.DefaultMaxAge
	DefaultReplayCacheSize = dpop.DefaultReplaySize
)

// DefaultAlgorithms is the allow-list used when Config.Algorithms is empty.
var DefaultAlgorithms = jose.DefaultAlgorithms

// DPoPConfig configures DPoP proof checks (module verify/dpop).
type DPoPConfig = dpop.Config

// Observer receives key refresh outcomes; TemplateObserver also follows
// multi-tenant issuers (module verify/keysource).
type (
	Observer         = keysource.Observer
	TemplateObserver = keysource.TemplateObserver
)

// Values of an issuer's dpop and mtls_binding.
const (
	Required = "required"
	Optional = "optional"
)

// IssuerConfig is one trusted issuer and its single key source. It is the
// issuer object of the gate's JSON config as it stands (the Caddyfile's
// issuer block fills it); the verifier reads it as it is, apart from
// HMACSecret, whose placeholders the caller expands first.
type IssuerConfig struct {
	// The exact iss value, compared byte for byte (no trailing-slash or case folding).
	Issuer string `json:"issuer"`
	// Audiences of which the token's aud (a string or an array) must contain one.
	Audiences []string `json:"audiences,omitempty"`
	// Remote JWKS, cached, refreshed every refresh_interval and on an
	// unknown kid. https, or http only to a loopback host.
	JWKSURL string `json:"jwks_url,omitempty"`
	// OpenID discovery document URL: its jwks_uri is used like jwks_url and
	// its "issuer" must equal issuer.
	OIDCDiscovery string `json:"oidc_discovery,omitempty"`
	// Local JWKS file, read when the config loads.
	JWKSFile string `json:"jwks_file,omitempty"`
	// Local PEM public key (PKIX "PUBLIC KEY", PKCS#1 "RSA PUBLIC KEY") or
	// an X.509 "CERTIFICATE", read when the config loads.
	PublicKeyFile string `json:"public_key_file,omitempty"`
	// Shared HMAC secret, at least 32 bytes (48 for HS384, 64 for HS512);
	// placeholders such as {env.NAME} or {file./path} are expanded (by the
	// gate, before New sees it).
	HMACSecret string `json:"hmac_secret,omitempty"`
	// How often remote keys are refreshed. Default: 5m
	RefreshInterval Duration `json:"refresh_interval,omitempty"`
	// "required" refuses tokens of this issuer that are not DPoP-bound
	// (cnf.jkt). Default: optional
	DPoP string `json:"dpop,omitempty"`
	// "required" refuses tokens of this issuer that are not
	// certificate-bound (cnf x5t#S256). Default: optional
	MTLSBinding string `json:"mtls_binding,omitempty"`
	// JOSE header typ required of this issuer's tokens, e.g. at+jwt (RFC
	// 9068; application/at+jwt is accepted too), so an ID token cannot pass
	// as an access token. Default: not checked
	TokenType string `json:"token_type,omitempty"`

	// Multi-tenant issuers: issuer holds {tenant} once, in its path, and so
	// does jwks_url or oidc_discovery. The tenant named by a token's iss
	// selects that tenant's own key set.

	// Tenants admitted, by name, or ["*"] for any. Unioned with tenants_file.
	Tenants []string `json:"tenants,omitempty"`
	// File of tenants admitted, one per line (blank lines and # comments
	// ignored), re-read when it changes.
	TenantsFile string `json:"tenants_file,omitempty"`
	// Key sets of a multi-tenant issuer held at once. Default: 1000
	MaxTenants int `json:"max_tenants,omitempty"`
}

// RequiresDPoP reports `dpop required`.
func (ic *IssuerConfig) RequiresDPoP() bool { return ic.DPoP == Required }

// RequiresMTLS reports `mtls_binding required`.
func (ic *IssuerConfig) RequiresMTLS() bool { return ic.MTLSBinding == Required }

// IsTemplate reports whether the issuer is multi-tenant ({tenant} in it).
func (ic IssuerConfig) IsTemplate() bool { return strings.Contains(ic.Issuer, TenantPlaceholder) }

// Config configures a Verifier. Zero values mean the documented default.
type Config struct {
	// The options of the gate's JSON (settings.go), as written.
	Settings
	CacheSettings

	// Client for JWKS and discovery fetches. Default: 10s timeout, redirects
	// only to the same host.
	HTTPClient *http.Client
	// Base gap between unknown-kid refetches per issuer: a kid not yet seen
	// starts a fetch when none ended within it. It doubles (up to 30s) after
	// each refetch that found none of the kids asked for. Default: 2s.
	RefetchInterval time.Duration
	// Default: zap.NewNop().
	Logger *zap.Logger
	// Receives key refresh outcomes; may be nil.
	Observer Observer
	// Clock for claim validation. Default: time.Now.
	Now func() time.Time

	// DPoP (RFC 9449); see package verify/dpop.
	DPoP DPoPConfig
	// Store is the process's state (key sets, replay set, cache gauges)
	// the verifier joins. Default: a store of the verifier's own, ended by
	// Close (keys then do not outlive the verifier).
	Store *Store
	// SharedReplay, when set, wraps the process's DPoP replay store in one
	// shared by replicas (issue 23: shared_store); nil keeps it per process.
	SharedReplay func(local dpop.ReplayStore) dpop.ReplayStore
	// DPoPNonces, when set, makes DPoP proofs carry a nonce it accepts
	// (RFC 9449 §9, dpop_nonce); nil requires none.
	DPoPNonces dpop.NonceSource
	// Receives every cache lookup; may be nil.
	CacheObserver CacheObserver
}

// SetDefaults fills every zero field with its documented default; New
// runs it, once. Leeway and TokenCache stay nil when unset: their
// defaults are read through EffectiveLeeway and TokenCacheSize.
func (c *Config) SetDefaults() {
	if len(c.Algorithms) == 0 {
		c.Algorithms = append([]string(nil), DefaultAlgorithms...)
	}
	if c.MaxTokenBytes == 0 {
		c.MaxTokenBytes = DefaultMaxTokenBytes
	}
	if c.TenantClaim == "" {
		c.TenantClaim = DefaultTenantClaim
	}
	if c.UserClaim == "" {
		c.UserClaim = DefaultUserClaim
	}
	if c.RolesClaim == "" {
		c.RolesClaim = DefaultRolesClaim
	}
	if c.HTTPClient == nil {
		c.HTTPClient = defaultHTTPClient()
	}
	if c.RefetchInterval == 0 {
		c.RefetchInterval = DefaultRefetchInterval
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	c.DPoP.SetDefaults(c.Algorithms)
	for i := range c.Issuers {
		if c.Issuers[i].RefreshInterval == 0 {
			c.Issuers[i].RefreshInterval = Duration(DefaultRefreshInterval)
		}
		if c.Issuers[i].MaxTenants == 0 && c.Issuers[i].IsTemplate() {
			c.Issuers[i].MaxTenants = DefaultMaxTenants
		}
	}
}

func defaultHTTPClient() *http.Client {
	return &http.Client{
		Timeout: DefaultHTTPTimeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 3 {
				return errors.New("stopped after 3 redirects")
			}
			if req.URL.Host != via[0].URL.Host || req.URL.Scheme != via[0].URL.Scheme {
				return fmt.Errorf("refusing redirect to another host (%s)", req.URL.Host)
			}
			return nil
		},
	}
}

// Validate reports every problem at once (errors.Join), each prefixed with
// where it is. Zero values are accepted: they mean the default.
func (c Config) Validate() error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	algs := c.Algorithms
	if len(algs) == 0 {
		algs = DefaultAlgorithms
	}
	hsAllowed := map[string]bool{}
	for _, a := range algs {
		switch {
		case strings.EqualFold(a, "none"):
			add(`algorithms: "none" is never allowed`)
		case jose.Algorithm(a) == nil:
			add("algorithms: unknown algorithm %q (allowed: %s)", a, strings.Join(jose.AlgorithmNames(), " "))
		case jose.Algorithm(a).Kind == jose.KindHMAC:
			hsAllowed[a] = true
		}
	}
	if c.Leeway != nil && *c.Leeway < 0 {
		add("leeway: must not be negative (got %s)", time.Duration(*c.Leeway))
	}
	if c.TokenCache != nil && *c.TokenCache < 0 {
		add("token_cache %d: want a positive number of entries, or 0 (off)", *c.TokenCache)
	}
	if c.MaxTokenBytes < 0 {
		add("max_token_bytes: must not be negative (got %d)", c.MaxTokenBytes)
	}
	if c.MaxTokenBytes > 1<<20 {
		add("max_token_bytes: %d is more than 1 MiB", c.MaxTokenBytes)
	}
	if c.RefetchInterval < 0 {
		add("refetch interval: must not be negative (got %s)", c.RefetchInterval)
	}
	for _, cl := range []struct{ what, name string }{{"tenant_claim", c.TenantClaim}, {"user_claim", c.UserClaim}, {"roles_claim", c.RolesClaim}} {
		if cl.name == "" {
			continue // the default
		}
		if _, err := parseClaimPath(cl.name); err != nil {
			add("%s: %v", cl.what, err)
		}
	}
	if len(c.Issuers) == 0 {
		add("issuers: at least one issuer is required")
	}
	errs = append(errs, c.DPoP.Validate()...)

	seen := map[string]bool{}
	symmetricCapable := false
	for i, is := range c.Issuers {
		addIs := func(format string, a ...any) {
			errs = append(errs, &IssuerError{Index: i, Issuer: is.Issuer, Err: fmt.Errorf(format, a...)})
		}
		if is.Issuer == "" {
			addIs("the issuer value is empty")
		}
		if seen[is.Issuer] && is.Issuer != "" {
			addIs("duplicate issuer")
		}
		seen[is.Issuer] = true
		for _, err := range CheckIssuer(is) {
			addIs("%w", err)
		}
		if is.HMACSecret != "" || is.JWKSFile != "" {
			symmetricCapable = true
		}
		if is.HMACSecret != "" {
			n := len(is.HMACSecret)
			if n < MinHMACSecretBytes {
				addIs("hmac_secret is %d bytes, need at least %d", n, MinHMACSecretBytes)
			} else {
				for _, a := range []string{"HS384", "HS512"} {
					if hsAllowed[a] && n < jose.Algorithm(a).MinKey {
						addIs("hmac_secret is %d bytes, %s needs at least %d", n, a, jose.Algorithm(a).MinKey)
					}
				}
			}
			if len(hsAllowed) == 0 {
				addIs("hmac_secret is set but no HS256/HS384/HS512 algorithm is allowed (add one to algorithms)")
			}
		}
		if is.RefreshInterval < 0 {
			addIs("refresh interval must not be negative (got %s)", time.Duration(is.RefreshInterval))
		}
		for _, rq := range []struct{ option, value string }{{"dpop", is.DPoP}, {"mtls_binding", is.MTLSBinding}} {
			if rq.value != "" && rq.value != Required && rq.value != Optional {
				errs = append(errs, &IssuerError{Index: i, Issuer: is.Issuer, Option: rq.option,
					Err: fmt.Errorf("%s %q: want required or optional", rq.option, rq.value)})
			}
		}
		if is.TokenType != "" && (strings.ContainsAny(is.TokenType, " \t/;,") || strings.HasPrefix(strings.ToLower(is.TokenType), "application")) {
			addIs("token_type %q: give the bare type, e.g. at+jwt", is.TokenType)
		}
	}
	if len(hsAllowed) > 0 && !symmetricCapable && len(c.Issuers) > 0 {
		add("algorithms: HS256/HS384/HS512 allowed but no issuer has an hmac_secret or jwks_file (remove them from algorithms)")
	}
	return errors.Join(errs...)
}

// IssuerError is a problem of one issuer (Config.Issuers[Index]), so a
// caller that knows where each issuer was written can say where.
type IssuerError struct {
	Index  int
	Issuer string
	// Option names the issuer option the problem is in when it is one
	// line's value (dpop, mtls_binding), "" when it is the issuer's as a whole.
	Option string
	Err    error
}

func (e *IssuerError) Error() string {
	if e.Issuer == "" {
		return fmt.Sprintf("issuer[%d]: %v", e.Index, e.Err)
	}
	return fmt.Sprintf("issuer %q: %v", e.Issuer, e.Err)
}

func (e *IssuerError) Unwrap() error { return e.Err }
