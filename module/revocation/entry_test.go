package revocation

import (
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)

func TestParseRequestAccepts(t *testing.T) {
	for _, tc := range []struct {
		body string
		want Entry
	}{
		{`{"jti":"abc"}`, Entry{Kind: KindJTI, JTI: "abc", Before: t0}},
		{`{"jti":"abc","iss":"https://idp","reason":"stolen laptop"}`, Entry{Kind: KindJTI, JTI: "abc", Iss: "https://idp", Reason: "stolen laptop", Before: t0}},
		{`{"sub":"u1","iss":"https://idp","before":"2026-12-07T09:00:00Z"}`, Entry{Kind: KindSub, Sub: "u1", Iss: "https://idp", Before: t0.Add(-time.Hour)}},
		{`{"tenant":"acme"}`, Entry{Kind: KindTenant, Tenant: "acme", Before: t0}},
		{`{"tenant":"acme","before":"2026-12-07T10:00:20Z"}`, Entry{Kind: KindTenant, Tenant: "acme", Before: t0.Add(20 * time.Second)}},
	} {
		got, err := ParseRequest(strings.NewReader(tc.body), t0, 30*time.Second)
		if err != nil {
			t.Fatalf("%s: %v", tc.body, err)
		}
		if got.Kind != tc.want.Kind || got.JTI != tc.want.JTI || got.Sub != tc.want.Sub || got.Tenant != tc.want.Tenant ||
			got.Iss != tc.want.Iss || got.Reason != tc.want.Reason || !got.Before.Equal(tc.want.Before) || !got.Created.Equal(t0) {
			t.Errorf("%s: got %+v", tc.body, got)
		}
		if err := got.Validate(); err != nil {
			t.Errorf("%s: parsed entry does not validate: %v", tc.body, err)
		}
	}
}

func TestParseRequestRefuses(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{``, "not a revocation object"},
		{`[]`, "not a revocation object"},
		{`{}`, `one of "jti", "sub", "tenant" or "sid"`},
		{`{"iss":"x"}`, `one of "jti", "sub", "tenant" or "sid"`},
		{`{"sid":"s","sub":"b"}`, "not several"},
		{`{"sid":""}`, "sid: want 1 to"},
		{`{"jti":"a","sub":"b"}`, "not several"},
		{`{"sub":"b","tenant":"acme"}`, "not several"},
		{`{"jti":"a","extra":1}`, `unknown field "extra"`},
		{`{"jti":"a"}{"jti":"b"}`, "more than one JSON value"},
		{`{"jti":""}`, "jti: want 1 to"},
		{`{"jti":"a\u0000b"}`, "control characters"},
		{`{"sub":"` + strings.Repeat("s", 1025) + `"}`, "sub: want 1 to"},
		{`{"jti":"a","iss":""}`, "iss: want 1 to"},
		{`{"tenant":"ac me"}`, "tenant"},
		{`{"tenant":"../x"}`, "tenant"},
		{`{"tenant":"` + strings.Repeat("a", 65) + `"}`, "tenant"},
		{`{"tenant":".."}`, "path segment"},
		{`{"sub":"u","before":"yesterday"}`, "RFC 3339"},
		{`{"sub":"u","before":"2026-12-07T10:01:00Z"}`, "in the future"},
		{`{"jti":"a","before":"2026-12-07T09:00:00Z"}`, "applies to sub, tenant and sid"},
		{`{"jti":"a","reason":"` + strings.Repeat("r", 513) + `"}`, "reason"},
		{`{"jti":7}`, "not a revocation object"},
		{`{"jti":"a",` + strings.Repeat(" ", MaxBodyBytes) + `}`, "larger than"},
	} {
		_, err := ParseRequest(strings.NewReader(tc.body), t0, 30*time.Second)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%.60s: error %v, want it to mention %q", tc.body, err, tc.want)
		}
	}
}

func TestEntryValidateRefusesForgedRecords(t *testing.T) {
	good, err := Request{Sub: ptr("u1")}.Entry(t0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func(*Entry){
		"wrong id":         func(e *Entry) { e.ID = EntryID(KindSub, "", "u2") },
		"two selectors":    func(e *Entry) { e.Tenant = "acme" },
		"unknown kind":     func(e *Entry) { e.Kind = "all" },
		"kind mismatch":    func(e *Entry) { e.Kind = KindJTI },
		"no before":        func(e *Entry) { e.Before = time.Time{} },
		"bad tenant":       func(e *Entry) { e.Kind, e.Sub, e.Tenant = KindTenant, "", "a b" },
		"long source":      func(e *Entry) { e.Source = strings.Repeat("s", 300) },
		"control char iss": func(e *Entry) { e.Iss = "a\nb" },
	} {
		e := good
		mutate(&e)
		if e.Validate() == nil {
			t.Errorf("%s: validated", name)
		}
	}
}

func TestEntryIDIsStableAndDistinct(t *testing.T) {
	if a, b := EntryID(KindSub, "i", "v"), EntryID(KindSub, "i", "v"); a != b {
		t.Fatal("not stable")
	}
	seen := map[string]bool{}
	for _, id := range []string{EntryID(KindSub, "i", "v"), EntryID(KindJTI, "i", "v"), EntryID(KindSub, "", "iv"), EntryID(KindSub, "iv", "")} {
		if seen[id] {
			t.Fatalf("collision on %s", id)
		}
		seen[id] = true
	}
}

func ptr(s string) *string { return &s }
