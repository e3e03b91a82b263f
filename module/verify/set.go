package verify

import (
	"context"
	"encoding/json"
	"time"

	"github.com/tenantgate/tenantgate/module/audit"
	"github.com/tenantgate/tenantgate/module/verify/jose"
)

// SETProfile is what a Security Event Token must look like (RFC 8417):
// typ secevent+jwt when present (§2.3), exp optional (SETs describe past
// events, so most carry none), and an iat no older than an hour, which
// bounds how long a jti is remembered while leaving a transmitter time to
// retry a failed push (RFC 8935 §2.3).
var SETProfile = EventTokenProfile{Name: "SET", Typ: "secevent+jwt", MaxAge: time.Hour}

// SecurityEventToken is a verified SET.
type SecurityEventToken struct {
	EventToken
	// Events maps each event type URI to its payload (a JSON object).
	Events map[string]json.RawMessage
}

// VerifySET validates a Security Event Token: the signature with the
// issuer's keys, iss, aud (one of the issuer's audiences), iat, jti, exp
// and nbf when present, and an events claim that is a JSON object of one
// or more members whose values are JSON objects (RFC 8417 §2.2). What the
// events mean is the caller's to judge.
func (v *Verifier) VerifySET(ctx context.Context, raw, client string) (*SecurityEventToken, *Error) {
	t, e := v.verifyEventToken(ctx, raw, client, SETProfile)
	if e != nil {
		return nil, e
	}
	events, ok := t.Claims["events"]
	if !ok || jose.FirstByte(events) != '{' {
		return nil, fail(audit.ReasonMissingClaim, `SET has no "events" object`, nil)
	}
	members, err := jose.ParseObject(events)
	if err != nil {
		return nil, jose.Malformed(`SET "events" is not a JSON object`, err)
	}
	if len(members) == 0 {
		return nil, fail(audit.ReasonMissingClaim, `SET "events" holds no event`, nil)
	}
	for _, payload := range members {
		if jose.FirstByte(payload) != '{' {
			return nil, fail(audit.ReasonMissingClaim, `each member of a SET's "events" must be a JSON object`, nil)
		}
	}
	return &SecurityEventToken{EventToken: *t, Events: members}, nil
}
