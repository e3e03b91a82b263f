// Package revocation is tenantgate's revocation set: tokens revoked by jti,
// by subject or by tenant (those issued before a time), optionally narrowed
// by issuer, checked on every request with a few hash lookups and no
// network, and optionally shared by every gate replica through Redis
// (written there, broadcast by pub/sub, reconciled periodically). It does
// not import Caddy.
package revocation

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/tenantgate/tenantgate/module/tenantid"
)

// Kinds of entry; they label the tenantgate_revocations gauge.
const (
	KindJTI    = "jti"
	KindSub    = "sub"
	KindTenant = "tenant"
	// KindSid revokes the tokens whose sid claim (the OpenID Provider's
	// session) is that value, issued before a time: what a back-channel
	// logout or a CAEP session-revoked event names.
	KindSid = "sid"
)

// Kinds lists every kind, in a stable order.
var Kinds = []string{KindJTI, KindSub, KindTenant, KindSid}

// Bounds of a request.
const (
	// MaxBodyBytes is the largest request body read; a longer one is refused.
	MaxBodyBytes = 64 << 10
	// maxValueBytes bounds jti, sub and iss values (tokens are capped at a
	// few KB, so no real claim is longer).
	maxValueBytes  = 1024
	maxReasonBytes = 512
	maxSourceBytes = 256
)

// Entry is one revocation. Exactly one of JTI, Sub, Tenant and Sid is set.
type Entry struct {
	// ID names the entry: the same selector and issuer always give the
	// same ID, so revoking twice updates one entry instead of adding two.
	ID     string `json:"id"`
	Kind   string `json:"kind"`
	JTI    string `json:"jti,omitempty"`
	Sub    string `json:"sub,omitempty"`
	Tenant string `json:"tenant,omitempty"`
	Sid    string `json:"sid,omitempty"`
	// Iss narrows the entry to tokens of that issuer; empty matches any.
	Iss string `json:"iss,omitempty"`
	// Before: sub, tenant and sid entries revoke tokens issued (iat) at or
	// before it. For a jti entry it is when the revocation was made.
	Before time.Time `json:"before"`
	Reason string    `json:"reason,omitempty"`
	// Source says who revoked and from where (admin API and remote
	// address, logout receiver, ...), for the audit trail.
	Source  string    `json:"source,omitempty"`
	Created time.Time `json:"created"`
	// Expires is when no token the entry matches can still be valid
	// (filled in by Set.List; it follows the lifetimes seen).
	Expires time.Time `json:"expires,omitzero"`
	// Published is when a replica published the entry (Unix nanoseconds),
	// for the propagation histogram; 0 for entries never published.
	Published int64 `json:"published,omitempty"`
}

// Request is the JSON body of a revocation (admin API, CLI).
type Request struct {
	JTI    *string `json:"jti"`
	Sub    *string `json:"sub"`
	Tenant *string `json:"tenant"`
	Sid    *string `json:"sid"`
	Iss    *string `json:"iss"`
	Before *string `json:"before"`
	Reason *string `json:"reason"`
}

// ParseRequest reads a revocation body (at most MaxBodyBytes, one JSON
// object, no unknown fields) and makes its entry. now is the time of the
// request; leeway is how far in the future before may lie (clock skew).
// Every error says what is wrong, for a 400 answer.
func ParseRequest(body io.Reader, now time.Time, leeway time.Duration) (Entry, error) {
	raw, err := io.ReadAll(io.LimitReader(body, MaxBodyBytes+1))
	if err != nil {
		return Entry{}, fmt.Errorf("reading the body: %w", err)
	}
	if len(raw) > MaxBodyBytes {
		return Entry{}, fmt.Errorf("body larger than %d bytes", MaxBodyBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var req Request
	if err := dec.Decode(&req); err != nil {
		return Entry{}, fmt.Errorf("body is not a revocation object (jti | sub | tenant | sid, optional iss, before, reason): %w", err)
	}
	if dec.More() {
		return Entry{}, errors.New("body holds more than one JSON value")
	}
	return req.Entry(now, leeway)
}

// Entry checks the request and makes its entry.
func (r Request) Entry(now time.Time, leeway time.Duration) (Entry, error) {
	var e Entry
	n := 0
	for _, sel := range []struct {
		kind string
		val  *string
		dst  *string
	}{{KindJTI, r.JTI, &e.JTI}, {KindSub, r.Sub, &e.Sub}, {KindTenant, r.Tenant, &e.Tenant}, {KindSid, r.Sid, &e.Sid}} {
		if sel.val == nil {
			continue
		}
		n++
		e.Kind, *sel.dst = sel.kind, *sel.val
	}
	switch {
	case n == 0:
		return Entry{}, errors.New(`name what to revoke: one of "jti", "sub", "tenant" or "sid"`)
	case n > 1:
		return Entry{}, errors.New(`name one of "jti", "sub", "tenant" or "sid", not several: send one revocation each`)
	}
	if err := checkValue(e.Kind, e.JTI+e.Sub+e.Sid); e.Kind != KindTenant && err != nil {
		return Entry{}, err
	}
	if e.Kind == KindTenant {
		if err := tenantid.Check(e.Tenant); err != nil {
			return Entry{}, fmt.Errorf("tenant %q: %w", truncate(e.Tenant, 80), err)
		}
	}
	if r.Iss != nil {
		if err := checkValue("iss", *r.Iss); err != nil {
			return Entry{}, err
		}
		e.Iss = *r.Iss
	}
	if r.Reason != nil {
		if len(*r.Reason) > maxReasonBytes || !printable(*r.Reason) {
			return Entry{}, fmt.Errorf("reason: at most %d printable characters", maxReasonBytes)
		}
		e.Reason = *r.Reason
	}
	e.Before, e.Created = now.UTC(), now.UTC()
	if r.Before != nil {
		if e.Kind == KindJTI {
			return Entry{}, errors.New(`"before" applies to sub, tenant and sid revocations; a jti names one token`)
		}
		t, err := time.Parse(time.RFC3339, *r.Before)
		if err != nil {
			return Entry{}, fmt.Errorf("before %q: want an RFC 3339 time such as 2026-12-07T10:00:00Z: %w", truncate(*r.Before, 80), err)
		}
		if t.After(now.Add(leeway)) {
			return Entry{}, fmt.Errorf("before %s is in the future (more than %s from now): a revocation covers tokens already issued", t.UTC().Format(time.RFC3339), leeway)
		}
		e.Before = t.UTC()
	}
	e.ID = EntryID(e.Kind, e.Iss, e.value())
	return e, nil
}

// Validate checks an entry that came from elsewhere (the shared store, a
// logout receiver) as strictly as a request, so a bad record cannot match
// more than it says.
func (e Entry) Validate() error {
	var want string
	switch e.Kind {
	case KindJTI, KindSub, KindSid:
		if err := checkValue(e.Kind, e.value()); err != nil {
			return err
		}
		want = e.JTI + e.Sub + e.Sid
	case KindTenant:
		if err := tenantid.Check(e.Tenant); err != nil {
			return fmt.Errorf("tenant: %w", err)
		}
		want = e.Tenant
	default:
		return fmt.Errorf("kind %q: want jti, sub, tenant or sid", truncate(e.Kind, 40))
	}
	set := 0
	for _, v := range []string{e.JTI, e.Sub, e.Tenant, e.Sid} {
		if v != "" {
			set++
		}
	}
	if e.value() != want || set != 1 {
		return errors.New("an entry names exactly one of jti, sub, tenant and sid")
	}
	if e.Iss != "" {
		if err := checkValue("iss", e.Iss); err != nil {
			return err
		}
	}
	if e.Before.IsZero() {
		return errors.New("entry has no before time")
	}
	if e.ID != EntryID(e.Kind, e.Iss, e.value()) {
		return errors.New("entry id does not match its selector")
	}
	if len(e.Reason) > maxReasonBytes || len(e.Source) > maxSourceBytes {
		return errors.New("entry reason or source too long")
	}
	return nil
}

// value is the selector's value.
func (e *Entry) value() string {
	switch e.Kind {
	case KindJTI:
		return e.JTI
	case KindSub:
		return e.Sub
	case KindSid:
		return e.Sid
	}
	return e.Tenant
}

// EntryID is the ID of the entry for kind, issuer and value.
func EntryID(kind, iss, value string) string {
	h := sha256.New()
	for _, s := range []string{kind, iss, value} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return kind + "-" + base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:15])
}

func checkValue(name, v string) error {
	if v == "" || len(v) > maxValueBytes {
		return fmt.Errorf("%s: want 1 to %d characters, got %d", name, maxValueBytes, len(v))
	}
	if !printable(v) {
		return fmt.Errorf("%s: control characters are not allowed", name)
	}
	return nil
}

func printable(s string) bool {
	return !strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
