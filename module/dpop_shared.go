package tenantgate

import (
	"context"
	"time"

	"github.com/tenantgate/tenantgate/module/verify/dpop"
)

// sharedClaimTimeout bounds the shared-store round trip a DPoP request
// waits for; past it the local replay cache decides.
const sharedClaimTimeout = 100 * time.Millisecond

// sharedReplay claims DPoP proofs in the shared store, so a proof spent at
// one replica is refused at every other, and in the process's own cache,
// which decides alone when the shared store does not answer (the error is
// counted in tenantgate_shared_store_errors_total{op="claim"}).
type sharedReplay struct {
	shared *processState
	local  dpop.ReplayStore
}

// Claim implements dpop.ReplayStore.
func (r sharedReplay) Claim(id dpop.ProofID, ttl time.Duration) (bool, error) {
	localFresh, lerr := r.local.Claim(id, ttl)
	ctx, cancel := context.WithTimeout(context.Background(), sharedClaimTimeout)
	defer cancel()
	fresh, err := r.shared.ClaimOnce(ctx, "dpop:"+id.String(), ttl)
	if err != nil {
		return localFresh, lerr
	}
	return fresh && localFresh, lerr
}

// sharedReplayHook is the verifier's SharedReplay option: set only with a
// shared_store.
func (s *SharedState) sharedReplayHook() func(dpop.ReplayStore) dpop.ReplayStore {
	if s.revocations == nil || !s.revocations.Shared() {
		return nil
	}
	h := s.revocations
	return func(local dpop.ReplayStore) dpop.ReplayStore { return sharedReplay{shared: h, local: local} }
}
