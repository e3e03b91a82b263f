// Package dpop checks DPoP proofs (RFC 9449) for tokens bound to a key
// (cnf.jkt). Checker.Check runs, in order: exactly one proof, the compact
// form and header (PreCheckProof: typ dpop+jwt, an asymmetric allowed alg,
// a public jwk and no key by reference), the signature with that jwk, htm,
// htu (the request URL, or dpop_public_url's scheme and host), iat within
// MaxAge (dpop_max_age), ath, the jwk thumbprint against cnf.jkt (binding_mismatch), the
// jti's form, the nonce when a NonceSource is set (dpop_nonce_required), and
// last the jti, claimed in a ReplayStore so a proof passes once.
//
// ReplayStore is the seam for replay state: MemoryReplay is the bounded
// in-memory store one process shares between its configs; a store shared
// by replicas (Redis) implements the same Claim. NonceSource is the seam
// for server-provided nonces (RFC 9449 §8, §9): Nonces derives them from a
// NonceSecret per time window, so replicas that share the secret accept
// each other's nonces with no per-nonce state.
//
// It does not import Caddy; errors are *verr.Error.
package dpop
