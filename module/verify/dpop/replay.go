package dpop

import (
	"crypto/sha256"
	"encoding/hex"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// ProofID names one proof for replay detection: the SHA-256 of the proof
// key's thumbprint and the proof's jti, so a jti of one client never
// collides with another's and the key stays 32 bytes whatever a client sends.
type ProofID [sha256.Size]byte

// ProofIDOf is the ProofID of a proof by the key with thumbprint jkt.
func ProofIDOf(jkt, jti string) ProofID {
	h := sha256.New()
	h.Write([]byte(jkt))
	h.Write([]byte{0})
	h.Write([]byte(jti))
	var id ProofID
	h.Sum(id[:0])
	return id
}

// String is the ID in hex, for stores keyed by strings.
func (id ProofID) String() string { return hex.EncodeToString(id[:]) }

// ReplayStore remembers the proofs accepted within their window (RFC 9449
// §11.1). Claim records id for ttl and reports whether it is the first
// claim of id within an earlier claim's ttl. An error means the store could
// not answer; the checker then refuses the proof (fail closed). A store
// shared by replicas (issue 23: Redis, SET NX with a TTL) plugs in here.
type ReplayStore interface {
	Claim(id ProofID, ttl time.Duration) (fresh bool, err error)
}

// DefaultReplaySize is how many proofs the in-memory store holds when
// Config.ReplayCacheSize is zero: about 100 bytes each, so 10 MB.
const DefaultReplaySize = 100000

// maxReplaySize bounds what a config may ask for.
const maxReplaySize = 10_000_000

// MemoryReplay is the process's in-memory ReplayStore. It is bounded: an
// LRU of fixed size, keyed by ProofID, so its memory never grows with
// traffic. LRU (not frequency-based admission) because every proof is
// seen once: the most recent proofs are exactly the ones a replay would
// reuse, and the last N accepted proofs are always held.
//
// Only proofs that passed every other check enter it (signature, htm,
// htu, iat, ath, and a key the token is bound to), so filling it takes a
// valid token of the issuer; a flood beyond its size pushes out the oldest
// entries, and a replay of such an evicted proof inside its window would
// pass. Size it above the peak number of DPoP requests per 2*dpop_max_age.
//
// One store serves every config of the process, so `caddy reload` does not
// forget the proofs of the last minute. Its size is the largest of the
// sizes the live configs reserved (bigger only ever catches more replays).
type MemoryReplay struct {
	mu    sync.Mutex
	lru   *simplelru.LRU[ProofID, time.Time] // value: when the claim ends
	sizes map[int]int                        // reserved size -> live reservations
	now   func() time.Time
}

// NewMemoryReplay returns an empty store of DefaultReplaySize entries
// until a config reserves a size. now is its clock (nil: time.Now).
func NewMemoryReplay(now func() time.Time) *MemoryReplay {
	if now == nil {
		now = time.Now
	}
	l, err := simplelru.NewLRU[ProofID, time.Time](DefaultReplaySize, nil)
	if err != nil {
		panic(err) // only for a size <= 0
	}
	return &MemoryReplay{lru: l, sizes: map[int]int{}, now: now}
}

// Claim implements ReplayStore; it never fails.
func (m *MemoryReplay) Claim(id ProofID, ttl time.Duration) (bool, error) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if until, ok := m.lru.Peek(id); ok && !now.After(until) {
		return false, nil
	}
	m.lru.Add(id, now.Add(ttl))
	return true, nil
}

// Reserve grows the store to size when that is more than any live
// reservation asked for; release (idempotent) gives it back, and the store
// shrinks to the largest size still reserved.
func (m *MemoryReplay) Reserve(size int) (release func()) {
	if size <= 0 {
		size = DefaultReplaySize
	}
	m.mu.Lock()
	m.sizes[size]++
	m.lru.Resize(m.largestLocked())
	m.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			m.mu.Lock()
			defer m.mu.Unlock()
			if m.sizes[size]--; m.sizes[size] == 0 {
				delete(m.sizes, size)
			}
			m.lru.Resize(m.largestLocked())
		})
	}
}

func (m *MemoryReplay) largestLocked() int {
	n := 0
	for s := range m.sizes {
		n = max(n, s)
	}
	if n == 0 {
		return DefaultReplaySize
	}
	return n
}

// Len is the number of proofs held now.
func (m *MemoryReplay) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lru.Len()
}
