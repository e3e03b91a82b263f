package revocation

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func mustEntry(t testing.TB, r Request, now time.Time) Entry {
	t.Helper()
	e, err := r.Entry(now, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func mustAdd(t testing.TB, s *Set, e Entry) {
	t.Helper()
	if _, err := s.Add(e); err != nil {
		t.Fatal(err)
	}
}

func tok(iss, jti, sub, tenant string, iat time.Time) *Token {
	return &Token{Issuer: iss, ID: jti, Subject: sub, Tenant: tenant, IssuedAt: iat, Expiry: iat.Add(10 * time.Minute)}
}

func TestRevokedMatches(t *testing.T) {
	c := &clock{t: t0}
	s := NewSet(Options{Now: c.now})
	old, fresh := t0.Add(-time.Minute), t0.Add(time.Second)
	mustAdd(t, s, mustEntry(t, Request{JTI: ptr("j1")}, t0))
	mustAdd(t, s, mustEntry(t, Request{JTI: ptr("j2"), Iss: ptr("https://a")}, t0))
	mustAdd(t, s, mustEntry(t, Request{Sub: ptr("u1")}, t0))
	mustAdd(t, s, mustEntry(t, Request{Sub: ptr("u2"), Iss: ptr("https://a")}, t0))
	mustAdd(t, s, mustEntry(t, Request{Tenant: ptr("acme")}, t0))
	mustAdd(t, s, mustEntry(t, Request{Tenant: ptr("globex"), Iss: ptr("https://b")}, t0))

	for _, tc := range []struct {
		name string
		tok  *Token
		kind string
	}{
		{"jti, any issuer", tok("https://z", "j1", "x", "t", fresh), KindJTI},
		{"jti, its issuer", tok("https://a", "j2", "x", "t", fresh), KindJTI},
		{"jti, another issuer", tok("https://b", "j2", "x", "t", fresh), ""},
		{"sub issued before", tok("https://z", "x", "u1", "t", old), KindSub},
		{"sub issued the same second as the revocation", tok("https://z", "x", "u1", "t", t0), KindSub},
		{"sub issued after", tok("https://z", "x", "u1", "t", fresh), ""},
		{"sub without iat counts as older", tok("https://z", "x", "u1", "t", time.Time{}), KindSub},
		{"sub narrowed by iss", tok("https://a", "x", "u2", "t", old), KindSub},
		{"sub of another issuer", tok("https://b", "x", "u2", "t", old), ""},
		{"tenant issued before", tok("https://z", "x", "y", "acme", old), KindTenant},
		{"tenant issued after", tok("https://z", "x", "y", "acme", fresh), ""},
		{"tenant narrowed by iss", tok("https://b", "x", "y", "globex", old), KindTenant},
		{"tenant of another issuer", tok("https://a", "x", "y", "globex", old), ""},
		{"no match", tok("https://a", "j9", "u9", "initech", old), ""},
		{"empty claims never match", tok("", "", "", "", old), ""},
	} {
		kind, revoked := s.Revoked(tc.tok)
		if kind != tc.kind || revoked != (tc.kind != "") {
			t.Errorf("%s: got %q %v, want %q", tc.name, kind, revoked, tc.kind)
		}
	}
	if got := s.Counts(); got[KindJTI] != 2 || got[KindSub] != 2 || got[KindTenant] != 2 || s.Len() != 6 {
		t.Errorf("counts %v len %d", got, s.Len())
	}
}

func TestRevokedMatchesSid(t *testing.T) {
	c := &clock{t: t0}
	s := NewSet(Options{Now: c.now})
	old, fresh := t0.Add(-time.Minute), t0.Add(time.Second)
	mustAdd(t, s, mustEntry(t, Request{Sid: ptr("s1"), Iss: ptr("https://a")}, t0))
	withSid := func(iss, sid string, iat time.Time) *Token {
		k := tok(iss, "x", "u", "t", iat)
		k.Sid = sid
		return k
	}
	for _, tc := range []struct {
		name string
		tok  *Token
		kind string
	}{
		{"sid issued before", withSid("https://a", "s1", old), KindSid},
		{"sid issued after", withSid("https://a", "s1", fresh), ""},
		{"sid of another issuer", withSid("https://b", "s1", old), ""},
		{"another sid", withSid("https://a", "s2", old), ""},
		{"no sid", withSid("https://a", "", old), ""},
		// A sub "s1" is not a sid "s1": the kinds hash apart.
		{"sub equal to the sid", tok("https://a", "x", "s1", "t", old), ""},
	} {
		kind, revoked := s.Revoked(tc.tok)
		if kind != tc.kind || revoked != (tc.kind != "") {
			t.Errorf("%s: got %q %v, want %q", tc.name, kind, revoked, tc.kind)
		}
	}
	if got := s.Counts(); got[KindSid] != 1 || len(got) != 4 {
		t.Errorf("counts %v", got)
	}
}

func TestAddMergesToTheLaterBefore(t *testing.T) {
	c := &clock{t: t0}
	s := NewSet(Options{Now: c.now})
	later := mustEntry(t, Request{Sub: ptr("u1")}, t0)
	earlier := mustEntry(t, Request{Sub: ptr("u1"), Before: ptr(t0.Add(-time.Hour).Format(time.RFC3339))}, t0)
	mustAdd(t, s, later)
	if added, _ := s.Add(earlier); added {
		t.Error("an earlier before replaced a later one")
	}
	if _, r := s.Revoked(tok("i", "", "u1", "", t0.Add(-time.Minute))); !r {
		t.Error("the later before was lost")
	}
	if s.Len() != 1 || !s.Has(&earlier) || !s.Has(&later) {
		t.Errorf("len %d", s.Len())
	}
	even := mustEntry(t, Request{Sub: ptr("u1")}, t0.Add(time.Minute))
	if added, _ := s.Add(even); !added || s.Len() != 1 {
		t.Error("a later before did not update the entry")
	}
}

func TestEntriesExpireWithTheLongestLifetimeSeen(t *testing.T) {
	c := &clock{t: t0}
	s := NewSet(Options{Now: c.now, Leeway: 30 * time.Second})
	// An issuer whose tokens live 10 minutes.
	s.Revoked(tok("https://a", "", "", "", t0.Add(-time.Minute)))
	mustAdd(t, s, mustEntry(t, Request{Sub: ptr("u1"), Iss: ptr("https://a")}, t0))
	mustAdd(t, s, mustEntry(t, Request{Sub: ptr("u2"), Iss: ptr("https://never-seen")}, t0))
	mustAdd(t, s, mustEntry(t, Request{JTI: ptr("j")}, t0))
	e := s.List()
	if len(e) != 3 {
		t.Fatal(len(e))
	}
	for _, x := range e {
		want := t0.Add(DefaultRetention + 30*time.Second)
		if x.Iss == "https://a" || x.Kind == KindJTI {
			want = t0.Add(10*time.Minute + 30*time.Second)
		}
		if !x.Expires.Equal(want) {
			t.Errorf("%s %s: expires %s, want %s", x.Kind, x.Iss, x.Expires, want)
		}
	}
	c.add(10*time.Minute + 29*time.Second)
	if n := s.Sweep(); n != 0 {
		t.Fatalf("swept %d entries a token could still match", n)
	}
	c.add(2 * time.Second)
	if n := s.Sweep(); n != 2 || s.Len() != 1 {
		t.Fatalf("swept %d, %d left", n, s.Len())
	}
	// An entry that is already moot is not stored at all.
	if added, err := s.Add(mustEntry(t, Request{Sub: ptr("u3"), Iss: ptr("https://a"), Before: ptr(t0.Format(time.RFC3339))}, c.now())); added || err != nil {
		t.Errorf("moot entry: added %v err %v", added, err)
	}
	// revocation_retention caps even what was seen.
	s.SetRetention(time.Minute)
	s.Revoked(tok("https://b", "", "", "", c.now().Add(-time.Minute)))
	if l := s.lifetimeOf("https://b"); l != time.Minute {
		t.Errorf("lifetime %s, want the 1m cap", l)
	}
}

func TestCapRefusesNewEntriesAndKeepsLiveOnes(t *testing.T) {
	c := &clock{t: t0}
	s := NewSet(Options{Now: c.now, MaxEntries: 3})
	for i := range 3 {
		mustAdd(t, s, mustEntry(t, Request{JTI: ptr(fmt.Sprint(i))}, t0))
	}
	_, err := s.Add(mustEntry(t, Request{JTI: ptr("x")}, t0))
	if !errors.Is(err, ErrFull) {
		t.Fatalf("err %v, want ErrFull", err)
	}
	for i := range 3 {
		if _, r := s.Revoked(tok("i", fmt.Sprint(i), "", "", t0)); !r {
			t.Errorf("live entry %d dropped", i)
		}
	}
	// An update of a held entry still goes through at the cap.
	if _, err := s.Add(mustEntry(t, Request{JTI: ptr("0")}, t0.Add(time.Second))); err != nil {
		t.Errorf("update at the cap: %v", err)
	}
	// Once entries expire, the cap frees room by itself.
	c.add(DefaultRetention + time.Minute)
	if _, err := s.Add(mustEntry(t, Request{JTI: ptr("x")}, c.now())); err != nil {
		t.Errorf("after expiry: %v", err)
	}
	if s.Len() != 1 {
		t.Errorf("len %d", s.Len())
	}
}

func TestAddRefusesUnknownKind(t *testing.T) {
	if _, err := NewSet(Options{}).Add(Entry{Kind: "all"}); err == nil {
		t.Fatal("accepted")
	}
}

func TestConcurrentChecksAndWrites(t *testing.T) {
	s := NewSet(Options{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := range 500 {
				mustAdd(t, s, mustEntry(t, Request{Sub: ptr(fmt.Sprintf("u%d-%d", w, i))}, time.Now()))
			}
		}()
		go func() {
			defer wg.Done()
			for i := range 2000 {
				s.Revoked(tok("i", "j", fmt.Sprintf("u%d-%d", w, i%500), "t", time.Now().Add(-time.Hour)))
			}
		}()
	}
	wg.Wait()
	if s.Len() != 2000 {
		t.Fatal(s.Len())
	}
}
