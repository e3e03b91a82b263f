// Package verify checks bearer tokens for the gate and says who the bearer
// is and how the request proved it holds the token. It does not import
// Caddy. Its parts, each a package with an exported seam:
//
//	verify/jose       compact-JWS pre-check, protected header, JSON walker,
//	                  keys and key sets, signatures (jwx); no state
//	verify/keysource  Source: the keys of one issuer (jwks_url,
//	                  oidc_discovery, jwks_file, public_key_file,
//	                  hmac_secret), Feeds (the process's remote key sets),
//	                  Template (multi-tenant issuers); what a source needs
//	                  comes in through Env, never from the Verifier
//	verify/dpop       Checker: DPoP proofs (RFC 9449); ReplayStore, with
//	                  the in-memory MemoryReplay; NonceSource (server
//	                  nonces), with Nonces
//	verify/verr       Error, the failure every part returns
//	verify/duration   Duration, a config duration read as Caddy reads one
//
// This package holds the Verifier (issuers, claims, the verified-token
// cache, bindings) and the Store: the process's state that outlives a
// config (key feeds, the replay set, the caches the gauges read). The gate
// keeps one Store in a caddy.UsagePool; a test makes its own with NewStore,
// or leaves Config.Store nil for a store of the verifier's own.
//
// The verifier's options are the gate's JSON itself (json tags, durations
// as Duration, read like caddy.Duration; no Caddy import): Settings
// (issuers, each an IssuerConfig, algorithms, claims, leeway,
// max_token_bytes), CacheSettings (token_cache) and DPoPConfig (dpop_*,
// package verify/dpop). The gate embeds all three and Config holds the
// same structs, so the gate hands them over as they are, with HMAC secret
// placeholders expanded; there is no second declaration to keep in step.
// Config.SetDefaults (run once, by New) and Config.Validate are where they
// get their defaults and their checks; the Caddyfile parser runs the same
// Validate to name each problem's line.
//
// Verify returns a Result (the Identity and the binding checked) or an
// *Error. Order of checks, each with the reason it fails with:
//
//	size, parts, base64url, header JSON, JWE/JSON form   malformed_token
//	jku/x5u/jwk/x5c, crit, b64, non-string kid            bad_header
//	alg missing, none, not allow-listed                   bad_algorithm
//	payload not a JSON object, duplicate members          malformed_token
//	iss missing, not a string, not configured             unknown_issuer
//	  (multi-tenant: tenant not admitted, or its IdP
//	  answered 404/410, or discovery names another issuer)
//	multi-tenant: too many new tenants at once, or the    keys_unavailable (RetryAfter set
//	  tenant's first fetch failed                           when known)
//	issuer's remote keys not fetched yet                  keys_unavailable (RetryAfter set)
//	kid not yet seen (or kid-less, verified by no held    waits for the next refetch when
//	  key): the next refetch more than 3 s away, or       it is at most 3 s away; else
//	  a flood grew the gap past 3 s                       keys_unavailable (RetryAfter set;
//	                                                      kid-less: bad_signature)
//	kid unknown after a refetch made for it, or dropped   unknown_key
//	  by the IdP (remembered while it stays dropped)
//	no key of the issuer fits alg (type, curve, alg, size) bad_algorithm
//	signature does not verify                             bad_signature
//	typ is not the issuer's TokenType                     wrong_token_type
//	exp/nbf/iat not a non-negative number; sub or jti     missing_claim
//	  not a string
//	aud not a string or an array of strings               wrong_audience
//	exp missing                                           missing_claim
//	exp + leeway passed                                   token_expired
//	nbf or iat later than now + leeway                    token_not_yet_valid
//	aud without a configured audience (or absent, [],     wrong_audience
//	  [""])
//	user claim not a string; roles neither an array of    missing_claim
//	  strings nor a string, or a role holding ","
//	cnf not an object, jkt / x5t#S256 not a non-empty     missing_claim
//	  string
//	multi-tenant: tenant claim differs from iss's tenant  tenant_mismatch
//	tenant claim missing or malformed                     no_tenant (Identity returned too)
//
// Then, for every request, cached token or not (perrequest.go, binding.go;
// the partial Identity returned too):
//
//	exp/nbf/iat against the clock, with leeway            token_expired, token_not_yet_valid
//	cnf with an unsupported confirmation method           binding_mismatch
//	issuer requires dpop / mtls_binding, token unbound    binding_mismatch
//	cnf.jkt token sent as Bearer (or cookie, query)       binding_mismatch
//	DPoP scheme with a token that has no cnf.jkt          binding_mismatch
//	DPoP proof missing, two, malformed, wrong typ/alg/    bad_dpop_proof
//	  jwk, bad signature, htm, htu, iat, ath, jti
//	proof key thumbprint differs from cnf.jkt             binding_mismatch
//	dpop_nonce: proof nonce missing, stale or unknown     dpop_nonce_required
//	proof jti seen before within dpop_max_age, or the     bad_dpop_proof
//	  replay store could not answer
//	cnf x5t#S256 without a matching client certificate    binding_mismatch
//
// Claims are only judged after the signature verified, so an unsigned token
// learns nothing about which claim would have failed. Every failure after
// the signature verified returns the partial Identity (Issuer, TokenID and
// what was read so far, never a Tenant) with the Error, for the audit record.
//
// Choices where the contract left room:
//   - exp, nbf or iat that is not a non-negative JSON number (a string, null,
//     -5) is missing_claim, as is a sub/jti/user claim that is not a string.
//   - exp is accepted up to and including exp+leeway, nbf/iat down to and
//     including now+leeway; times are compared in whole seconds.
//   - roles that are neither an array of strings nor a string are refused with
//     missing_claim (not read as "no roles"); absent or null means no roles.
//   - A kid no key has triggers a refetch of a remote set, shared by all
//     concurrent callers, unless one ended within the refetch gap (see
//     keysource/feeds.go); keys without a kid (PEM, hmac_secret, kid-less
//     JWKs) match any token kid (when none verifies, the refetch still runs),
//     and a token without kid tries every key of the issuer that fits its
//     alg. An empty kid counts as no kid.
//   - Remote key sets belong to the Store (keysource.Feeds), shared by every
//     Verifier naming the same issuer and URL, so a new config starts with
//     the last good keys.
//   - Key sets: a key with use other than "sig", key_ops without "verify", an
//     alg that is not a supported JWS name (e.g. "ES521"), an alg that does not
//     fit the key, or an X25519 key is skipped. A set fails as a whole (for a
//     remote set: the refresh fails and the last good keys stay) on private key
//     material ("d"), any oct key in a remote set, oct mixed with public keys
//     in a local file, RSA under 2048 bits / over 16384 bits / exponent < 3 or
//     even / ROCA fingerprint, an EC point off its curve, an HMAC key under 32
//     bytes (or under 48/64 when it pins HS384/HS512), duplicate kids among
//     usable keys, duplicate JSON members, or no usable key at all.
//   - HS384 and HS512 need a secret of at least 48 and 64 bytes (RFC 7518
//     §3.2); a shorter hmac_secret is a config error when they are allowed.
//   - PS256/384/512 are verified with the salt length fixed to the hash size
//     (RFC 7518 §3.5); see jose/pss.go.
//   - EdDSA (tokens and DPoP proofs) is verified by curve25519-voi with
//     crypto/ed25519's rules, for speed; see jose/eddsa.go.
//   - Rate limits and refresh timers use the wall clock, not Config.Now, which
//     drives claim validation and the DPoP iat window.
//   - jwks_url, oidc_discovery and a discovered jwks_uri must be https, or http
//     to a loopback host.
package verify
