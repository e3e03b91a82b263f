package tenantgate

import (
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/tenantgate/tenantgate/module/verify"
)

// Issuer is one trusted token issuer.
type Issuer struct {
	// The exact iss value.
	Issuer string `json:"issuer"`
	// Audiences of which the token's aud must contain one.
	Audiences []string `json:"audiences,omitempty"`
	// Remote JWKS, cached and refreshed.
	JWKSURL string `json:"jwks_url,omitempty"`
	// OpenID discovery document URL (its jwks_uri is used like jwks_url).
	OIDCDiscovery string `json:"oidc_discovery,omitempty"`
	// Local JWKS file.
	JWKSFile string `json:"jwks_file,omitempty"`
	// Local PEM public key or certificate.
	PublicKeyFile string `json:"public_key_file,omitempty"`
	// Shared HMAC secret, at least 32 bytes; placeholders such as {env.NAME} or {file./path} are expanded.
	HMACSecret string `json:"hmac_secret,omitempty"`
	// How often remote keys are refreshed. Default: 5m
	RefreshInterval caddy.Duration `json:"refresh_interval,omitempty"`
	// "required" refuses tokens of this issuer that are not DPoP-bound (cnf.jkt). Default: optional
	DPoP string `json:"dpop,omitempty"`
	// "required" refuses tokens of this issuer that are not certificate-bound (cnf x5t#S256). Default: optional
	MTLSBinding string `json:"mtls_binding,omitempty"`
	// JOSE header typ required of this issuer's tokens, e.g. at+jwt (RFC 9068; application/at+jwt
	// is accepted too), so an ID token cannot pass as an access token. Default: not checked
	TokenType string `json:"token_type,omitempty"`
	// Multi-tenant issuer (issuer URL with {tenant} once, in the path):
	// tenants admitted, by name, or ["*"] for any. Unioned with tenants_file.
	Tenants []string `json:"tenants,omitempty"`
	// File of tenants admitted, one per line, re-read when it changes.
	TenantsFile string `json:"tenants_file,omitempty"`
	// Key sets of a multi-tenant issuer held at once. Default: 1000
	MaxTenants int `json:"max_tenants,omitempty"`
}

// verifyConfig is the issuer as the verifier takes it; expand resolves
// placeholders in the HMAC secret.
func (is Issuer) verifyConfig(expand func(string) string) verify.IssuerConfig {
	secret := expand(is.HMACSecret)
	return verify.IssuerConfig{
		Issuer:          is.Issuer,
		Audiences:       is.Audiences,
		JWKSURL:         is.JWKSURL,
		OIDCDiscovery:   is.OIDCDiscovery,
		JWKSFile:        is.JWKSFile,
		PublicKeyFile:   is.PublicKeyFile,
		HMACSecret:      secret,
		RefreshInterval: time.Duration(is.RefreshInterval),
		Tenants:         is.Tenants,
		TenantsFile:     is.TenantsFile,
		MaxTenants:      is.MaxTenants,
		TokenType:       is.TokenType,
		RequireDPoP:     is.DPoP == requirementRequired,
		RequireMTLS:     is.MTLSBinding == requirementRequired,
	}
}
