package verify

import "time"

// Settings are the verifier's options as the gate's JSON config holds
// them: the gate embeds Settings as its first field (so these keys open
// its JSON object, in this order) and Config embeds the same struct, so
// what the operator writes is what the verifier reads, with no copy in
// between. Zero values mean the default, which Config.SetDefaults or the
// Effective methods supply, once, here.
type Settings struct {
	// Trusted token issuers, each with its own key source and audiences.
	Issuers []IssuerConfig `json:"issuers,omitempty"`

	// Signature algorithms accepted. Default: RS256 ES256 EdDSA. "none" is never accepted.
	Algorithms []string `json:"algorithms,omitempty"`

	// Claim holding the tenant. Default: tenant_id
	TenantClaim string `json:"tenant_claim,omitempty"`

	// Claim holding the user id. Default: sub
	UserClaim string `json:"user_claim,omitempty"`

	// Claim holding the roles (array, or space-separated string). Default: roles
	RolesClaim string `json:"roles_claim,omitempty"`

	// Clock skew allowed on exp/nbf/iat. Default: 30s; an explicit 0 means none.
	Leeway *Duration `json:"leeway,omitempty"`

	// Longest token accepted, in bytes. Default: 8192
	MaxTokenBytes int `json:"max_token_bytes,omitempty"`
}

// EffectiveLeeway is Leeway, or DefaultLeeway when it is not set (nil;
// an explicit 0 stays 0).
func (s *Settings) EffectiveLeeway() time.Duration {
	if s.Leeway == nil {
		return DefaultLeeway
	}
	return time.Duration(*s.Leeway)
}

// CacheSettings is the verified-token cache's option. It is a struct of
// its own, embedded by the gate and by Config like Settings, because the
// gate's JSON has token_cache further down than Settings' keys, and the
// key order of `caddy adapt` output is kept.
type CacheSettings struct {
	// Entries of the verified-token cache; 0 turns it off. Default: 10000
	TokenCache *int `json:"token_cache,omitempty"`
}

// TokenCacheSize is TokenCache, or DefaultTokenCacheSize when it is not
// set (nil; an explicit 0 turns the cache off).
func (c *CacheSettings) TokenCacheSize() int {
	if c.TokenCache == nil {
		return DefaultTokenCacheSize
	}
	return *c.TokenCache
}
