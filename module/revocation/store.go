package revocation

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/tenantgate/tenantgate/internal/tick"
)

// Defaults of a Store.
const (
	DefaultKeyPrefix = "tenantgate:"
	// DefaultReconcile is how often a replica reads what it may have missed
	// on pub/sub, retries writes that failed, and drops expired entries.
	DefaultReconcile = 5 * time.Second
	// DefaultTimeout bounds every Redis command (never on a request's path).
	DefaultTimeout = time.Second
	// DefaultLoadTimeout bounds the first load of a replica, before it serves.
	DefaultLoadTimeout = 3 * time.Second
	// localSweep is how often a per-process store drops expired entries.
	localSweep = time.Minute
)

// Observer receives the store's events, for metrics.
type Observer interface {
	// StoreError counts one failed operation on the shared store.
	StoreError(op string)
	// Propagated observes the time from a replica's publish to this
	// replica applying the entry.
	Propagated(d time.Duration)
}

type nopObserver struct{}

func (nopObserver) StoreError(string)        {}
func (nopObserver) Propagated(time.Duration) {}

// StoreConfig configures a Store.
type StoreConfig struct {
	// URL of the shared Redis (redis://, rediss://, unix://); empty keeps
	// the revocations in this process only.
	URL string
	// KeyPrefix starts every Redis key and the pub/sub channel. Default: tenantgate:
	KeyPrefix   string
	Set         Options
	Reconcile   time.Duration
	Timeout     time.Duration
	LoadTimeout time.Duration
	Logger      *zap.Logger
	Observer    Observer
}

// Store is a revocation Set that a whole process shares, kept in step with
// the other replicas through Redis when a URL is configured. Requests only
// ever read the in-memory set: Redis is touched by revocations and by the
// background loop, never on a request's path.
type Store struct {
	set    *Set
	cfg    StoreConfig
	log    *zap.Logger
	obs    Observer
	shared *redisSync // nil: per process

	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// Open makes the store. With a URL it loads the live entries from Redis
// first (bounded by LoadTimeout; when Redis does not answer, the store
// starts empty, logs and counts it, and catches up in the background), then
// subscribes and reconciles periodically until Close.
func Open(cfg StoreConfig) (*Store, error) {
	if cfg.KeyPrefix == "" {
		cfg.KeyPrefix = DefaultKeyPrefix
	}
	if cfg.Reconcile <= 0 {
		cfg.Reconcile = DefaultReconcile
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.LoadTimeout <= 0 {
		cfg.LoadTimeout = DefaultLoadTimeout
	}
	s := &Store{set: NewSet(cfg.Set), cfg: cfg, log: cfg.Logger, obs: cfg.Observer, done: make(chan struct{})}
	if s.log == nil {
		s.log = zap.NewNop()
	}
	if s.obs == nil {
		s.obs = nopObserver{}
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	if cfg.URL == "" {
		go s.sweepLoop(ctx)
		return s, nil
	}
	rs, err := newRedisSync(s, cfg)
	if err != nil {
		cancel()
		return nil, err
	}
	s.shared = rs
	loadCtx, loadCancel := context.WithTimeout(ctx, cfg.LoadTimeout)
	n, err := rs.reconcile(loadCtx)
	loadCancel()
	if err != nil {
		rs.failed("load", err)
	} else {
		s.log.Info("revocations loaded from the shared store", zap.Int("entries", n), zap.String("store", rs.redacted))
	}
	go rs.run(ctx, s.done)
	return s, nil
}

func (s *Store) sweepLoop(ctx context.Context) {
	defer close(s.done)
	tick.Every(ctx, localSweep, func(context.Context) { s.set.Sweep() })
}

// Close stops the background loop and closes the Redis client.
func (s *Store) Close() error {
	var err error
	s.once.Do(func() {
		s.cancel()
		<-s.done
		if s.shared != nil {
			err = s.shared.close()
		}
	})
	return err
}

// Set is the in-memory set that requests are checked against.
func (s *Store) Set() *Set { return s.set }

// Revoked checks a verified token (in memory only).
func (s *Store) Revoked(t *Token) (kind string, revoked bool) { return s.set.Revoked(t) }

// Shared reports whether the store has a shared Redis.
func (s *Store) Shared() bool { return s.shared != nil }

// Revoke applies e here at once and, with a shared store, writes and
// broadcasts it. shared is false when the shared write failed: the entry
// then applies at this replica only (logged, counted, and retried at each
// reconcile until it succeeds). ErrFull and an invalid entry are errors,
// and nothing is stored.
func (s *Store) Revoke(ctx context.Context, e Entry) (stored Entry, shared bool, err error) {
	if err := e.Validate(); err != nil {
		return e, false, fmt.Errorf("revocation entry: %w", err)
	}
	if _, err := s.set.Add(e); err != nil {
		return e, false, err
	}
	e.Expires = s.set.ExpiresAt(&e)
	if s.shared == nil {
		return e, false, nil
	}
	if err := s.shared.write(ctx, e); err != nil {
		s.shared.failed("write", err)
		s.shared.addPending(e)
		return e, false, nil
	}
	return e, true, nil
}

// encodeEntry is the wire form of an entry in Redis and on pub/sub.
func encodeEntry(e Entry) ([]byte, error) {
	e.Expires = time.Time{}
	return json.Marshal(e)
}

// decodeEntry reads and checks an entry from Redis or pub/sub: the store
// is shared, so what it holds is checked like a request.
func decodeEntry(raw []byte) (Entry, error) {
	var e Entry
	if err := json.Unmarshal(raw, &e); err != nil {
		return e, fmt.Errorf("decoding a shared revocation: %w", err)
	}
	if err := e.Validate(); err != nil {
		return e, fmt.Errorf("shared revocation %q: %w", truncate(e.ID, 40), err)
	}
	return e, nil
}

// apply adds an entry that came from the shared store; a new one is
// observed for propagation when it carries its publish time.
func (s *Store) apply(e Entry, observe bool) {
	added, err := s.set.Add(e)
	if err != nil {
		s.obs.StoreError("apply")
		s.log.Error("a shared revocation could not be applied at this replica", zap.String("id", e.ID), zap.Error(err))
		return
	}
	if added && observe && e.Published > 0 {
		if d := time.Since(time.Unix(0, e.Published)); d >= 0 {
			s.obs.Propagated(d)
		}
	}
}
