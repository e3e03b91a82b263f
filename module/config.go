package tenantgate

import (
	"fmt"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2"

	"github.com/tenantgate/tenantgate/module/assertion"
	"github.com/tenantgate/tenantgate/module/verify"
)

// setDefaults fills, once, in Provision, every gate option left unset that
// the gate itself uses; the verifier's options (verify.Settings,
// CacheSettings, DPoPConfig) get theirs in verify, once, in verify.New.
func (g *Gate) setDefaults() {
	if g.Mode == "" {
		g.Mode = ModeEnforce
	}
	if g.AssertionAlg == "" {
		g.AssertionAlg = assertion.AlgEdDSA
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
}

// checkOptions reports every problem of the gate's own options, each
// message starting with the option's name. It is the one place they are
// checked: Validate runs it on every config, and the Caddyfile parser runs
// it too, to name each problem's line. An empty value is the default.
func (g *Gate) checkOptions() []error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if g.Mode != "" && g.Mode != ModeEnforce && g.Mode != ModeReport {
		add("mode %q: want enforce or report", g.Mode)
	}
	if g.AssertionAlg != "" && g.AssertionAlg != assertion.AlgEdDSA && g.AssertionAlg != assertion.AlgHS256 {
		add("assertion_alg %q: want EdDSA or HS256", g.AssertionAlg)
	}
	if g.MetricsMaxTenants < 0 {
		add("metrics_max_tenants %d: must be positive", g.MetricsMaxTenants)
	}
	if g.TokenQuery != "" && strings.ContainsAny(g.TokenQuery, "&=") {
		add("token_query %q: not a query parameter name", g.TokenQuery)
	}
	if _, err := parseCertPeers(g.ClientCertFrom); err != nil {
		errs = append(errs, splitErrors(err)...)
	}
	return errs
}

// verifyConfig is the verifier's config for Provision: the settings plus
// the logger and metrics. verify.New fills the defaults.
func (g *Gate) verifyConfig() verify.Config {
	repl := caddy.NewReplacer()
	cfg := g.verifySettings(func(s string) string { return repl.ReplaceKnown(s, "") })
	cfg.Logger = g.logger.Named("keys")
	if g.metrics != nil {
		cfg.Observer = g.metrics
		cfg.CacheObserver = g.metrics
	}
	return cfg
}

// verifySettings is the verifier's config from the JSON options alone:
// the gate's verify.Settings, CacheSettings and DPoPConfig as they are,
// with the issuers copied so that expand, resolving placeholders in HMAC
// secrets, never writes back into the config. The Caddyfile parser checks
// it too, so its problems come with their lines.
func (g *Gate) verifySettings(expand func(string) string) verify.Config {
	cfg := verify.Config{
		Settings:      g.Settings,
		CacheSettings: g.CacheSettings,
		DPoP:          g.DPoPConfig,
	}
	cfg.Issuers = slices.Clone(cfg.Issuers)
	for i := range cfg.Issuers {
		cfg.Issuers[i].HMACSecret = expand(cfg.Issuers[i].HMACSecret)
	}
	return cfg
}
