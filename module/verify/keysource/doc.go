// Package keysource supplies the verification keys of an issuer through
// one interface, Source: Keys, UnknownKid (a bounded, shared refetch when a
// token names a kid the set lacks), Unavailable (while no keys have
// loaded), Announce and Close.
//
//   - New makes the source a Spec names: Static for jwks_file,
//     public_key_file and hmac_secret (loaded once, checked against the
//     allowed algorithms), Remote for jwks_url and oidc_discovery.
//   - Remote is one config's handle on a key set held by Feeds, the
//     process's store of remote sets keyed by issuer and URL: a reload's
//     new config starts with the last good keys, every set is refreshed by
//     the process's one scheduler (no goroutine per set), and a failed
//     refresh keeps the last good keys.
//   - Template is one config's multi-tenant issuer ({tenant} in its URL);
//     its tenants live in the process's pool for the issuer block (also in
//     Feeds, so reloads keep them): one Remote per tenant, fetched on first
//     use behind a new-tenant budget spent per issuer and per client
//     address, at most MaxTenants held (LRU), failures remembered a while;
//     Tenant is one.
//
// Sources never reach back into the verifier: what they need (Feeds, HTTP
// client, logger, Observer for metrics, refetch gap, clock) comes in Env.
// It does not import Caddy; errors for requests are *verr.Error.
package keysource
