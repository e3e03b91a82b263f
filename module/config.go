package tenantgate

import (
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/tenantgate/tenantgate/module/assertion"
	"github.com/tenantgate/tenantgate/module/verify"
)

// setDefaults fills every option left unset, once, in Provision.
func (g *Gate) setDefaults() {
	if g.Mode == "" {
		g.Mode = ModeEnforce
	}
	if g.AssertionAlg == "" {
		g.AssertionAlg = assertion.AlgEdDSA
	}
	if g.TokenCache == nil {
		n := verify.DefaultTokenCacheSize
		g.TokenCache = &n
	}
	if g.AssertionAudience == "" {
		g.AssertionAudience = assertion.DefaultAudience
	}
	if g.AssertionIssuer == "" {
		g.AssertionIssuer = assertion.DefaultIssuer
	}
	if g.Realm == "" {
		g.Realm = "tenantgate"
	}
	if g.MetricsMaxTenants == 0 {
		g.MetricsMaxTenants = 1000
	}
	if g.TenantClaim == "" {
		g.TenantClaim = "tenant_id"
	}
	if g.UserClaim == "" {
		g.UserClaim = "sub"
	}
	if g.RolesClaim == "" {
		g.RolesClaim = "roles"
	}
}

// verifyConfig is the verifier's config for Provision: the settings plus
// the logger and metrics.
func (g *Gate) verifyConfig() verify.Config {
	repl := caddy.NewReplacer()
	cfg := g.verifySettings(func(s string) string { return repl.ReplaceKnown(s, "") })
	cfg.Logger = g.logger.Named("keys")
	if g.metrics != nil {
		cfg.Observer = g.metrics
		cfg.CacheObserver = g.metrics
	}
	cfg.SetDefaults() // Leeway and the rest as the verifier will use them
	return cfg
}

// verifySettings is the verifier's config from the JSON options alone,
// expand resolving placeholders in HMAC secrets; the Caddyfile parser
// checks it too, so its problems come with their lines.
func (g *Gate) verifySettings(expand func(string) string) verify.Config {
	cfg := verify.Config{
		Algorithms:    g.Algorithms,
		MaxTokenBytes: g.MaxTokenBytes,
		TenantClaim:   g.TenantClaim,
		UserClaim:     g.UserClaim,
		RolesClaim:    g.RolesClaim,
		DPoP: verify.DPoPConfig{
			MaxAge:          time.Duration(g.DPoPMaxAge),
			PublicURL:       g.DPoPPublicURL,
			Algorithms:      g.DPoPAlgorithms,
			ReplayCacheSize: g.DPoPReplayCache,
		},
	}
	if g.Leeway != nil {
		cfg.Leeway, cfg.LeewaySet = time.Duration(*g.Leeway), true
	}
	if g.TokenCache != nil {
		cfg.TokenCacheSize = *g.TokenCache
	}
	for _, is := range g.Issuers {
		cfg.Issuers = append(cfg.Issuers, is.verifyConfig(expand))
	}
	return cfg
}
