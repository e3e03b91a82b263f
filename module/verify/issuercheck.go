package verify

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/tenantgate/tenantgate/module/verify/jose"
	"github.com/tenantgate/tenantgate/module/verify/keysource"
)

// CheckIssuer reports the problems of one issuer's config that need
// nothing but the issuer itself: audiences, the one key source, fetch URLs,
// and for a multi-tenant issuer where {tenant} stands and which tenants it
// admits. Secret lengths (which depend on the allowed algorithms and on
// placeholders expanded later) are left to Config.Validate. The Caddyfile
// parser calls it to report these problems at the issuer's line.
func CheckIssuer(is IssuerConfig) []error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	tmpl := is.IsTemplate()
	if tmpl {
		if err := checkTemplateURL(is.Issuer); err != nil {
			add("issuer: %v", err)
		}
	}
	anyTenant := false
	for _, t := range is.Tenants {
		if t == AnyTenant {
			anyTenant = true
		}
	}

	switch {
	case len(is.Audiences) == 0 && anyTenant:
		add("tenants * needs an audience: without one, a token any tenant's realm minted for any client would pass")
	case len(is.Audiences) == 0:
		add("at least one audience is required")
	}
	for _, a := range is.Audiences {
		if a == "" {
			add("empty audience")
		}
	}
	sources := 0
	for _, s := range []string{is.JWKSURL, is.OIDCDiscovery, is.JWKSFile, is.PublicKeyFile, is.HMACSecret} {
		if s != "" {
			sources++
		}
	}
	switch {
	case sources == 0:
		add("no key source (set one of jwks_url, oidc_discovery, jwks_file, public_key_file, hmac_secret)")
	case sources > 1:
		add("more than one key source (set exactly one of jwks_url, oidc_discovery, jwks_file, public_key_file, hmac_secret)")
	}
	for _, u := range []struct{ what, url string }{{"jwks_url", is.JWKSURL}, {"oidc_discovery", is.OIDCDiscovery}} {
		if u.url == "" {
			continue
		}
		if tmpl && strings.Contains(u.url, TenantPlaceholder) { // without it: checkTemplate says why
			if err := checkTemplateURL(u.url); err != nil {
				add("%s: %v", u.what, err)
				continue
			}
		}
		if err := keysource.CheckFetchURL(strings.ReplaceAll(u.url, TenantPlaceholder, "tenant")); err != nil {
			add("%s: %v", u.what, err)
		}
	}
	if !tmpl {
		if len(is.Tenants) > 0 || is.TenantsFile != "" || is.MaxTenants != 0 {
			add("tenants, tenants_file and max_tenants apply only to a multi-tenant issuer (one with %s in its URL)", TenantPlaceholder)
		}
		return errs
	}
	return append(errs, checkTemplate(is, anyTenant)...)
}

// checkTemplate checks what only a multi-tenant issuer has.
func checkTemplate(is IssuerConfig, anyTenant bool) []error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if is.JWKSFile != "" || is.PublicKeyFile != "" || is.HMACSecret != "" {
		add("a multi-tenant issuer needs jwks_url or oidc_discovery with %s, so each tenant's keys come from its own set (jwks_file, public_key_file and hmac_secret would share one set between tenants)", TenantPlaceholder)
	}
	if is.JWKSURL != "" && !strings.Contains(is.JWKSURL, TenantPlaceholder) {
		add("jwks_url %q has no %s: every tenant would share one key set, and a key of one tenant would verify another's tokens", is.JWKSURL, TenantPlaceholder)
	}
	if is.OIDCDiscovery != "" && !strings.Contains(is.OIDCDiscovery, TenantPlaceholder) {
		add("oidc_discovery %q has no %s: every tenant would share one key set (leave the URL out to use <tenant's issuer>/.well-known/openid-configuration)", is.OIDCDiscovery, TenantPlaceholder)
	}
	if len(is.Tenants) == 0 && is.TenantsFile == "" {
		add("a multi-tenant issuer needs `tenants NAME...`, `tenants *` or `tenants_file PATH`")
	}
	for _, t := range is.Tenants {
		switch {
		case t == AnyTenant && len(is.Tenants) > 1:
			add("tenants: * stands alone (it admits every tenant)")
		case t == AnyTenant:
		case !ValidTenant(t):
			add("tenants: %q is not a tenant name (1-%d characters from A-Z a-z 0-9 . _ -, not \".\" or \"..\")", jose.Truncate(t, 80), MaxTenantLen)
		}
	}
	if anyTenant && is.TenantsFile != "" {
		add("tenants * admits every tenant; tenants_file would change nothing (use one or the other)")
	}
	if is.MaxTenants < 0 {
		add("max_tenants %d: must be at least 1", is.MaxTenants)
	}
	return errs
}

// checkTemplateURL requires {tenant} exactly once, in the path: the host
// (and scheme, port, user info) is fixed by the config, so no token can
// choose which server the gate fetches keys from or which host it trusts.
func checkTemplateURL(raw string) error {
	n := strings.Count(raw, TenantPlaceholder)
	switch {
	case n == 0:
		return fmt.Errorf("%q has no %s", raw, TenantPlaceholder)
	case n > 1:
		return fmt.Errorf("%s must stand exactly once in %q (found %d)", TenantPlaceholder, raw, n)
	}
	// A marker that survives url.Parse shows where the placeholder landed.
	const marker = "tenantplaceholdermarker"
	u, err := url.Parse(strings.Replace(raw, TenantPlaceholder, marker, 1))
	if err != nil {
		return fmt.Errorf("not a URL: %w", err)
	}
	switch {
	case strings.Contains(strings.ToLower(u.Host), marker), strings.Contains(strings.ToLower(u.User.String()), marker), strings.Contains(u.Scheme, marker):
		return fmt.Errorf("%s is in the host part of %q: only the path may vary by tenant (the host is fixed by the config, or a token could pick it)", TenantPlaceholder, raw)
	case !strings.Contains(u.Path, marker):
		return fmt.Errorf("%s must stand in the path of %q (not in its query or fragment)", TenantPlaceholder, raw)
	}
	return nil
}
