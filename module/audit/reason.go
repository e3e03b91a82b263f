// Package audit holds the audit record the gate writes for every request and
// the closed set of reasons a decision can carry. It does not import Caddy.
package audit

import "net/http"

// Reason is a stable snake_case word naming why a request was allowed or
// denied. The set is closed: dashboards, alerts and the README rely on it.
type Reason string

// The closed set of reasons. Keep README.md's table in step with this list.
//
// #nosec G101 -- reason words such as "token_expired", not credentials.
const (
	ReasonOK              Reason = "ok"                  // allowed: token valid, rule satisfied
	ReasonPublic          Reason = "public"              // allowed: public rule, no identity
	ReasonMissingToken    Reason = "missing_token"       // no bearer token sent
	ReasonMalformedToken  Reason = "malformed_token"     // not a compact JWS: bad parts, base64, JSON, JWE, too large
	ReasonBadAlgorithm    Reason = "bad_algorithm"       // alg not allow-listed, none, or not fitting the key
	ReasonBadHeader       Reason = "bad_header"          // jku/jwk/x5u/x5c header or an unknown crit entry
	ReasonUnknownKey      Reason = "unknown_key"         // no key of the issuer matches the token's kid
	ReasonBadSignature    Reason = "bad_signature"       // signature does not verify
	ReasonUnknownIssuer   Reason = "unknown_issuer"      // iss missing or not configured
	ReasonWrongAudience   Reason = "wrong_audience"      // aud lacks the configured audience
	ReasonTokenExpired    Reason = "token_expired"       // exp in the past (beyond leeway)
	ReasonTokenNotYet     Reason = "token_not_yet_valid" // nbf or iat in the future (beyond leeway)
	ReasonMissingClaim    Reason = "missing_claim"       // exp missing, or a claim with the wrong type
	ReasonKeysUnavailable Reason = "keys_unavailable"    // the issuer's keys could not be loaded yet
	ReasonNoTenant        Reason = "no_tenant"           // tenant claim missing or malformed
	ReasonMissingRole     Reason = "missing_role"        // none of the rule's roles is held
	ReasonTenantMismatch  Reason = "tenant_mismatch"     // path tenant differs from the token's
	ReasonTenantNotAllow  Reason = "tenant_not_allowed"  // tenant not in the rule's allow-list
	ReasonNoRoute         Reason = "no_route"            // no rule matches method and path
	ReasonBadPath         Reason = "bad_path"            // path not canonical
	ReasonInternal        Reason = "internal_error"      // the gate failed (e.g. could not sign the assertion)
	ReasonBadDPoPProof    Reason = "bad_dpop_proof"      // DPoP proof missing, malformed, wrong htm/htu/ath, stale or replayed
	ReasonBindingMismatch Reason = "binding_mismatch"    // bound token without its key or certificate, or sent as Bearer
	ReasonWrongTokenType  Reason = "wrong_token_type"    // JOSE typ is not the issuer's token_type (e.g. an ID token where at+jwt is required)
	ReasonCSRFSuspected   Reason = "csrf_suspected"      // cookie token on an unsafe method without a same-origin signal
	ReasonTokenRevoked    Reason = "token_revoked"       // the token's jti, subject or tenant was revoked (after it was issued)
	// dpop_nonce: the DPoP proof has no nonce, or one this server did not hand out recently (RFC 9449 §9)
	ReasonDPoPNonceRequired Reason = "dpop_nonce_required"

	// From tenant_rate_limit (module/ratelimit), recorded by the gate.
	ReasonRateLimited          Reason = "rate_limited"           // the tenant is over a limit
	ReasonRateLimitUnavailable Reason = "rate_limit_unavailable" // the limit store failed and on_store_error is deny
)

// Reasons lists every reason, in the order the README documents them.
var Reasons = []Reason{
	ReasonOK, ReasonPublic, ReasonMissingToken, ReasonMalformedToken, ReasonBadAlgorithm,
	ReasonBadHeader, ReasonUnknownKey, ReasonBadSignature, ReasonUnknownIssuer,
	ReasonWrongAudience, ReasonTokenExpired, ReasonTokenNotYet, ReasonMissingClaim,
	ReasonKeysUnavailable, ReasonNoTenant, ReasonMissingRole, ReasonTenantMismatch,
	ReasonTenantNotAllow, ReasonNoRoute, ReasonBadPath, ReasonInternal,
	ReasonBadDPoPProof, ReasonBindingMismatch,
	ReasonWrongTokenType, ReasonCSRFSuspected, ReasonTokenRevoked,
	ReasonDPoPNonceRequired,
	ReasonRateLimited, ReasonRateLimitUnavailable,
}

// Status is the HTTP status a denial for this reason answers with.
func (r Reason) Status() int {
	switch r {
	case ReasonOK, ReasonPublic:
		return http.StatusOK
	case ReasonBadPath:
		return http.StatusBadRequest
	case ReasonKeysUnavailable, ReasonRateLimitUnavailable:
		return http.StatusServiceUnavailable
	case ReasonRateLimited:
		return http.StatusTooManyRequests
	case ReasonInternal:
		return http.StatusInternalServerError
	case ReasonNoTenant, ReasonMissingRole, ReasonTenantMismatch, ReasonTenantNotAllow, ReasonNoRoute, ReasonCSRFSuspected:
		return http.StatusForbidden
	default:
		return http.StatusUnauthorized
	}
}

// Title is the short human title used in problem+json bodies.
func (r Reason) Title() string {
	switch r {
	case ReasonRateLimited:
		return "Too many requests"
	case ReasonRateLimitUnavailable:
		return "Rate limit store unavailable"
	}
	switch r.Status() {
	case http.StatusBadRequest:
		return "Bad request path"
	case http.StatusUnauthorized:
		return "Unauthorized"
	case http.StatusForbidden:
		return "Forbidden"
	case http.StatusServiceUnavailable:
		return "Signing keys unavailable"
	case http.StatusInternalServerError:
		return "Internal error"
	}
	return "OK"
}

// Valid reports whether r belongs to the closed set.
func (r Reason) Valid() bool {
	for _, k := range Reasons {
		if k == r {
			return true
		}
	}
	return false
}
