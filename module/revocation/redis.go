package revocation

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// Redis layout, under the key prefix P:
//
//	P revocations:seq      INCR counter, one number per write
//	P revocations:entries  hash   id -> entry JSON
//	P revocations:order    zset   id scored by its write's seq (what reconcile reads)
//	P revocations:expiry   zset   id scored by when it may go (ms), purged on write
//	P revocations          pub/sub channel carrying each entry's JSON
//
// Every key expires a while after the last write, so an abandoned prefix
// leaves nothing behind.
const (
	keySeq     = "revocations:seq"
	keyEntries = "revocations:entries"
	keyOrder   = "revocations:order"
	keyExpiry  = "revocations:expiry"
	keyChannel = "revocations"
	// reconcileBatch is how many entries one reconcile round reads.
	reconcileBatch = 1000
)

// writeScript stores one entry, purges expired ones, publishes it, all in
// one atomic step. An entry already held with a later expiry (that is, a
// later before) is kept: a revocation never covers less after a write.
var writeScript = redis.NewScript(`
local cur = redis.call('ZSCORE', KEYS[4], ARGV[1])
if cur and tonumber(cur) >= tonumber(ARGV[3]) then
  return 0
end
local seq = redis.call('INCR', KEYS[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[3], seq, ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[1])
local old = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', ARGV[4], 'LIMIT', 0, 100)
for _, id in ipairs(old) do
  redis.call('HDEL', KEYS[2], id)
  redis.call('ZREM', KEYS[3], id)
  redis.call('ZREM', KEYS[4], id)
end
for i = 1, 4 do
  redis.call('EXPIRE', KEYS[i], ARGV[5])
end
redis.call('PUBLISH', ARGV[6], ARGV[2])
return seq
`)

// redisSync keeps a Store in step with Redis.
type redisSync struct {
	s        *Store
	client   *redis.Client
	keys     []string // seq, entries, order, expiry
	channel  string
	redacted string
	timeout  time.Duration
	every    time.Duration

	mu      sync.Mutex
	lastSeq int64
	// loaded: the first read is done; entries read after it are news,
	// observed for propagation.
	loaded  bool
	pending map[string]Entry
	down    time.Time // when the store started failing; zero when healthy
}

// ParseURL checks a shared_store URL as go-redis reads it; its errors never
// repeat a password.
func ParseURL(raw string) (*redis.Options, error) {
	opts, err := redis.ParseURL(raw)
	if err != nil {
		msg := err.Error()
		shown := "(unparsable URL)"
		if u, perr := url.Parse(raw); perr == nil {
			if pw, ok := u.User.Password(); ok && pw != "" {
				msg = strings.ReplaceAll(msg, pw, "xxxxx")
			}
			shown = u.Redacted()
		}
		return nil, fmt.Errorf("shared_store %s: %s (want redis://[user:password@]host:port[/db], rediss://... or unix:///path)", shown, msg)
	}
	return opts, nil
}

// Redacted is the URL with any password masked, for logs.
func Redacted(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Redacted()
	}
	return "(unparsable URL)"
}

func newRedisSync(s *Store, cfg StoreConfig) (*redisSync, error) {
	opts, err := ParseURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	opts.ContextTimeoutEnabled = true
	opts.ReadTimeout, opts.WriteTimeout = cfg.Timeout, cfg.Timeout
	opts.DialTimeout = cfg.Timeout
	// A failed command is not retried: the reconcile loop retries anyway.
	opts.MaxRetries = -1
	opts.DisableIdentity = true
	p := cfg.KeyPrefix
	return &redisSync{
		s:        s,
		client:   redis.NewClient(opts),
		keys:     []string{p + keySeq, p + keyEntries, p + keyOrder, p + keyExpiry},
		channel:  p + keyChannel,
		redacted: Redacted(cfg.URL),
		timeout:  cfg.Timeout,
		every:    cfg.Reconcile,
		pending:  map[string]Entry{},
	}, nil
}

func (r *redisSync) close() error { return r.client.Close() }

// write stores and publishes e.
func (r *redisSync) write(ctx context.Context, e Entry) error {
	e.Published = time.Now().UnixNano()
	raw, err := encodeEntry(e)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	// Redis purges an entry by the retention cap, never earlier: each
	// replica drops it sooner by the lifetimes it has seen.
	base := e.Before
	if e.Created.After(base) {
		base = e.Created
	}
	retain := time.Duration(r.s.set.retainN.Load()) + r.s.set.leeway
	expires := base.Add(retain).UnixMilli()
	ttl := int64((retain + time.Hour) / time.Second)
	err = writeScript.Run(ctx, r.client, r.keys, e.ID, raw, expires, time.Now().UnixMilli(), ttl, r.channel).Err()
	if err != nil {
		return fmt.Errorf("shared store write: %w", err)
	}
	r.recovered()
	return nil
}

func (r *redisSync) addPending(e Entry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, ok := r.pending[e.ID]; !ok || e.Before.After(old.Before) {
		r.pending[e.ID] = e
	}
}

// flushPending writes the entries whose shared write failed.
func (r *redisSync) flushPending(ctx context.Context) error {
	r.mu.Lock()
	todo := make([]Entry, 0, len(r.pending))
	for _, e := range r.pending {
		todo = append(todo, e)
	}
	r.mu.Unlock()
	for _, e := range todo {
		if err := r.write(ctx, e); err != nil {
			return err
		}
		r.mu.Lock()
		if cur, ok := r.pending[e.ID]; ok && !cur.Before.After(e.Before) {
			delete(r.pending, e.ID)
		}
		r.mu.Unlock()
	}
	if len(todo) > 0 {
		r.s.log.Info("revocations made while the shared store was down are now shared", zap.Int("entries", len(todo)))
	}
	return nil
}

// reconcile reads every entry written since the last one this replica
// read (all of them the first time) and applies them. A Redis that lost
// its data (its counter went back) is refilled with what this replica
// knows. It returns the number of entries read.
func (r *redisSync) reconcile(ctx context.Context) (int, error) {
	seq, err := r.client.Get(ctx, r.keys[0]).Int64()
	if err != nil && !errors.Is(err, redis.Nil) {
		return 0, fmt.Errorf("shared store read: %w", err)
	}
	r.mu.Lock()
	last, news := r.lastSeq, r.loaded
	if seq < last {
		// The store was flushed or replaced: read it whole, and write back
		// what this replica still holds so replicas started later see it.
		r.s.log.Warn("the shared store lost revocations (its counter went back); writing back this replica's entries",
			zap.Int64("store_seq", seq), zap.Int64("seen_seq", last))
		last, r.lastSeq = 0, 0
		for _, e := range r.s.set.List() {
			if old, ok := r.pending[e.ID]; !ok || e.Before.After(old.Before) {
				r.pending[e.ID] = e
			}
		}
	}
	r.mu.Unlock()
	n := 0
	for {
		zs, err := r.client.ZRangeArgsWithScores(ctx, redis.ZRangeArgs{
			Key: r.keys[2], ByScore: true, Start: "(" + strconv.FormatInt(last, 10), Stop: "+inf",
			Count: reconcileBatch,
		}).Result()
		if err != nil {
			return n, fmt.Errorf("shared store read: %w", err)
		}
		if len(zs) == 0 {
			break
		}
		ids := make([]string, len(zs))
		for i, z := range zs {
			ids[i], _ = z.Member.(string)
		}
		vals, err := r.client.HMGet(ctx, r.keys[1], ids...).Result()
		if err != nil {
			return n, fmt.Errorf("shared store read: %w", err)
		}
		for _, v := range vals {
			raw, ok := v.(string)
			if !ok {
				continue // purged between the two reads
			}
			e, err := decodeEntry([]byte(raw))
			if err != nil {
				r.s.obs.StoreError("decode")
				r.s.log.Warn("ignoring a malformed entry in the shared store", zap.Error(err))
				continue
			}
			r.s.apply(e, news)
			n++
		}
		last = int64(zs[len(zs)-1].Score)
		r.mu.Lock()
		if last > r.lastSeq {
			r.lastSeq = last
		}
		r.mu.Unlock()
		if len(zs) < reconcileBatch {
			break
		}
	}
	r.mu.Lock()
	r.loaded = true
	r.mu.Unlock()
	r.recovered()
	return n, nil
}

// run subscribes and reconciles until ctx ends. go-redis re-subscribes by
// itself after a lost connection; each (re)subscription triggers a
// reconcile, so what was published meanwhile is read at once.
func (r *redisSync) run(ctx context.Context, done chan struct{}) {
	defer close(done)
	ps := r.client.Subscribe(ctx, r.channel)
	defer ps.Close()
	msgs := ps.ChannelWithSubscriptions(redis.WithChannelSize(1024))
	t := time.NewTicker(r.every)
	defer t.Stop()
	catchUp := func() {
		rctx, cancel := context.WithTimeout(ctx, 4*r.timeout)
		defer cancel()
		if err := r.flushPending(rctx); err != nil {
			r.failed("write", err)
		}
		if _, err := r.reconcile(rctx); err != nil && ctx.Err() == nil {
			r.failed("reconcile", err)
		}
		r.s.set.Sweep()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			catchUp()
		case m, ok := <-msgs:
			if !ok {
				return
			}
			switch m := m.(type) {
			case *redis.Subscription:
				if m.Kind == "subscribe" {
					catchUp()
				}
			case *redis.Message:
				e, err := decodeEntry([]byte(m.Payload))
				if err != nil {
					r.s.obs.StoreError("decode")
					r.s.log.Warn("ignoring a malformed revocation message", zap.Error(err))
					continue
				}
				r.s.apply(e, true)
			}
		}
	}
}

// failed counts and logs a shared-store failure; the first of an outage
// is a warning, later ones debug lines, so an outage is visible without
// flooding the log.
func (r *redisSync) failed(op string, err error) {
	r.s.obs.StoreError(op)
	r.mu.Lock()
	first := r.down.IsZero()
	if first {
		r.down = time.Now()
	}
	pending := len(r.pending)
	r.mu.Unlock()
	lvl := zap.DebugLevel
	if first {
		lvl = zap.WarnLevel
	}
	if ce := r.s.log.Check(lvl, "shared store unavailable: known revocations keep applying, new ones apply at this replica only until it is back"); ce != nil {
		ce.Write(zap.String("store", r.redacted), zap.String("op", op), zap.Int("unshared_entries", pending), zap.Error(err))
	}
}

// recovered logs the end of an outage.
func (r *redisSync) recovered() {
	r.mu.Lock()
	since := r.down
	r.down = time.Time{}
	r.mu.Unlock()
	if !since.IsZero() {
		r.s.log.Info("shared store available again", zap.String("store", r.redacted), zap.Duration("unavailable_for", time.Since(since)))
	}
}
