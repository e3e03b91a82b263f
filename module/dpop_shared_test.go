package tenantgate

import (
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/module/ratelimit/redistest"
	"github.com/tenantgate/tenantgate/module/revocation"
	"github.com/tenantgate/tenantgate/module/verify"
	"github.com/tenantgate/tenantgate/module/verify/dpop"
)

// openStore is a process state of the test's own on url and prefix (a
// replica), destructed when the test ends.
func openStore(t *testing.T, url, prefix string) *processState {
	t.Helper()
	st, err := revocation.Open(revocation.StoreConfig{URL: url, KeyPrefix: prefix, LoadTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	h := &processState{Store: st, verify: verify.NewStore()}
	t.Cleanup(func() { _ = h.Destruct() })
	return h
}

// Two replicas (two stores on one Redis prefix, each with its own local
// cache): a proof claimed at one is a replay at the other.
func TestSharedReplayAcrossReplicas(t *testing.T) {
	url := redistest.Redis(t)
	prefix := redistest.Prefix(t, url)
	a := (&SharedState{revocations: openStore(t, url, prefix)}).sharedReplayHook()(dpop.NewMemoryReplay(time.Now))
	b := (&SharedState{revocations: openStore(t, url, prefix)}).sharedReplayHook()(dpop.NewMemoryReplay(time.Now))
	id := dpop.ProofIDOf("thumbprint", "proof-jti-1")
	if fresh, err := a.Claim(id, time.Minute); !fresh || err != nil {
		t.Fatalf("first use: %v %v", fresh, err)
	}
	if fresh, err := b.Claim(id, time.Minute); fresh || err != nil {
		t.Fatalf("replay at the other replica: %v %v", fresh, err)
	}
	if fresh, _ := a.Claim(id, time.Minute); fresh {
		t.Fatal("replay at the same replica")
	}
}

// With the shared store down, the local cache decides.
func TestSharedReplayFallsBackToTheLocalCache(t *testing.T) {
	r := (&SharedState{revocations: openStore(t, redistest.ClosedURL(t), "p:")}).sharedReplayHook()(dpop.NewMemoryReplay(time.Now))
	id := dpop.ProofIDOf("thumbprint", "proof-jti-2")
	if fresh, err := r.Claim(id, time.Minute); !fresh || err != nil {
		t.Fatalf("%v %v", fresh, err)
	}
	if fresh, _ := r.Claim(id, time.Minute); fresh {
		t.Fatal("the local cache did not catch the replay")
	}
	if (&SharedState{revocations: openStore(t, "", "")}).sharedReplayHook() != nil {
		t.Fatal("a hook without a shared store")
	}
}
