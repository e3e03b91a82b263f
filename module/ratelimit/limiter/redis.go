package limiter

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
)

// DefaultKeyPrefix starts every key the Redis store writes (after
// redis_rate's own "rate:").
const DefaultKeyPrefix = "tenantgate:"

// Redis is the shared store: GCRA in one Lua script per request and limit
// (github.com/go-redis/redis_rate), on Redis's clock, so every gate replica
// pointed at the same Redis counts against the same per-tenant limits.
// Keys expire by themselves once a tenant's quota is full again.
type Redis struct {
	client  *redis.Client
	limiter *redis_rate.Limiter
	prefix  string
}

// ParseStoreURL checks a store URL (redis://, rediss:// or unix://, as
// go-redis reads them). Its errors never repeat a password.
func ParseStoreURL(raw string) (*redis.Options, error) {
	opts, err := redis.ParseURL(raw)
	if err != nil {
		msg := err.Error()
		if u, perr := url.Parse(raw); perr == nil {
			if pw, ok := u.User.Password(); ok && pw != "" {
				msg = strings.ReplaceAll(msg, pw, "xxxxx")
			}
			raw = u.Redacted()
		} else {
			raw = "(unparsable URL)"
		}
		return nil, fmt.Errorf("store %s: %s (want redis://[user:password@]host:port[/db], rediss://... or unix:///path)", raw, msg)
	}
	return opts, nil
}

// NewRedis connects lazily to the store at raw. timeout bounds every
// command; a command is never retried, since a retry would double the
// wait of a request that the store already failed.
func NewRedis(raw string, timeout time.Duration, keyPrefix string) (*Redis, error) {
	opts, err := ParseStoreURL(raw)
	if err != nil {
		return nil, err
	}
	opts.ContextTimeoutEnabled = true
	opts.ReadTimeout, opts.WriteTimeout = timeout, timeout
	opts.MaxRetries = -1
	opts.DialerRetries = 1
	// One dial attempt per request: go-redis itself stops dialling after a
	// pool's worth of failures and probes once a second in the background.
	opts.DisableIdentity = true
	c := redis.NewClient(opts)
	return &Redis{client: c, limiter: redis_rate.NewLimiter(c), prefix: keyPrefix}, nil
}

// KeyFor is the key (without redis_rate's "rate:") that holds tenant's
// state for p.
func (r *Redis) KeyFor(tenant string, p *Policy) string {
	return r.prefix + p.Key + ":" + tenant
}

// Allow implements Store.
func (r *Redis) Allow(ctx context.Context, tenant string, p *Policy) (Result, error) {
	res, err := r.limiter.Allow(ctx, r.KeyFor(tenant, p), redis_rate.Limit{Rate: p.N, Burst: p.Burst, Period: p.Period})
	if err != nil {
		return Result{}, fmt.Errorf("rate limit store: %w", err)
	}
	out := Result{Allowed: res.Allowed > 0, Remaining: res.Remaining, ResetAfter: max(res.ResetAfter, 0)}
	if !out.Allowed {
		out.RetryAfter = max(res.RetryAfter, 0)
	}
	return out, nil
}

// Close implements Store.
func (r *Redis) Close() error {
	return r.client.Close()
}
