package verify

import (
	"crypto/sha256"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// DefaultReplayCacheSize is how many DPoP proofs the replay cache holds
// when Config.DPoP.ReplayCacheSize is zero: about 100 bytes each, so 10 MB.
const DefaultReplayCacheSize = 100000

// maxReplayCacheSize bounds what a config may ask for.
const maxReplayCacheSize = 10_000_000

// replayCache remembers the proofs accepted in the last dpop_max_age, so a
// proof is accepted once (RFC 9449 §11.1). It is bounded: an LRU of fixed
// size, keyed by SHA-256(jkt, jti), so its memory never grows with traffic.
// LRU (not frequency-based admission) because every proof is seen once:
// the most recent proofs are exactly the ones a replay would reuse, and the
// last N accepted proofs are always held.
//
// Only proofs that passed every other check enter it (signature, htm,
// htu, iat, ath, and a key the token is bound to), so filling it takes a
// valid token of the issuer; a flood beyond its size pushes out the oldest
// entries, and a replay of such an evicted proof inside its window would
// pass. Size it above the peak number of DPoP requests per 2*dpop_max_age.
type replayCache struct {
	mu  sync.Mutex
	lru *simplelru.LRU[[32]byte, int64] // value: unix second after which the proof is stale anyway
}

func newReplayCache(size int) *replayCache {
	if size <= 0 {
		size = DefaultReplayCacheSize
	}
	l, err := simplelru.NewLRU[[32]byte, int64](size, nil)
	if err != nil {
		panic(err) // only for size <= 0, excluded above
	}
	return &replayCache{lru: l}
}

// The process's replay cache: one for every config, so a `caddy reload`
// does not forget the proofs of the last minute. Each gate replica has its
// own; see the README. Its size is the largest dpop_replay_cache of the
// verifiers alive (bigger only ever catches more replays).
var (
	processReplayMu    sync.Mutex
	processReplay      atomic.Pointer[replayCache]
	processReplaySizes = map[int]int{} // requested size -> live verifiers asking for it
)

// acquireReplayCache returns the process's cache, grown to size when that is
// more than any live verifier asked for, and a release to call when the
// verifier closes (the cache then shrinks to what the others ask).
func acquireReplayCache(size int) (*replayCache, func()) {
	if size <= 0 {
		size = DefaultReplayCacheSize
	}
	processReplayMu.Lock()
	defer processReplayMu.Unlock()
	c := processReplay.Load()
	if c == nil {
		c = newReplayCache(size)
		processReplay.Store(c)
	}
	processReplaySizes[size]++
	c.resize(largestReplaySize())
	var once sync.Once
	return c, func() {
		once.Do(func() {
			processReplayMu.Lock()
			defer processReplayMu.Unlock()
			if processReplaySizes[size]--; processReplaySizes[size] == 0 {
				delete(processReplaySizes, size)
			}
			if n := largestReplaySize(); n > 0 {
				c.resize(n)
			}
		})
	}
}

func largestReplaySize() int {
	n := 0
	for s := range processReplaySizes {
		n = max(n, s)
	}
	return n
}

// ReplayCacheEntries is the number of proofs the process's replay cache
// holds now (0 before any config was loaded).
func ReplayCacheEntries() int {
	if c := processReplay.Load(); c != nil {
		return c.len()
	}
	return 0
}

func replayKey(jkt, jti string) [32]byte {
	h := sha256.New()
	h.Write([]byte(jkt))
	h.Write([]byte{0})
	h.Write([]byte(jti))
	var k [32]byte
	h.Sum(k[:0])
	return k
}

// firstUse records a proof and reports whether it is the first time it is
// seen while still acceptable (until: the end of its iat window).
func (c *replayCache) firstUse(key [32]byte, until, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if prev, ok := c.lru.Peek(key); ok && now.Unix() <= prev {
		return false
	}
	c.lru.Add(key, until.Unix())
	return true
}

func (c *replayCache) resize(size int) {
	if size <= 0 {
		size = DefaultReplayCacheSize
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lru.Resize(size)
}

func (c *replayCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}
