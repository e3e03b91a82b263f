package revocation

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
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

// getOrSetScript returns the value at KEYS[1], storing ARGV[1] there first
// when it has none: one atomic step, so every replica ends up with the
// first writer's value (works on Redis 6 too, unlike SET NX GET).
var getOrSetScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v then return v end
redis.call('SET', KEYS[1], ARGV[1])
return ARGV[1]
`)

// GetOrSet returns the shared value under key (the key prefix added),
// storing value there when the key holds none. It is never on a request's
// path; the caller counts and logs an error.
func (s *Store) GetOrSet(ctx context.Context, key, value string) (string, error) {
	if s.shared == nil {
		return "", ErrNotShared
	}
	v, err := getOrSetScript.Run(ctx, s.shared.client, []string{s.cfg.KeyPrefix + key}, value).Text()
	if err != nil {
		return "", fmt.Errorf("shared store %s: %w", key, err)
	}
	return v, nil
}
