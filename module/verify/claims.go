package verify

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/tenantgate/tenantgate/module/audit"
	"github.com/tenantgate/tenantgate/module/tenantid"

	"github.com/tenantgate/tenantgate/module/verify/jose"
)

// MaxTenantLen is the longest tenant value accepted.
const MaxTenantLen = tenantid.MaxLen

// checkClaims validates the claims of a token whose signature verified.
// Type rules are ours (a wrong type is ReasonMissingClaim, or
// ReasonWrongAudience for aud). The rules after them run in the order
// jwt.Validate ran them with the options this package used to pass it
// (exp required, exp, nbf, iat, iss, aud), with jwx's own NumericDate
// reading and time comparisons (see numericDate and checkTimes), without a
// map-backed jwt.Token per request: claims_reference_test.go checks the two
// agree.
//
// The times are recorded in t, for the per-request checks that every later
// use of the token runs.
func (v *Verifier) checkClaims(is *issuerState, claims map[string]json.RawMessage, t *verifiedToken, id *Identity) (*Identity, *Error) {
	for _, name := range [...]string{"exp", "nbf", "iat"} {
		if raw, ok := claims[name]; ok && !jose.IsJSONNumber(raw) {
			return nil, fail(audit.ReasonMissingClaim, fmt.Sprintf("claim %q must be a NumericDate (a non-negative number of seconds)", name), nil)
		}
	}
	for _, name := range [...]string{"sub", "jti"} {
		if raw, ok := claims[name]; ok && !jose.IsJSONString(raw) {
			return nil, fail(audit.ReasonMissingClaim, fmt.Sprintf("claim %q must be a string", name), nil)
		}
	}
	aud, audOK := audiences(claims["aud"])
	if _, present := claims["aud"]; present && !audOK {
		return id, fail(audit.ReasonWrongAudience, "claim \"aud\" must be a string or an array of strings", nil)
	}
	for _, c := range [...]struct {
		name string
		dst  *time.Time
	}{{"exp", &t.exp}, {"nbf", &t.nbf}, {"iat", &t.iat}} {
		if raw, ok := claims[c.name]; ok {
			d, err := numericDate(raw)
			if err != nil {
				return id, jose.Malformed("token claims could not be decoded", err)
			}
			*c.dst = d
		}
	}
	if raw, ok := claims["jti"]; ok {
		if err := jose.UnmarshalString(raw, &id.TokenID); err != nil {
			return id, jose.Malformed("token claims could not be decoded", err)
		}
	}
	if _, ok := claims["exp"]; !ok {
		return id, fail(audit.ReasonMissingClaim, "token has no exp claim; tokens must expire", nil)
	}
	if e := checkTimes(t, v.cfg.Now(), v.leeway); e != nil {
		return id, e
	}
	if !is.audienceAccepted(aud) {
		return id, fail(audit.ReasonWrongAudience, fmt.Sprintf("token aud does not contain an audience accepted for issuer %q", is.iss), nil)
	}

	id.Expiry, id.IssuedAt = t.exp, t.iat
	if raw, ok := claims["sid"]; ok && jose.IsJSONString(raw) {
		_ = jose.UnmarshalString(raw, &id.Sid)
	}
	if raw, ok := v.userPath.lookup(claims); ok && !jose.IsJSONNull(raw) {
		if err := jose.UnmarshalString(raw, &id.Subject); err != nil {
			return id, fail(audit.ReasonMissingClaim, fmt.Sprintf("user claim %q must be a string", v.userPath), err)
		}
	}
	rawRoles, _ := v.rolesPath.lookup(claims)
	roles, ok := parseRoles(rawRoles)
	if !ok {
		return id, fail(audit.ReasonMissingClaim, fmt.Sprintf("roles claim %q must be an array of strings or one space-separated string", v.rolesPath), nil)
	}
	id.Roles = roles
	cnf, err := parseCnf(claims["cnf"])
	if err != nil {
		return nil, fail(audit.ReasonMissingClaim, `claim "cnf" must be an object whose "jkt" and "x5t#S256" members are non-empty strings`, err)
	}
	id.Cnf = cnf

	raw, hasTenant := v.tenantPath.lookup(claims)
	if is.tenant != "" {
		// A multi-tenant issuer: the tenant is the one its iss names, whose
		// keys verified the token. A tenant claim may only confirm it.
		if hasTenant && !jose.IsJSONNull(raw) {
			var claimed string
			if err := jose.UnmarshalString(raw, &claimed); err != nil || claimed != is.tenant {
				return id, fail(audit.ReasonTenantMismatch, fmt.Sprintf("tenant claim %q disagrees with the tenant %q that the token's issuer names", v.tenantPath, is.tenant), err)
			}
		}
		id.Tenant = is.tenant
		return id, nil
	}
	if !hasTenant {
		return id, fail(audit.ReasonNoTenant, fmt.Sprintf("token has no tenant claim %q", v.tenantPath), nil)
	}
	var tenant string
	if err := jose.UnmarshalString(raw, &tenant); err != nil || !ValidTenant(tenant) {
		return id, fail(audit.ReasonNoTenant, fmt.Sprintf("tenant claim %q must be a string of 1-%d characters from A-Z a-z 0-9 . _ - (not \".\" or \"..\")", v.tenantPath, MaxTenantLen), err)
	}
	id.Tenant = tenant
	return id, nil
}

// numericDate reads a NumericDate exactly as jwx v2 does (its
// types.NumericDate from a json.Number, default precision): whole seconds,
// any fraction dropped; a number with an exponent is refused (jwx tries it
// as an RFC 3339 time and fails). raw is a non-negative JSON number.
func numericDate(raw json.RawMessage) (time.Time, error) {
	s := string(bytes.TrimSpace(raw))
	if strings.ContainsAny(s, "eE") {
		return time.Time{}, fmt.Errorf("NumericDate %q has an exponent", jose.Truncate(s, 32))
	}
	whole := s
	if i := strings.IndexByte(s, '.'); i > 0 {
		whole = s[:i]
	}
	n, err := strconv.ParseInt(whole, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("NumericDate %q: %w", jose.Truncate(s, 32), err)
	}
	return time.Unix(n, 0).UTC(), nil
}

// audiences reads aud: one string or an array of strings (absent: none).
// ok is false for any other shape, null elements included.
func audiences(raw json.RawMessage) (aud []string, ok bool) {
	if raw == nil {
		return nil, true
	}
	if jose.IsJSONString(raw) {
		var one string
		if err := jose.UnmarshalString(raw, &one); err != nil {
			return nil, false
		}
		return []string{one}, true
	}
	list, err := jose.StringArray(raw)
	if err != nil || jose.FirstByte(raw) != '[' {
		return nil, false
	}
	aud = make([]string, len(list))
	for i, s := range list {
		if s == nil {
			return nil, false
		}
		aud[i] = *s
	}
	return aud, true
}

// audienceAccepted reports whether aud holds any of the issuer's audiences.
// Empty aud, missing aud and [""] never match.
func (is *issuerState) audienceAccepted(aud []string) bool {
	for _, a := range aud {
		if _, ok := is.aud[a]; ok && a != "" {
			return true
		}
	}
	return false
}

// ValidTenant reports whether s is an acceptable tenant: 1 to 64 characters
// of A-Z a-z 0-9 . _ -, and not "." or "..", which are path segments.
func ValidTenant(s string) bool { return tenantid.Valid(s) }

// parseRoles reads a roles claim: a JSON array of strings, or one string of
// space-separated roles. Absent or null means no roles. Any other shape is
// refused (ok false) rather than silently read as "no roles", so a broken IdP
// mapping shows up as missing_claim instead of as puzzling missing_role denials.
// A role holding "," is refused too: X-User-Roles is comma-separated.
func parseRoles(raw json.RawMessage) (roles []string, ok bool) {
	if raw == nil || jose.IsJSONNull(raw) {
		return nil, true
	}
	var one string
	if jose.IsJSONString(raw) && jose.UnmarshalString(raw, &one) == nil {
		roles = strings.Fields(one)
		for _, r := range roles {
			if strings.Contains(r, ",") {
				return nil, false
			}
		}
		return roles, true
	}
	list, err := jose.StringArray(raw)
	if err != nil {
		return nil, false
	}
	for _, r := range list {
		if r == nil {
			return nil, false
		}
		// X-User-Roles joins roles with ",": a role holding one would reach
		// the upstream as two, one of which the gate never checked.
		if strings.Contains(*r, ",") {
			return nil, false
		}
		if *r != "" {
			roles = append(roles, *r)
		}
	}
	return roles, true
}
