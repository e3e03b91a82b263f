package revocation

import (
	"cmp"
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of a Set.
const (
	// DefaultMaxEntries bounds the live entries of a set (about 300 bytes
	// each, so some 30 MB at the cap).
	DefaultMaxEntries = 100_000
	// DefaultRetention caps how long an entry is kept: tokens are assumed
	// to live at most this long unless revocation_retention says more.
	DefaultRetention = 24 * time.Hour
	// maxIssuers bounds the issuers whose token lifetimes are tracked
	// (multi-tenant issuers make one iss per tenant); beyond it the
	// retention cap applies to the rest.
	maxIssuers = 10_000
)

// ErrFull is returned by Add when the set holds MaxEntries live entries:
// a new entry is refused rather than a live one dropped.
var ErrFull = errors.New("revocation set full")

// Token is what the check needs of a verified token.
type Token struct {
	Issuer, ID, Subject, Tenant string
	// Sid is the token's sid claim (the OpenID Provider's session), "" when
	// it has none.
	Sid string
	// IssuedAt is the token's iat; zero when it had none, which counts
	// as issued before any time (a token that cannot show it is newer
	// than a revocation is treated as older).
	IssuedAt, Expiry time.Time
}

// key is a map key: an issuer ("" for entries that match any issuer) and
// a value. A struct of strings hashes without building a string, so a
// lookup allocates nothing.
type key struct{ iss, val string }

// Set is the in-memory revocation set, safe for concurrent use.
//
// A check first tests one bit per claim (jti, sub, tenant, sid) in a filter of
// about 16 bits per entry the set may hold (256 KB at the default cap, so
// it stays in cache): a token none of whose claims is named by an entry,
// which is nearly every token, costs a hash and a bit test per claim,
// with no lock, whether the set is empty or full. Only a set bit leads to
// the maps, under a read lock. Writes are rare; the filter is rebuilt when
// expired entries are swept (bits cannot be cleared one by one).
type Set struct {
	mu     sync.RWMutex
	byKind [4]map[key]*Entry // jti, sub, tenant, sid
	count  int
	max    int
	filter atomic.Pointer[filter]
	seed   maphash.Seed

	leeway  time.Duration
	retainN atomic.Int64 // retention cap, ns

	// lifetimes: the longest exp-iat seen per issuer (ns), copy-on-write
	// since issuers are few; and the longest over all issuers.
	lifeMu   sync.Mutex
	lifetime atomic.Pointer[map[string]*atomic.Int64]
	lifeAll  atomic.Int64

	now func() time.Time
}

// filter is a bitset indexed by a hash of (kind, value).
type filter struct {
	words []atomic.Uint64
	mask  uint64
}

func newFilter(maxEntries int) *filter {
	n := 1 << 12
	for n < maxEntries*16 {
		n <<= 1
	}
	// #nosec G115 -- n is a positive power of two
	return &filter{words: make([]atomic.Uint64, n/64), mask: uint64(n - 1)}
}

func (f *filter) set(h uint64)      { f.words[(h&f.mask)>>6].Or(1 << (h & 63)) }
func (f *filter) has(h uint64) bool { return f.words[(h&f.mask)>>6].Load()&(1<<(h&63)) != 0 }

// hash of a value of kind i; the kind is mixed in so a sub "x" does not
// set the bit a jti "x" tests.
func (s *Set) hash(i int, val string) uint64 {
	return maphash.String(s.seed, val) ^ kindSalt[i]
}

var kindSalt = [4]uint64{0x9e3779b97f4a7c15, 0x3c6ef372fe94f82a, 0xdaa66d2c7ddf743f, 0x78dde6e5fd29f05c}

// Options configure a Set.
type Options struct {
	MaxEntries int           // default DefaultMaxEntries
	Retention  time.Duration // default DefaultRetention
	Leeway     time.Duration // clock skew added to every expiry
	Now        func() time.Time
}

// NewSet makes an empty set.
func NewSet(o Options) *Set {
	s := &Set{max: o.MaxEntries, leeway: o.Leeway, now: o.Now, seed: maphash.MakeSeed()}
	if s.max <= 0 {
		s.max = DefaultMaxEntries
	}
	s.filter.Store(newFilter(s.max))
	s.lifetime.Store(&map[string]*atomic.Int64{})
	if s.now == nil {
		s.now = time.Now
	}
	for i := range s.byKind {
		s.byKind[i] = map[key]*Entry{}
	}
	s.SetRetention(o.Retention)
	return s
}

// SetRetention changes the retention cap (a reload may change it); 0
// means DefaultRetention.
func (s *Set) SetRetention(d time.Duration) {
	if d <= 0 {
		d = DefaultRetention
	}
	s.retainN.Store(int64(d))
}

func kindIndex(kind string) int {
	switch kind {
	case KindJTI:
		return 0
	case KindSub:
		return 1
	case KindTenant:
		return 2
	case KindSid:
		return 3
	}
	return -1
}

// Revoked reports whether t is revoked and, when it is, the kind of the
// entry that matched. It also records t's lifetime for the issuer, which
// decides how long entries are kept. It never blocks on I/O and allocates
// nothing.
func (s *Set) Revoked(t *Token) (kind string, revoked bool) {
	s.seen(t)
	f := s.filter.Load()
	var hit [4]bool
	any := false
	for i, v := range [4]string{t.ID, t.Subject, t.Tenant, t.Sid} {
		if v != "" && f.has(s.hash(i, v)) {
			hit[i], any = true, true
		}
	}
	if !any {
		return "", false
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if hit[0] && s.match(0, t, t.ID) {
		return KindJTI, true
	}
	if hit[1] && s.match(1, t, t.Subject) {
		return KindSub, true
	}
	if hit[2] && s.match(2, t, t.Tenant) {
		return KindTenant, true
	}
	if hit[3] && s.match(3, t, t.Sid) {
		return KindSid, true
	}
	return "", false
}

// match looks val up among the entries of kind i for any issuer and for
// t's issuer. A jti entry matches whatever the token's iat; sub, tenant
// and sid entries match tokens issued at or before their time.
func (s *Set) match(i int, t *Token, val string) bool {
	m := s.byKind[i]
	for _, iss := range [2]string{"", t.Issuer} {
		e := m[key{iss, val}]
		if e == nil {
			continue
		}
		if i == 0 || t.IssuedAt.IsZero() || !t.IssuedAt.After(e.Before) {
			return true
		}
	}
	return false
}

// seen records the token's lifetime for its issuer.
func (s *Set) seen(t *Token) {
	if t.IssuedAt.IsZero() || t.Expiry.IsZero() {
		return
	}
	life := int64(t.Expiry.Sub(t.IssuedAt))
	if life <= 0 {
		return
	}
	if life > s.lifeAll.Load() {
		raise(&s.lifeAll, life)
	}
	c := (*s.lifetime.Load())[t.Issuer]
	if c == nil {
		if c = s.addIssuer(t.Issuer); c == nil {
			return
		}
	}
	if life > c.Load() {
		raise(c, life)
	}
}

// addIssuer starts tracking iss (nil beyond maxIssuers).
func (s *Set) addIssuer(iss string) *atomic.Int64 {
	s.lifeMu.Lock()
	defer s.lifeMu.Unlock()
	old := *s.lifetime.Load()
	if c := old[iss]; c != nil {
		return c
	}
	if len(old) >= maxIssuers {
		return nil
	}
	m := make(map[string]*atomic.Int64, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	c := new(atomic.Int64)
	m[iss] = c
	s.lifetime.Store(&m)
	return c
}

func raise(c *atomic.Int64, v int64) {
	for {
		old := c.Load()
		if v <= old || c.CompareAndSwap(old, v) {
			return
		}
	}
}

// lifetime is how long a token of iss (any issuer for "") may live: the
// longest seen, at most the retention cap; the cap when none was seen.
func (s *Set) lifetimeOf(iss string) time.Duration {
	capN := s.retainN.Load()
	var seen int64
	if iss == "" {
		seen = s.lifeAll.Load()
	} else {
		if c := (*s.lifetime.Load())[iss]; c != nil {
			seen = c.Load()
		}
	}
	if seen == 0 || seen > capN {
		return time.Duration(capN)
	}
	return time.Duration(seen)
}

// ExpiresAt is when e stops mattering: its time plus the longest lifetime
// of a token it can match, plus the leeway.
func (s *Set) ExpiresAt(e *Entry) time.Time {
	base := e.Before
	if e.Kind == KindJTI && e.Created.After(base) {
		base = e.Created
	}
	return base.Add(s.lifetimeOf(e.Iss) + s.leeway)
}

// Add stores e (already validated), or updates the entry with the same ID:
// the later before wins, so a repeated revocation covers more, never less.
// added is false when the set already held e unchanged. At the cap,
// expired entries are dropped first; if the set is still full, Add
// returns ErrFull and stores nothing.
func (s *Set) Add(e Entry) (added bool, err error) {
	i := kindIndex(e.Kind)
	if i < 0 {
		return false, fmt.Errorf("kind %q: want jti, sub, tenant or sid", e.Kind)
	}
	k := key{e.Iss, e.value()}
	if !s.ExpiresAt(&e).After(s.now()) {
		return false, nil // nothing it matches can still be valid
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.byKind[i][k]; old != nil {
		if !e.Before.After(old.Before) {
			return false, nil
		}
		merged := e
		s.byKind[i][k] = &merged
		return true, nil
	}
	if s.count >= s.max {
		s.sweepLocked(s.now())
		if s.count >= s.max {
			return false, fmt.Errorf("%w: %d live entries (the cap); the new entry is refused and no live entry is dropped: wait for entries to expire or raise revocation_max_entries", ErrFull, s.count)
		}
	}
	s.byKind[i][k] = &e
	s.count++
	s.filter.Load().set(s.hash(i, k.val))
	return true, nil
}

// Has reports whether the set holds an entry with e's selector whose
// before is at least e's.
func (s *Set) Has(e *Entry) bool {
	i := kindIndex(e.Kind)
	if i < 0 {
		return false
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	old := s.byKind[i][key{e.Iss, e.value()}]
	return old != nil && !old.Before.Before(e.Before)
}

// Sweep drops the entries that no valid token can match any more and
// returns how many it dropped.
func (s *Set) Sweep() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sweepLocked(s.now())
}

func (s *Set) sweepLocked(now time.Time) int {
	n := 0
	for _, m := range s.byKind {
		for k, e := range m {
			if !s.ExpiresAt(e).After(now) {
				delete(m, k)
				n++
			}
		}
	}
	s.count -= n
	if n > 0 {
		// Rebuild the filter without the dropped entries' bits.
		f := newFilter(s.max)
		for i, m := range s.byKind {
			for k := range m {
				f.set(s.hash(i, k.val))
			}
		}
		s.filter.Store(f)
	}
	return n
}

// Counts returns the live entries per kind (jti, sub, tenant, sid).
func (s *Set) Counts() map[string]int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make(map[string]int, len(Kinds))
	for i, kind := range Kinds {
		out[kind] = len(s.byKind[i])
	}
	return out
}

// Len is the number of entries held.
func (s *Set) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.count
}

// List returns copies of the entries, with Expires filled in, newest first.
func (s *Set) List() []Entry {
	s.mu.RLock()
	out := make([]Entry, 0, s.count)
	for _, m := range s.byKind {
		for _, e := range m {
			c := *e
			c.Expires = s.ExpiresAt(e)
			out = append(out, c)
		}
	}
	s.mu.RUnlock()
	slices.SortFunc(out, func(a, b Entry) int {
		if c := b.Created.Compare(a.Created); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return out
}
