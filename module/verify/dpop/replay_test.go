package dpop

import (
	"fmt"
	"testing"
	"time"
)

func claim(t *testing.T, m *MemoryReplay, jkt, jti string, ttl time.Duration) bool {
	t.Helper()
	fresh, err := m.Claim(ProofIDOf(jkt, jti), ttl)
	if err != nil {
		t.Fatal(err)
	}
	return fresh
}

func TestReplayCacheIsBounded(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	c := NewMemoryReplay(func() time.Time { return now })
	release := c.Reserve(100)
	for i := 0; i < 10_000; i++ {
		if !claim(t, c, "jkt", fmt.Sprint(i), time.Minute) {
			t.Fatalf("proof %d taken for a replay", i)
		}
		if n := c.Len(); n > 100 {
			t.Fatalf("cache holds %d entries, more than its size 100", n)
		}
	}
	// The last 100 proofs are always held: each of them is a replay now.
	for i := 10_000 - 100; i < 10_000; i++ {
		if claim(t, c, "jkt", fmt.Sprint(i), time.Minute) {
			t.Fatalf("recent proof %d replayed after a flood", i)
		}
	}
	// A jti is only remembered within its window.
	now = now.Add(time.Minute + time.Second)
	if !claim(t, c, "jkt", "9999", time.Minute) {
		t.Fatal("a jti past its window still counts as seen")
	}
	// The key separates clients: another key's jti is not this one's.
	if !claim(t, c, "other", "9998", time.Minute) {
		t.Fatal("jti of another key taken for a replay")
	}
	release()
	if got := NewMemoryReplay(nil).lru.Len(); got != 0 {
		t.Fatalf("a new store holds %d", got)
	}
}

func TestReplayStoreTakesTheLargestLiveSize(t *testing.T) {
	m := NewMemoryReplay(nil)
	releaseA := m.Reserve(5000)
	releaseB := m.Reserve(7000)
	for i := 0; i < 6000; i++ {
		claim(t, m, "shared", fmt.Sprint(i), time.Minute)
	}
	if m.Len() < 6000 {
		t.Fatalf("the larger reservation (7000) sizes the store, holds %d", m.Len())
	}
	releaseB()
	releaseB() // idempotent
	if m.Len() != 5000 {
		t.Fatalf("shrunk to the remaining largest size 5000, holds %d", m.Len())
	}
	releaseA()
	releaseC := m.Reserve(10)
	if m.Len() != 10 {
		t.Fatalf("resized to 10, holds %d", m.Len())
	}
	releaseC()
	if ProofIDOf("a", "b") == ProofIDOf("a\x00b", "") || len(ProofIDOf("a", "b").String()) != 64 {
		t.Fatal("proof IDs must separate key and jti, and print as 64 hex digits")
	}
}
