package verify

import (
	"fmt"
	"testing"
	"time"
)

func TestReplayCacheIsBounded(t *testing.T) {
	c := newReplayCache(100)
	now := time.Unix(1_700_000_000, 0)
	until := now.Add(time.Minute)
	for i := 0; i < 10_000; i++ {
		if !c.firstUse(replayKey("jkt", fmt.Sprint(i)), until, now) {
			t.Fatalf("proof %d taken for a replay", i)
		}
		if n := c.len(); n > 100 {
			t.Fatalf("cache holds %d entries, more than its size 100", n)
		}
	}
	// The last 100 proofs are always held: each of them is a replay now.
	for i := 10_000 - 100; i < 10_000; i++ {
		if c.firstUse(replayKey("jkt", fmt.Sprint(i)), until, now) {
			t.Fatalf("recent proof %d replayed after a flood", i)
		}
	}
	// A jti is only remembered within its window.
	if !c.firstUse(replayKey("jkt", "9999"), until, until.Add(time.Second)) {
		t.Fatal("a jti past its window still counts as seen")
	}
	// The key separates clients: another key's jti is not this one's.
	if !c.firstUse(replayKey("other", "9998"), until, now) {
		t.Fatal("jti of another key taken for a replay")
	}
	c.resize(10)
	if c.len() != 10 {
		t.Fatalf("resize kept %d", c.len())
	}
	c.resize(0)
	if newReplayCache(0).lru == nil {
		t.Fatal("default size")
	}
}

func TestSharedReplayCacheTakesTheLargestLiveSize(t *testing.T) {
	a, releaseA := acquireReplayCache(5000)
	b, releaseB := acquireReplayCache(7000)
	if a != b {
		t.Fatal("the replay cache is per process, shared by configs")
	}
	now := time.Now()
	for i := 0; i < 6000; i++ {
		a.firstUse(replayKey("shared", fmt.Sprint(i)), now.Add(time.Minute), now)
	}
	if ReplayCacheEntries() < 6000 {
		t.Fatalf("the larger request (7000) sizes the cache, holds %d", ReplayCacheEntries())
	}
	releaseB()
	releaseB() // idempotent
	processReplayMu.Lock()
	left, largest := processReplaySizes[7000], largestReplaySize()
	processReplayMu.Unlock()
	if left != 0 {
		t.Fatal("a released size still counts")
	}
	if largest == 5000 && a.len() != 5000 {
		t.Fatalf("shrunk to the remaining largest size 5000, holds %d", a.len())
	}
	releaseA()
}
