package tenantgate

import (
	"testing"

	"github.com/tenantgate/tenantgate/module/ratelimit/redistest"
)

// TestProcessStateOneValueAcrossReloads: the gates of one shared store hold
// one process state (verify store, revocation store, nonce secret); a
// reload keeps it, and the last Cleanup destructs it.
func TestProcessStateOneValueAcrossReloads(t *testing.T) {
	url := redistest.Redis(t)
	prefix := redistest.Prefix(t, url)
	nonce := func(g *Gate) { g.SharedStore, g.SharedStorePrefix, g.DPoPNonce = url, prefix, true }
	old := newUnitGate(t, nonce)
	key := old.g.storeKey
	// A reload: the new config is provisioned before the old one is cleaned up.
	reloaded := newUnitGate(t, nonce)
	if reloaded.g.revocations != old.g.revocations || reloaded.g.store != old.g.store || reloaded.g.store != old.g.revocations.verify {
		t.Fatal("two configs of one shared store hold two process states")
	}
	if reloaded.g.revocations.nonceSecret() != old.g.revocations.nonceSecret() {
		t.Fatal("a reload made a new nonce secret: every nonce clients hold would be refused")
	}
	if n, ok := processStates.References(key); !ok || n != 2 {
		t.Fatalf("references %d %v, want 2", n, ok)
	}
	_ = old.g.Cleanup()
	if n, ok := processStates.References(key); !ok || n != 1 {
		t.Fatalf("after the old config's cleanup: %d %v", n, ok)
	}
	state := reloaded.g.revocations
	if state.nonces.cancel == nil {
		t.Fatal("no nonce secret sync on a shared store")
	}
	_ = reloaded.g.Cleanup()
	if _, ok := processStates.References(key); ok {
		t.Fatal("the last cleanup left the state in the pool")
	}
	if state.nonces.cancel != nil {
		t.Fatal("the destructed state still syncs its nonce secret")
	}
	// Another shared store (another prefix) is another state.
	other := newUnitGate(t, func(g *Gate) { g.SharedStorePrefix = "unit-other-" + t.Name() })
	if other.g.store == state.verify {
		t.Fatal("two shared stores share one verify store")
	}
}
