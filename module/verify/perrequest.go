package verify

import (
	"time"

	"github.com/tenantgate/tenantgate/module/audit"
)

// perRequest runs the checks that belong to one use of a token rather than
// to the token itself, so a verified-token cache hit never skips them: the
// times against the clock, with leeway. Checks that bind a token to its
// request (proof of possession, client certificate) belong here too.
func (v *Verifier) perRequest(t *verifiedToken, _ *Request) *Error {
	return checkTimes(t, v.cfg.Now(), v.leeway)
}

// checkTimes judges exp, nbf and iat as the full verification's jwt.Validate
// options do (jwx's validators, whole seconds, exp accepted up to and
// including exp+leeway), so a cached token expires at the very second an
// uncached one would. Zero times are absent claims; exp is never absent
// here (it is required).
func checkTimes(t *verifiedToken, now time.Time, leeway time.Duration) *Error {
	now = now.Truncate(time.Second)
	if t.exp.Unix() <= 0 || !now.Before(t.exp.Truncate(time.Second).Add(leeway+time.Second)) {
		return fail(audit.ReasonTokenExpired, "token has expired", nil)
	}
	if !t.nbf.IsZero() && t.nbf.Unix() != 0 && now.Before(t.nbf.Truncate(time.Second).Add(-leeway)) {
		return fail(audit.ReasonTokenNotYet, "token is not valid yet (nbf is in the future)", nil)
	}
	if !t.iat.IsZero() && t.iat.Unix() != 0 && now.Before(t.iat.Truncate(time.Second).Add(-leeway)) {
		return fail(audit.ReasonTokenNotYet, "token is issued in the future (iat); check the clocks", nil)
	}
	return nil
}
