package revocation

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrNotShared is returned by ClaimOnce on a store without a shared Redis.
var ErrNotShared = errors.New("no shared store")

// ClaimOnce claims key in the shared store for ttl (SET NX with the
// remaining validity): fresh is true for the first claim of key at any
// replica. It is on a request's path (DPoP proofs), so ctx should carry a
// short deadline; an error leaves the decision to the caller's local cache.
func (s *Store) ClaimOnce(ctx context.Context, key string, ttl time.Duration) (fresh bool, err error) {
	if s.shared == nil {
		return false, ErrNotShared
	}
	if ttl < time.Millisecond {
		ttl = time.Millisecond
	}
	fresh, err = s.shared.client.SetNX(ctx, s.cfg.KeyPrefix+"claim:"+key, 1, ttl).Result()
	if err != nil {
		s.obs.StoreError("claim")
		return false, fmt.Errorf("shared store claim: %w", err)
	}
	return fresh, nil
}
