package verify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/tenantgate/tenantgate/module/audit"
)

// MaxTenantLen is the longest tenant value accepted.
const MaxTenantLen = 64

// checkClaims validates the claims of a token whose signature verified.
// Type rules are ours (a wrong type is ReasonMissingClaim, or
// ReasonWrongAudience for aud); the time and audience rules run through
// jwt.Validate and are told apart with errors.Is.
func (v *Verifier) checkClaims(is *issuerState, claims map[string]json.RawMessage) (*Identity, *Error) {
	for _, name := range []string{jwt.ExpirationKey, jwt.NotBeforeKey, jwt.IssuedAtKey} {
		if raw, ok := claims[name]; ok && !isJSONNumber(raw) {
			return nil, fail(audit.ReasonMissingClaim, fmt.Sprintf("claim %q must be a NumericDate (a non-negative number of seconds)", name), nil)
		}
	}
	for _, name := range []string{jwt.SubjectKey, jwt.JwtIDKey} {
		if raw, ok := claims[name]; ok && !isJSONString(raw) {
			return nil, fail(audit.ReasonMissingClaim, fmt.Sprintf("claim %q must be a string", name), nil)
		}
	}
	if raw, ok := claims[jwt.AudienceKey]; ok && !isStringOrStrings(raw) {
		return nil, fail(audit.ReasonWrongAudience, "claim \"aud\" must be a string or an array of strings", nil)
	}

	tok, err := registeredClaims(claims)
	if err != nil {
		return nil, malformed("token claims could not be decoded", err)
	}
	err = jwt.Validate(tok, is.opts...)
	switch {
	case err == nil:
	case errors.Is(err, jwt.ErrRequiredClaim()):
		return nil, fail(audit.ReasonMissingClaim, "token has no exp claim; tokens must expire", err)
	case errors.Is(err, jwt.ErrTokenExpired()):
		return nil, fail(audit.ReasonTokenExpired, "token has expired", err)
	case errors.Is(err, jwt.ErrTokenNotYetValid()):
		return nil, fail(audit.ReasonTokenNotYet, "token is not valid yet (nbf is in the future)", err)
	case errors.Is(err, jwt.ErrInvalidIssuedAt()):
		return nil, fail(audit.ReasonTokenNotYet, "token is issued in the future (iat); check the clocks", err)
	case errors.Is(err, jwt.ErrInvalidAudience()):
		return nil, fail(audit.ReasonWrongAudience, fmt.Sprintf("token aud does not contain an audience accepted for issuer %q", is.cfg.Issuer), err)
	case errors.Is(err, jwt.ErrInvalidIssuer()):
		return nil, fail(audit.ReasonUnknownIssuer, "token iss does not match its issuer", err)
	default:
		return nil, fail(audit.ReasonMissingClaim, "token claims are invalid", err)
	}

	id := &Identity{Issuer: is.cfg.Issuer, TokenID: tok.JwtID(), Expiry: tok.Expiration()}
	if raw, ok := claims[v.cfg.UserClaim]; ok && !isJSONNull(raw) {
		if err := json.Unmarshal(raw, &id.Subject); err != nil {
			return nil, fail(audit.ReasonMissingClaim, fmt.Sprintf("user claim %q must be a string", v.cfg.UserClaim), err)
		}
	}
	roles, ok := parseRoles(claims[v.cfg.RolesClaim])
	if !ok {
		return nil, fail(audit.ReasonMissingClaim, fmt.Sprintf("roles claim %q must be an array of strings or one space-separated string", v.cfg.RolesClaim), nil)
	}
	id.Roles = roles
	if id.Cnf, err = parseCnf(claims["cnf"]); err != nil {
		return nil, fail(audit.ReasonMissingClaim, `claim "cnf" must be an object whose "jkt" and "x5t#S256" members are non-empty strings`, err)
	}

	raw, ok := claims[v.cfg.TenantClaim]
	if !ok {
		return id, fail(audit.ReasonNoTenant, fmt.Sprintf("token has no tenant claim %q", v.cfg.TenantClaim), nil)
	}
	var tenant string
	if err := json.Unmarshal(raw, &tenant); err != nil || !ValidTenant(tenant) {
		return id, fail(audit.ReasonNoTenant, fmt.Sprintf("tenant claim %q must be a string of 1-%d characters from A-Z a-z 0-9 . _ - (not \".\" or \"..\")", v.cfg.TenantClaim, MaxTenantLen), err)
	}
	id.Tenant = tenant
	return id, nil
}

// registeredClaims builds the jwx token that jwt.Validate judges from the
// members the payload was already parsed into: only the registered claims
// the checks read, so the payload is never decoded a second time.
func registeredClaims(claims map[string]json.RawMessage) (jwt.Token, error) {
	tok := jwt.New()
	for _, name := range [...]string{jwt.ExpirationKey, jwt.NotBeforeKey, jwt.IssuedAtKey} {
		if raw, ok := claims[name]; ok {
			if err := tok.Set(name, json.Number(raw)); err != nil {
				return nil, err
			}
		}
	}
	for _, name := range [...]string{jwt.IssuerKey, jwt.SubjectKey, jwt.JwtIDKey} {
		if raw, ok := claims[name]; ok {
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				return nil, err
			}
			if err := tok.Set(name, s); err != nil {
				return nil, err
			}
		}
	}
	if raw, ok := claims[jwt.AudienceKey]; ok {
		var aud []string
		if isJSONString(raw) {
			var one string
			if err := json.Unmarshal(raw, &one); err != nil {
				return nil, err
			}
			aud = []string{one}
		} else if err := json.Unmarshal(raw, &aud); err != nil {
			return nil, err
		}
		if err := tok.Set(jwt.AudienceKey, aud); err != nil {
			return nil, err
		}
	}
	return tok, nil
}

// expirationWithinLeeway is jwx's exp check with one more second of skew,
// because jwx rejects at exactly exp+leeway and our contract accepts up to
// and including it (times are compared in whole seconds). exp <= 0 is
// expired (jwx would skip a zero exp).
var expirationWithinLeeway = jwt.ValidatorFunc(func(ctx context.Context, t jwt.Token) jwt.ValidationError {
	if t.Expiration().Unix() <= 0 {
		return jwt.ErrTokenExpired()
	}
	ctx = jwt.SetValidationCtxSkew(ctx, jwt.ValidationCtxSkew(ctx)+time.Second)
	return jwt.IsExpirationValid().Validate(ctx, t)
})

// audienceValidator accepts a token whose aud holds any of the issuer's
// audiences. Empty aud, missing aud and [""] never match.
func (is *issuerState) audienceValidator() jwt.Validator {
	return jwt.ValidatorFunc(func(_ context.Context, t jwt.Token) jwt.ValidationError {
		for _, a := range t.Audience() {
			if _, ok := is.aud[a]; ok && a != "" {
				return nil
			}
		}
		return jwt.ErrInvalidAudience()
	})
}

// ValidTenant reports whether s is an acceptable tenant: 1 to 64 characters
// of A-Z a-z 0-9 . _ -, and not "." or "..", which are path segments.
func ValidTenant(s string) bool {
	if len(s) == 0 || len(s) > MaxTenantLen || s == "." || s == ".." {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// parseRoles reads a roles claim: a JSON array of strings, or one string of
// space-separated roles. Absent or null means no roles. Any other shape is
// refused (ok false) rather than silently read as "no roles", so a broken IdP
// mapping shows up as missing_claim instead of as puzzling missing_role denials.
// A role holding "," is refused too: X-User-Roles is comma-separated.
func parseRoles(raw json.RawMessage) (roles []string, ok bool) {
	if raw == nil || isJSONNull(raw) {
		return nil, true
	}
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		roles = strings.Fields(one)
		for _, r := range roles {
			if strings.Contains(r, ",") {
				return nil, false
			}
		}
		return roles, true
	}
	var list []*string
	if err := json.Unmarshal(raw, &list); err != nil {
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

func firstByte(raw json.RawMessage) byte {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	if len(raw) == 0 {
		return 0
	}
	return raw[0]
}

// isJSONNumber accepts non-negative JSON numbers only: a NumericDate before
// 1970 is never legitimate, and jwx refuses negative ones anyway.
func isJSONNumber(raw json.RawMessage) bool {
	c := firstByte(raw)
	return '0' <= c && c <= '9'
}

func isJSONString(raw json.RawMessage) bool { return firstByte(raw) == '"' }

func isJSONNull(raw json.RawMessage) bool { return firstByte(raw) == 'n' }

func isStringOrStrings(raw json.RawMessage) bool {
	if isJSONString(raw) {
		return true
	}
	var list []*string
	if err := json.Unmarshal(raw, &list); err != nil {
		return false
	}
	for _, s := range list {
		if s == nil {
			return false
		}
	}
	return true
}
