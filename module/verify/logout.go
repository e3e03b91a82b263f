package verify

import (
	"context"
	"time"

	"github.com/tenantgate/tenantgate/module/audit"
	"github.com/tenantgate/tenantgate/module/verify/jose"
)

// BackchannelLogoutEvent is the member of a logout token's events claim
// that makes it one (OpenID Connect Back-Channel Logout 1.0 §2.4).
const BackchannelLogoutEvent = "http://schemas.openid.net/event/backchannel-logout"

// LogoutTokenProfile is what a back-channel logout token must look like:
// typ logout+jwt when present (§2.4, errata set 1), exp required (§2.4),
// and an iat no older than ten minutes. §4 asks OPs for lifetimes of at
// most two minutes; ten leaves room for retries and clock skew while
// bounding how long each jti must be remembered.
var LogoutTokenProfile = EventTokenProfile{Name: "logout token", Typ: "logout+jwt", RequireExp: true, MaxAge: 10 * time.Minute}

// LogoutToken is a verified logout token.
type LogoutToken struct {
	EventToken
	// Subject is sub and Sid is sid; at least one is set.
	Subject, Sid string
}

// VerifyLogoutToken validates a back-channel logout token as §2.6 says:
// the signature with the issuer's keys as for an ID token (alg
// allow-listed, never none), iss, aud, iat and exp; a sub, a sid or both;
// an events claim whose value is a JSON object holding the back-channel
// logout member, itself a JSON object; and no nonce. client (the sender's
// address) spends the new-tenant budget of a multi-tenant issuer as a
// request's client does. The jti is checked
// for presence here; remembering it is the caller's (the replay set is the
// process's, and shared between replicas).
func (v *Verifier) VerifyLogoutToken(ctx context.Context, raw, client string) (*LogoutToken, *Error) {
	t, e := v.verifyEventToken(ctx, raw, client, LogoutTokenProfile)
	if e != nil {
		return nil, e
	}
	lt := &LogoutToken{EventToken: *t}
	c := t.Claims
	for _, m := range [...]struct {
		name string
		dst  *string
	}{{"sub", &lt.Subject}, {"sid", &lt.Sid}} {
		raw, ok := c[m.name]
		if !ok {
			continue
		}
		if err := jose.UnmarshalString(raw, m.dst); err != nil || *m.dst == "" || len(*m.dst) > 1024 {
			return nil, fail(audit.ReasonMissingClaim, `logout token "`+m.name+`" must be a non-empty string of at most 1024 bytes`, err)
		}
	}
	if lt.Subject == "" && lt.Sid == "" {
		return nil, fail(audit.ReasonMissingClaim, `logout token has neither "sub" nor "sid": it names no one to log out`, nil)
	}
	events, ok := c["events"]
	if !ok || jose.FirstByte(events) != '{' {
		return nil, fail(audit.ReasonMissingClaim, `logout token has no "events" object`, nil)
	}
	members, err := jose.ParseObject(events)
	if err != nil {
		return nil, jose.Malformed(`logout token "events" is not a JSON object`, err)
	}
	if ev, ok := members[BackchannelLogoutEvent]; !ok || jose.FirstByte(ev) != '{' {
		return nil, fail(audit.ReasonMissingClaim, `logout token "events" lacks the member "`+BackchannelLogoutEvent+`" with an object value`, nil)
	}
	if _, ok := c["nonce"]; ok {
		return nil, fail(audit.ReasonMissingClaim, `logout token carries "nonce", which §2.4 prohibits (an ID token is not a logout token)`, nil)
	}
	return lt, nil
}
