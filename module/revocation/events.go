package revocation

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tenantgate/tenantgate/module/verify/jose"
)

// The security events the gate acts on: CAEP 1.0 (OpenID Continuous Access
// Evaluation Profile), delivered as SETs (RFC 8417) by RFC 8935 push. Every
// other event type in a valid SET is acknowledged and ignored, as RFC 8935
// lets a recipient do with events it has no use for (the SSF verification
// event among them).
//
// #nosec G101 -- event type URIs ("credential-change"), not credentials.
const (
	EventSessionRevoked   = "https://schemas.openid.net/secevent/caep/event-type/session-revoked"
	EventCredentialChange = "https://schemas.openid.net/secevent/caep/event-type/credential-change"
)

// Sources of entries made by the receivers; they go in Entry.Source and
// the audit trail.
const (
	SourceBackchannelLogout = "backchannel_logout"
	SourceSSF               = "ssf"
)

// ErrForeignSubject marks a SET that names a subject of another issuer
// (an iss_sub whose iss is not the SET's): a transmitter may only revoke
// its own subjects, so that one tenant's realm cannot log out another's
// users. RFC 8935 calls this access_denied.
var ErrForeignSubject = errors.New("the subject belongs to another issuer than the SET's")

// Subject is what a subject identifier names, as far as tokens can be
// matched with it: Sub is compared with the token's user claim (user_claim,
// default sub), Sid with its sid claim.
type Subject struct{ Sub, Sid string }

// Subject identifier formats accepted (RFC 9493 and the SSF 1.0 complex
// subject); named in errors so a transmitter's operator knows what to send.
const acceptedFormats = `iss_sub (its iss must be the SET's), opaque (id), email, or a complex subject with user and/or session (opaque)`

// ParseSubject reads one subject identifier of a SET whose issuer is iss:
//   - iss_sub: sub, when iss is the SET's own issuer (else ErrForeignSubject);
//   - opaque: id, taken as a subject of the SET's issuer;
//   - email: the address, as a subject (it matches tokens whose user claim
//     is that address, compared exactly);
//   - complex (SSF 1.0; "format":"complex" or no format): its user member
//     (any of the above) and its session member (opaque: the sid). Other
//     members (tenant, device, ...) would narrow the subject further; the
//     gate cannot match them, so it revokes the user and session they
//     narrow, which covers at least what was meant.
//
// account, did, uri, phone_number and aliases name nothing a token carries
// and are refused.
func ParseSubject(raw json.RawMessage, iss string) (Subject, error) {
	m, err := object(raw, "subject identifier")
	if err != nil {
		return Subject{}, err
	}
	format, hasFormat := "", false
	if f, ok := m["format"]; ok {
		if err := jose.UnmarshalString(f, &format); err != nil {
			return Subject{}, errors.New(`subject "format" is not a string`)
		}
		hasFormat = true
	}
	if !hasFormat || format == "complex" {
		return complexSubject(m, iss)
	}
	sub, err := simpleSubject(m, format, iss)
	return Subject{Sub: sub}, err
}

// simpleSubject is the sub a simple identifier of format names.
func simpleSubject(m map[string]json.RawMessage, format, iss string) (string, error) {
	switch format {
	case "iss_sub":
		var subIss string
		if err := member(m, "iss", &subIss); err != nil {
			return "", err
		}
		if subIss != iss {
			return "", fmt.Errorf("%w: iss_sub names %q, the SET comes from %q", ErrForeignSubject, truncate(subIss, 128), truncate(iss, 128))
		}
		var sub string
		return sub, member(m, "sub", &sub)
	case "opaque":
		var id string
		return id, member(m, "id", &id)
	case "email":
		var email string
		return email, member(m, "email", &email)
	}
	return "", fmt.Errorf("subject format %q is not accepted here; send %s", truncate(format, 40), acceptedFormats)
}

func complexSubject(m map[string]json.RawMessage, iss string) (Subject, error) {
	var s Subject
	if raw, ok := m["user"]; ok {
		u, err := object(raw, "subject user")
		if err != nil {
			return s, err
		}
		var format string
		if err := member(u, "format", &format); err != nil {
			return s, fmt.Errorf("subject user: %w", err)
		}
		if s.Sub, err = simpleSubject(u, format, iss); err != nil {
			return s, fmt.Errorf("subject user: %w", err)
		}
	}
	if raw, ok := m["session"]; ok {
		sess, err := object(raw, "subject session")
		if err != nil {
			return s, err
		}
		var format string
		if err := member(sess, "format", &format); err != nil || format != "opaque" {
			return s, errors.New(`subject session: want {"format":"opaque","id":SID}`)
		}
		if err := member(sess, "id", &s.Sid); err != nil {
			return s, fmt.Errorf("subject session: %w", err)
		}
	}
	if s.Sub == "" && s.Sid == "" {
		return s, fmt.Errorf("the subject names no user and no session, nothing a token carries; send %s", acceptedFormats)
	}
	return s, nil
}

// SETResult is what a SET asks of the revocation set.
type SETResult struct {
	Entries []Entry
	// Acted and Ignored list the SET's event types, sorted.
	Acted, Ignored []string
}

// FromSET turns the events of a verified SET of issuer iss into entries
// that revoke what each event names, issued at or before before:
//   - session-revoked: the subject (its user, and its session's sid when it
//     names one); a session-revoked without a subject is refused;
//   - credential-change: the subject, whatever the change (a credential
//     created, updated or revoked all mean the tokens issued before it
//     should be renewed); without a subject it is ignored;
//   - any other event type: ignored.
//
// The subject is the event's "subject" or "sub_id" member (CAEP drafts),
// else the SET's "sub_id" claim (SSF 1.0), else its "sub" claim (RFC 8417,
// a subject of iss). An error wrapping ErrForeignSubject means
// access_denied; any other, a SET whose events do not conform.
func FromSET(iss string, claims, events map[string]json.RawMessage, now, before time.Time) (SETResult, error) {
	var r SETResult
	types := make([]string, 0, len(events))
	for t := range events {
		types = append(types, t)
	}
	slices.Sort(types)
	seen := map[string]bool{}
	for _, typ := range types {
		if typ != EventSessionRevoked && typ != EventCredentialChange {
			r.Ignored = append(r.Ignored, typ)
			continue
		}
		name := typ[strings.LastIndexByte(typ, '/')+1:]
		payload, err := object(events[typ], name+" event")
		if err != nil {
			return r, err
		}
		raw, ok := subjectOf(payload, claims)
		if !ok {
			if typ == EventCredentialChange {
				r.Ignored = append(r.Ignored, typ)
				continue
			}
			return r, errors.New(`session-revoked names no subject (sub_id)`)
		}
		var s Subject
		if jose.IsJSONString(raw) { // the RFC 8417 sub claim
			err = member(map[string]json.RawMessage{"sub": raw}, "sub", &s.Sub)
		} else {
			s, err = ParseSubject(raw, iss)
		}
		if err != nil {
			return r, fmt.Errorf("%s: %w", name, err)
		}
		for _, e := range subjectEntries(s, iss, "CAEP "+name, SourceSSF, now, before) {
			if err := e.Validate(); err != nil {
				return r, fmt.Errorf("%s: %w", name, err)
			}
			if !seen[e.ID] {
				seen[e.ID] = true
				r.Entries = append(r.Entries, e)
			}
		}
		r.Acted = append(r.Acted, typ)
	}
	return r, nil
}

// FromLogout makes the entries of a verified back-channel logout token of
// issuer iss: its subject's tokens and (with sid) its session's tokens,
// issued at or before before. Both are revoked when both are named: the
// access tokens a gate sees rarely carry sid, so a logout that only
// revoked the session would leave them valid.
func FromLogout(iss, sub, sid string, now, before time.Time) ([]Entry, error) {
	es := subjectEntries(Subject{Sub: sub, Sid: sid}, iss, "back-channel logout", SourceBackchannelLogout, now, before)
	for _, e := range es {
		if err := e.Validate(); err != nil {
			return nil, err
		}
	}
	return es, nil
}

func subjectEntries(s Subject, iss, reason, source string, now, before time.Time) []Entry {
	var out []Entry
	for _, sel := range []struct{ kind, val string }{{KindSub, s.Sub}, {KindSid, s.Sid}} {
		if sel.val == "" {
			continue
		}
		e := Entry{Kind: sel.kind, Iss: iss, Before: before.UTC(), Created: now.UTC(), Reason: reason, Source: source}
		if sel.kind == KindSub {
			e.Sub = sel.val
		} else {
			e.Sid = sel.val
		}
		e.ID = EntryID(e.Kind, e.Iss, e.value())
		out = append(out, e)
	}
	return out
}

// subjectOf finds an event's subject: the event's own, else the SET's.
func subjectOf(payload, claims map[string]json.RawMessage) (json.RawMessage, bool) {
	for _, c := range []struct {
		m    map[string]json.RawMessage
		name string
	}{{payload, "subject"}, {payload, "sub_id"}, {claims, "sub_id"}, {claims, "sub"}} {
		if raw, ok := c.m[c.name]; ok {
			return raw, true
		}
	}
	return nil, false
}

// object parses raw as a JSON object.
func object(raw json.RawMessage, what string) (map[string]json.RawMessage, error) {
	if jose.FirstByte(raw) != '{' {
		return nil, fmt.Errorf("%s is not a JSON object", what)
	}
	m, err := jose.ParseObject(raw)
	if err != nil {
		return nil, fmt.Errorf("%s is not a JSON object: %w", what, err)
	}
	return m, nil
}

// member reads a required, non-empty string member.
func member(m map[string]json.RawMessage, name string, dst *string) error {
	raw, ok := m[name]
	if !ok || jose.UnmarshalString(raw, dst) != nil || *dst == "" {
		return fmt.Errorf("%q must be a non-empty string", name)
	}
	return nil
}
