package verify

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/tenantgate/tenantgate/module/audit"
	"github.com/tenantgate/tenantgate/module/verify/jose"
)

// Event tokens are the JWTs an issuer sends the gate rather than a client:
// OpenID Connect back-channel logout tokens and Security Event Tokens (RFC
// 8417). They are verified like access tokens, with the same issuer
// configuration: the header rules and alg allow-list, the issuer's own
// keys (with its unknown-kid refetch) and jwx signature verification, the
// issuer's audiences, and exp/nbf/iat with leeway. What differs is the
// claims: no tenant, user or roles; iat and jti required; and the JOSE typ,
// when present, must name the event token's own type, so that no other
// JWT of the issuer (an ID token, an access token) can pass as one.

// EventTokenProfile says what one kind of event token must look like.
type EventTokenProfile struct {
	// Name names the kind in messages ("logout token", "SET").
	Name string
	// Typ is the only JOSE typ accepted when the header has one, bare or
	// as application/<typ>.
	Typ string
	// RequireExp refuses a token without exp.
	RequireExp bool
	// MaxAge refuses a token whose iat lies further back (plus leeway):
	// the jti of a token is remembered for that long at most, so an older
	// one could be a replay the gate has forgotten.
	MaxAge time.Duration
}

// EventToken is what a verified event token says.
type EventToken struct {
	// Issuer is the exact iss; Tenant the tenant a multi-tenant issuer's
	// iss names ("" for other issuers).
	Issuer, Tenant string
	JTI            string
	// IssuedAt is iat; Expiry is exp, zero when the token has none.
	IssuedAt, Expiry time.Time
	// Claims are the payload's top-level members, raw (no member name is
	// repeated at any depth: the parser refused that).
	Claims map[string]json.RawMessage
}

// RememberUntil is how long the token's jti must be remembered to refuse
// a replay: until it expires, and no longer than the profile's MaxAge from
// its iat (later it is refused as too old), plus leeway.
func (t *EventToken) RememberUntil(p EventTokenProfile, leeway time.Duration) time.Time {
	until := t.IssuedAt.Add(p.MaxAge)
	if !t.Expiry.IsZero() && t.Expiry.Before(until) {
		until = t.Expiry
	}
	return until.Add(leeway + time.Second)
}

// Leeway is the clock skew the verifier allows on times.
func (v *Verifier) Leeway() time.Duration { return v.leeway }

// verifyEventToken checks the signature, header, issuer, audience, times
// and jti of an event token of profile p.
func (v *Verifier) verifyEventToken(ctx context.Context, raw, client string, p EventTokenProfile) (*EventToken, *Error) {
	parts, e := jose.Split(raw, v.cfg.MaxTokenBytes)
	if e != nil {
		return nil, e
	}
	h, e := jose.CheckHeader(parts.HeaderMembers)
	if e != nil {
		return nil, e
	}
	if !v.allowed[h.Alg] {
		return nil, fail(audit.ReasonBadAlgorithm, fmt.Sprintf("%s is signed with an algorithm not allowed here; allowed: %s", p.Name, v.allowedList), nil)
	}
	if _, has := parts.HeaderMembers["typ"]; has && !typIs(h.Typ, p.Typ) {
		return nil, fail(audit.ReasonWrongTokenType, fmt.Sprintf("%s header typ must be %q when present", p.Name, p.Typ), nil)
	}
	payload, err := jose.StrictB64.DecodeString(parts.Payload)
	if err != nil {
		return nil, jose.Malformed(p.Name+" payload is not canonical unpadded base64url", err)
	}
	claims, err := jose.ParseObject(payload)
	if err != nil {
		return nil, jose.Malformed(p.Name+" payload is not a valid JSON object", err)
	}
	var iss string
	if rawIss, ok := claims["iss"]; !ok || jose.UnmarshalString(rawIss, &iss) != nil {
		return nil, fail(audit.ReasonUnknownIssuer, p.Name+" has no iss string", nil)
	}
	is, e := v.lookupIssuer(ctx, iss, client)
	if e != nil {
		return nil, e
	}
	ks := is.src.Keys()
	if ks == nil {
		e := fail(audit.ReasonKeysUnavailable, fmt.Sprintf("signing keys of issuer %q are not loaded yet; retry shortly", iss), nil)
		e.RetryAfter = is.src.Unavailable()
		return nil, e
	}
	sig, e := jose.DecodeSignature(&parts)
	if e != nil {
		return nil, e
	}
	if _, _, e := v.checkSignature(ctx, is, ks, h, &parts, sig); e != nil {
		return nil, e
	}
	t := &EventToken{Issuer: is.iss, Tenant: is.tenant, Claims: claims}
	if e := v.eventClaims(is, t, p); e != nil {
		return t, e
	}
	return t, nil
}

// eventClaims checks the registered claims of a signed event token: types,
// jti, aud, then times.
func (v *Verifier) eventClaims(is *issuerState, t *EventToken, p EventTokenProfile) *Error {
	c := t.Claims
	for _, name := range [...]string{"exp", "nbf", "iat"} {
		if raw, ok := c[name]; ok && !jose.IsJSONNumber(raw) {
			return fail(audit.ReasonMissingClaim, fmt.Sprintf("%s claim %q must be a NumericDate", p.Name, name), nil)
		}
	}
	if raw, ok := c["jti"]; !ok || jose.UnmarshalString(raw, &t.JTI) != nil || t.JTI == "" {
		return fail(audit.ReasonMissingClaim, p.Name+` has no "jti" string: every one must carry a unique jti`, nil)
	}
	if len(t.JTI) > 1024 {
		return fail(audit.ReasonMissingClaim, p.Name+` "jti" is longer than 1024 bytes`, nil)
	}
	aud, ok := audiences(c["aud"])
	if _, present := c["aud"]; !present || !ok || !is.audienceAccepted(aud) {
		return fail(audit.ReasonWrongAudience, fmt.Sprintf("%s aud does not contain an audience accepted for issuer %q", p.Name, is.iss), nil)
	}
	var nbf time.Time
	for _, m := range [...]struct {
		name string
		dst  *time.Time
	}{{"exp", &t.Expiry}, {"nbf", &nbf}, {"iat", &t.IssuedAt}} {
		if raw, ok := c[m.name]; ok {
			d, err := numericDate(raw)
			if err != nil {
				return jose.Malformed(p.Name+" claims could not be decoded", err)
			}
			*m.dst = d
		}
	}
	if _, ok := c["iat"]; !ok {
		return fail(audit.ReasonMissingClaim, p.Name+` has no "iat"`, nil)
	}
	if _, ok := c["exp"]; !ok && p.RequireExp {
		return fail(audit.ReasonMissingClaim, p.Name+` has no "exp"`, nil)
	}
	return checkEventTimes(t, nbf, v.cfg.Now(), v.leeway, p)
}

// checkEventTimes judges exp, nbf and iat as checkTimes does for access
// tokens (whole seconds, exp accepted through exp+leeway), exp being
// optional, and refuses an iat older than the profile's MaxAge.
func checkEventTimes(t *EventToken, nbf, now time.Time, leeway time.Duration, p EventTokenProfile) *Error {
	now = now.Truncate(time.Second)
	if !t.Expiry.IsZero() && (t.Expiry.Unix() <= 0 || !now.Before(t.Expiry.Truncate(time.Second).Add(leeway+time.Second))) {
		return fail(audit.ReasonTokenExpired, p.Name+" has expired", nil)
	}
	if !nbf.IsZero() && nbf.Unix() != 0 && now.Before(nbf.Add(-leeway)) {
		return fail(audit.ReasonTokenNotYet, p.Name+" is not valid yet (nbf is in the future)", nil)
	}
	if now.Before(t.IssuedAt.Add(-leeway)) {
		return fail(audit.ReasonTokenNotYet, p.Name+" is issued in the future (iat); check the clocks", nil)
	}
	if p.MaxAge > 0 && now.After(t.IssuedAt.Add(p.MaxAge+leeway)) {
		return fail(audit.ReasonTokenExpired, fmt.Sprintf("%s was issued more than %s ago (iat): too old to be told from a replay", p.Name, p.MaxAge), nil)
	}
	return nil
}

// typIs reports whether a JOSE typ names want: bare or as
// application/<want>, case-insensitively (media types, RFC 7515 §4.1.9).
func typIs(typ, want string) bool {
	return strings.EqualFold(typ, want) || strings.EqualFold(typ, "application/"+want)
}
