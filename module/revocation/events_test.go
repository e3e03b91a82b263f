package revocation

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/module/verify/jose"
)

const setIss = "https://idp.example"

func rawObject(t testing.TB, s string) map[string]json.RawMessage {
	t.Helper()
	m, err := jose.ParseObject([]byte(s))
	if err != nil {
		t.Fatalf("%s: %v", s, err)
	}
	return m
}

// selectors lists an entry set as kind:iss:value, sorted.
func selectors(es []Entry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Kind+":"+e.Iss+":"+e.value())
	}
	slices.Sort(out)
	return out
}

func TestFromSETActsOnCAEPEvents(t *testing.T) {
	before := t0.Add(-time.Second)
	for _, tc := range []struct {
		name            string
		claims, events  string
		want            []string
		acted, ignored  int
		wantSource      string
		wantReasonStart string
	}{
		{
			name:   "session-revoked, SSF 1.0 sub_id iss_sub",
			claims: `{"sub_id":{"format":"iss_sub","iss":"https://idp.example","sub":"alice"}}`,
			events: `{"` + EventSessionRevoked + `":{"event_timestamp":1}}`,
			want:   []string{"sub:https://idp.example:alice"}, acted: 1,
		},
		{
			name:   "session-revoked, subject inside the event (CAEP draft), complex with a session",
			claims: `{}`,
			events: `{"` + EventSessionRevoked + `":{"subject":{"format":"complex","user":{"format":"iss_sub","iss":"https://idp.example","sub":"bob"},"session":{"format":"opaque","id":"s-42"},"tenant":{"format":"opaque","id":"acme"}}}}`,
			want:   []string{"sid:https://idp.example:s-42", "sub:https://idp.example:bob"}, acted: 1,
		},
		{
			name:   "complex without format, session only, sub_id in the event",
			claims: `{}`,
			events: `{"` + EventSessionRevoked + `":{"sub_id":{"session":{"format":"opaque","id":"s-43"}}}}`,
			want:   []string{"sid:https://idp.example:s-43"}, acted: 1,
		},
		{
			name:   "opaque and email map to a subject of the SET's issuer",
			claims: `{"sub_id":{"format":"opaque","id":"u-7"}}`,
			events: `{"` + EventSessionRevoked + `":{},"` + EventCredentialChange + `":{"subject":{"format":"email","email":"carol@example.com"},"credential_type":"password","change_type":"update"}}`,
			want:   []string{"sub:https://idp.example:carol@example.com", "sub:https://idp.example:u-7"}, acted: 2,
		},
		{
			name:   "RFC 8417 sub claim",
			claims: `{"sub":"dave"}`,
			events: `{"` + EventCredentialChange + `":{"change_type":"revoke"}}`,
			want:   []string{"sub:https://idp.example:dave"}, acted: 1,
		},
		{
			name:    "credential-change without a subject is ignored",
			claims:  `{}`,
			events:  `{"` + EventCredentialChange + `":{"change_type":"create"}}`,
			ignored: 1,
		},
		{
			name:    "unknown and verification events are ignored",
			claims:  `{"sub_id":{"format":"opaque","id":"u-8"}}`,
			events:  `{"https://schemas.openid.net/secevent/ssf/event-type/verification":{"state":"x"},"urn:example:other":{}}`,
			ignored: 2,
		},
		{
			name:   "the same subject twice is one entry",
			claims: `{"sub_id":{"format":"opaque","id":"u-9"}}`,
			events: `{"` + EventSessionRevoked + `":{},"` + EventCredentialChange + `":{}}`,
			want:   []string{"sub:https://idp.example:u-9"}, acted: 2,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := FromSET(setIss, rawObject(t, tc.claims), rawObject(t, tc.events), t0, before)
			if err != nil {
				t.Fatal(err)
			}
			if got := selectors(r.Entries); !slices.Equal(got, tc.want) {
				t.Fatalf("entries %v, want %v", got, tc.want)
			}
			if len(r.Acted) != tc.acted || len(r.Ignored) != tc.ignored {
				t.Fatalf("acted %v ignored %v", r.Acted, r.Ignored)
			}
			for _, e := range r.Entries {
				if e.Source != SourceSSF || !strings.HasPrefix(e.Reason, "CAEP ") || !e.Before.Equal(before) || !e.Created.Equal(t0) || e.Validate() != nil {
					t.Fatalf("%+v", e)
				}
			}
		})
	}
}

func TestFromSETRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, claims, events, want string
		foreign                    bool
	}{
		{"iss_sub of another issuer", `{"sub_id":{"format":"iss_sub","iss":"https://other.example","sub":"alice"}}`, `{"` + EventSessionRevoked + `":{}}`, "another issuer", true},
		{"complex user of another issuer", `{}`, `{"` + EventSessionRevoked + `":{"subject":{"user":{"format":"iss_sub","iss":"https://other.example","sub":"x"}}}}`, "another issuer", true},
		{"session-revoked without subject", `{}`, `{"` + EventSessionRevoked + `":{}}`, "names no subject", false},
		{"unsupported format", `{"sub_id":{"format":"phone_number","phone_number":"+1"}}`, `{"` + EventSessionRevoked + `":{}}`, "not accepted", false},
		{"aliases", `{"sub_id":{"format":"aliases","identifiers":[]}}`, `{"` + EventSessionRevoked + `":{}}`, "not accepted", false},
		{"format not a string", `{"sub_id":{"format":1}}`, `{"` + EventSessionRevoked + `":{}}`, "format", false},
		{"opaque without id", `{"sub_id":{"format":"opaque"}}`, `{"` + EventSessionRevoked + `":{}}`, `"id"`, false},
		{"empty sub", `{"sub_id":{"format":"iss_sub","iss":"https://idp.example","sub":""}}`, `{"` + EventSessionRevoked + `":{}}`, `"sub"`, false},
		{"subject an array", `{"sub_id":[]}`, `{"` + EventSessionRevoked + `":{}}`, "not a JSON object", false},
		{"complex naming only a tenant", `{"sub_id":{"tenant":{"format":"opaque","id":"acme"}}}`, `{"` + EventSessionRevoked + `":{}}`, "no user and no session", false},
		{"session not opaque", `{"sub_id":{"session":{"format":"email","email":"a@b"}}}`, `{"` + EventSessionRevoked + `":{}}`, "session", false},
		{"control characters", `{"sub_id":{"format":"opaque","id":"a\u0000b"}}`, `{"` + EventSessionRevoked + `":{}}`, "control", false},
		{"value too long", `{"sub_id":{"format":"opaque","id":"` + strings.Repeat("x", 1025) + `"}}`, `{"` + EventSessionRevoked + `":{}}`, "1024", false},
		{"event payload not an object", `{"sub_id":{"format":"opaque","id":"u"}}`, `{"` + EventSessionRevoked + `":[]}`, "not a JSON object", false},
		{"credential-change with a bad subject", `{"sub_id":{"format":"did","url":"did:x"}}`, `{"` + EventCredentialChange + `":{}}`, "not accepted", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := FromSET(setIss, rawObject(t, tc.claims), rawObject(t, tc.events), t0, t0)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v (%v), want an error mentioning %q", err, r.Entries, tc.want)
			}
			if errors.Is(err, ErrForeignSubject) != tc.foreign {
				t.Fatalf("foreign: %v", err)
			}
		})
	}
}

func TestFromLogout(t *testing.T) {
	es, err := FromLogout(setIss, "alice", "s-1", t0, t0.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if got := selectors(es); !slices.Equal(got, []string{"sid:https://idp.example:s-1", "sub:https://idp.example:alice"}) {
		t.Fatal(got)
	}
	for _, e := range es {
		if e.Source != SourceBackchannelLogout || !e.Before.Equal(t0.Add(time.Second)) || e.ID != EntryID(e.Kind, setIss, e.value()) {
			t.Fatalf("%+v", e)
		}
	}
	if es, _ := FromLogout(setIss, "", "s-2", t0, t0); len(es) != 1 || es[0].Kind != KindSid {
		t.Fatal(es)
	}
	if _, err := FromLogout(setIss, "a\nb", "", t0, t0); err == nil {
		t.Fatal("a control character passed")
	}
}

// FuzzFromSET feeds arbitrary claims and events (as the verifier's parser
// would hand them over) to FromSET: it must never panic, and whatever it
// returns must be entries that validate, of the SET's issuer, of kind sub
// or sid, the same on every run.
func FuzzFromSET(f *testing.F) {
	for _, s := range [][2]string{
		{`{"sub_id":{"format":"iss_sub","iss":"https://idp.example","sub":"alice"}}`, `{"` + EventSessionRevoked + `":{}}`},
		{`{}`, `{"` + EventSessionRevoked + `":{"subject":{"format":"complex","user":{"format":"opaque","id":"u"},"session":{"format":"opaque","id":"s"}}}}`},
		{`{"sub":"x"}`, `{"` + EventCredentialChange + `":{"change_type":"update"}}`},
		{`{"sub_id":{"format":"email","email":"a@b.c"}}`, `{"urn:x":{},"` + EventCredentialChange + `":{}}`},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, claims, events string) {
		c, err1 := jose.ParseObject([]byte(claims))
		ev, err2 := jose.ParseObject([]byte(events))
		if err1 != nil || err2 != nil {
			return
		}
		r, err := FromSET(setIss, c, ev, t0, t0)
		if err != nil {
			return
		}
		for _, e := range r.Entries {
			if e.Validate() != nil || e.Iss != setIss || (e.Kind != KindSub && e.Kind != KindSid) {
				t.Fatalf("bad entry %+v", e)
			}
		}
		// The same input always gives the same entries (sorted event types).
		again, err := FromSET(setIss, c, ev, t0, t0)
		if err != nil || !slices.Equal(selectors(again.Entries), selectors(r.Entries)) {
			t.Fatalf("not deterministic: %v %v", err, again.Entries)
		}
		if len(r.Acted)+len(r.Ignored) > len(ev) {
			t.Fatalf("more event types judged than given: %v %v", r.Acted, r.Ignored)
		}
	})
}
