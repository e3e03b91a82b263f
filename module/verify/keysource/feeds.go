package keysource

import (
	"container/list"
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tenantgate/tenantgate/module/verify/jose"
)

// The process's key feeds. A remote key set belongs to the process, not
// to a config: it is keyed by the issuer and the URL its keys come from, and
// every config naming that pair shares it. `caddy reload` provisions the new
// config before it cleans up the old one, so the set (and the schedule that
// keeps it) passes from one to the other with no gap and no fetch: the new
// config serves with the last good keys at once, also when the IdP is down.

// Bounds of the unknown-kid refetch gap: a kid not yet seen starts a fetch
// when none finished within the gap. Each refetch that finds none of the
// kids asked for doubles the gap, up to maxRefetchGap, so a flood of made-up
// kids costs a handful of fetches; one that finds a kid (a real rotation),
// or maxRefetchGap without a kid-triggered fetch, resets it.
const maxRefetchGap = 30 * time.Second

// Retry delays after a failed fetch: 1 s doubling, capped at maxBackoff (or
// the refresh interval when shorter), so requests waiting for keys during an
// outage see them within seconds of the IdP's return.
const (
	initialBackoff = time.Second
	maxBackoff     = 5 * time.Second
)

// maxIdleFeeds bounds the sets kept for key sources no config uses any more
// (an issuer removed by a reload, a tenant evicted): the oldest idle go.
const maxIdleFeeds = 1024

// feedKey names one remote key set.
type feedKey struct{ issuer, jwksURL, discoveryURL string }

// Feeds is the process's store of remote key sets, keyed by issuer and
// URL, and of the held tenants of multi-tenant issuers (pool.go), keyed
// the same way with {tenant} unreplaced. It is made once per process (the
// verifier's Store holds it) and passed to every remote source through Env;
// one scheduler refreshes every set (scheduler.go); Close stops it.
type Feeds struct {
	mu     sync.Mutex
	m      map[feedKey]*keyFeed
	idle   *list.List // feeds no config uses, oldest first: at most maxIdleFeeds
	closed bool
	sched  *scheduler

	limits Limits // the new-tenant budget of every multi-tenant issuer
	poolMu sync.Mutex
	pools  map[feedKey]*tenantPool
}

// NewFeeds returns an empty store of key feeds with the documented
// new-tenant budget.
func NewFeeds() *Feeds { return NewFeedsWith(DefaultLimits) }

// NewFeedsWith returns an empty store whose multi-tenant issuers spend the
// new-tenant budget l (NoBudget: none, for measurements).
func NewFeedsWith(l Limits) *Feeds {
	return &Feeds{m: map[feedKey]*keyFeed{}, idle: list.New(), sched: newScheduler(), limits: l, pools: map[feedKey]*tenantPool{}}
}

// Len is the number of key sets held, idle ones included.
func (s *Feeds) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

// Close stops the scheduler and every fetch in flight, and waits for
// them; sources still joined keep their last keys but fetch no more.
// Idempotent.
func (s *Feeds) Close() {
	s.mu.Lock()
	s.closed = true
	var stops []func()
	for _, f := range s.m {
		f.mu.Lock()
		if f.run != nil {
			stops = append(stops, f.stopLocked())
		}
		f.mu.Unlock()
	}
	s.mu.Unlock()
	s.sched.close()
	for _, stop := range stops {
		stop()
	}
}

// holds reports whether the process holds keys for k: a tenant whose set
// an earlier config fetched (still in use, or idle) is no new tenant.
func (s *Feeds) holds(k feedKey) bool {
	if s == nil {
		return false
	}
	s.mu.Lock()
	f := s.m[k]
	s.mu.Unlock()
	return f != nil && f.set.Load() != nil
}

// acquire returns the shared set for k and registers u as one of its users;
// the first user puts it on the scheduler.
func (s *Feeds) acquire(k feedKey, u *Remote) *keyFeed {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.m[k]
	if f == nil {
		f = &keyFeed{key: k, sched: s.sched, slot: -1}
		s.m[k] = f
	}
	if f.idleAt != nil {
		s.idle.Remove(f.idleAt)
		f.idleAt = nil
	}
	f.addUser(u, !s.closed)
	return f
}

// release drops u; the last user takes the set off the scheduler and
// stops its fetch in flight (waiting for it). The keys stay, idle, for the
// next config that names the same source.
func (s *Feeds) release(f *keyFeed, u *Remote) {
	s.mu.Lock()
	stop := f.removeUser(u)
	if f.idle() && f.idleAt == nil && s.m[f.key] == f {
		f.idleAt = s.idle.PushBack(f)
		for s.idle.Len() > maxIdleFeeds {
			oldest := s.idle.Remove(s.idle.Front()).(*keyFeed)
			oldest.idleAt = nil
			delete(s.m, oldest.key)
		}
	}
	s.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// feedRun is one period during which a feed has users; its fetches are
// waited for through wg when it ends. It holds no context: each fetch has
// its own, for its life only (a context kept per set would cost every held
// tenant several hundred bytes for nothing).
type feedRun struct {
	stopped bool // under the feed's mu: no fetch starts any more
	wg      sync.WaitGroup
}

// flight is one fetch in progress; every caller that needs it waits on done.
type flight struct {
	done    chan struct{}
	err     error
	started time.Time
	cancel  context.CancelFunc // stops the fetch when its feed's run ends
}

// keyFeed is one remote key set and its lifecycle: a scheduled refresh, a
// rate-limited refetch on an unknown kid, and retries with a capped backoff
// after failures. Its parameters (interval, client, logger, observer) are
// those of its newest user, the config most recently loaded. A feed costs
// no goroutine while no fetch is in flight: the process's scheduler holds
// it in its queue until nextTry.
type keyFeed struct {
	key   feedKey
	set   atomic.Pointer[jose.KeySet] // nil until the first good fetch
	sched *scheduler

	mu     sync.Mutex
	users  []*Remote
	run    *feedRun
	idleAt *list.Element // in Feeds.idle while no config uses the set; under Feeds.mu

	inflight     *flight
	lastStart    time.Time // when the last fetch (any cause) started
	lastFinish   time.Time // when the last fetch (any cause) ended
	lastSuccess  time.Time
	lastKidFetch time.Time // when the last unknown-kid refetch started
	lastAsk      time.Time // when the last token with an unknown kid came
	nextTry      time.Time // when the scheduler fetches next
	backoff      time.Duration
	failing      bool      // the last fetch failed
	lastErr      error     // why, while failing
	failedSince  time.Time // first failure of the current run of failures
	gap          time.Duration
	asked        map[string]struct{} // kids asked for since the last fetch started; nil when none
	removed      removedKids         // kids the IdP dropped and has not published again: no refetch

	// The scheduler's queue: due is nextTry as queued, slot the index in
	// the queue (-1: not queued). Guarded by sched.mu.
	due  time.Time
	slot int
}

func (f *keyFeed) idle() bool { return len(f.users) == 0 }

// newest is the user whose settings the feed follows. Callers hold f.mu.
func (f *keyFeed) newest() *Remote { return f.users[len(f.users)-1] }

func (f *keyFeed) addUser(u *Remote, run bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.users = append(f.users, u)
	if !run {
		return // the store is closed: keys as they are, no fetching
	}
	if f.gap == 0 {
		f.gap = u.refetchGap()
	}
	if f.run != nil {
		// A reload may shorten the interval: the schedule follows.
		f.soonerLocked(u.interval())
		return
	}
	f.run = &feedRun{}
	// Keys kept from an earlier period serve at once. They are refreshed
	// when due, as if they had been in use all along: a tenant that was
	// evicted and comes back within the interval (tokens cycling through
	// more tenants than max_tenants) costs no fetch. Keys never fetched,
	// stale, or last seen failing are fetched now.
	f.nextTry = time.Now()
	if due := f.lastSuccess.Add(u.interval()); f.set.Load() != nil && !f.failing && due.After(f.nextTry) {
		f.nextTry = due
	}
	f.sched.schedule(f)
}

// sooner brings the next refresh forward to interval after the last fetch,
// when that is earlier (a reload shortened refresh_interval).
func (f *keyFeed) sooner(interval time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.soonerLocked(interval)
}

func (f *keyFeed) soonerLocked(interval time.Duration) {
	if due := f.lastFinish.Add(interval); f.run != nil && f.set.Load() != nil && due.Before(f.nextTry) {
		f.nextTry = due
		f.sched.schedule(f)
	}
}

// removeUser drops u and returns, for the last user, the function that
// stops the fetch in flight; the set leaves the scheduler's queue.
func (f *keyFeed) removeUser(u *Remote) func() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, x := range f.users {
		if x == u {
			f.users = append(f.users[:i], f.users[i+1:]...)
			break
		}
	}
	if len(f.users) > 0 || f.run == nil {
		return nil
	}
	f.sched.unschedule(f)
	return f.stopLocked()
}

// stopLocked ends the run: no fetch starts any more, and the returned
// function stops the fetch in flight and waits for it. Callers hold f.mu.
func (f *keyFeed) stopLocked() func() {
	run := f.run
	f.run = nil
	run.stopped = true
	var cancel context.CancelFunc
	if fl := f.inflight; fl != nil {
		cancel = fl.cancel
	}
	return func() {
		if cancel != nil {
			cancel()
		}
		run.wg.Wait()
	}
}

// startLocked starts a fetch, or returns the one in flight; nil when the
// feed has no users left. done, when not nil, runs when the fetch started
// here ends. Callers hold f.mu.
func (f *keyFeed) startLocked(run *feedRun, forKid bool, done func()) *flight {
	if fl := f.inflight; fl != nil {
		return fl
	}
	if run == nil || run.stopped || len(f.users) == 0 {
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	fl := &flight{done: make(chan struct{}), started: time.Now(), cancel: cancel}
	f.inflight = fl
	f.lastStart = fl.started
	if forKid {
		f.lastKidFetch = time.Now()
	}
	asked := f.asked
	f.asked = nil
	src := f.newest()
	run.wg.Add(1)
	go func() {
		defer run.wg.Done()
		if done != nil {
			defer done()
		}
		defer cancel()
		ks, skipped, err := src.fetchSet(ctx)
		f.finish(run, src, fl, forKid, asked, ks, skipped, err)
	}()
	return fl
}

// finish swaps in a fetched set (the last good one stays on failure),
// schedules the next fetch and reports the outcome.
func (f *keyFeed) finish(run *feedRun, src *Remote, fl *flight, forKid bool, asked map[string]struct{}, ks *jose.KeySet, skipped []error, err error) {
	now := time.Now()
	f.mu.Lock()
	f.inflight = nil
	if err != nil && errorsIsCanceled(err) {
		// The feed was stopped (its last config went): no outcome to keep
		// or report, and nothing for the next config's gap or backoff.
		f.mu.Unlock()
		fl.err = err
		close(fl.done)
		return
	}
	f.lastFinish = now
	kept := 0
	if cur := f.set.Load(); cur != nil {
		kept = len(cur.All)
	}
	wasFailing, downSince := f.failing, f.failedSince
	if err == nil {
		f.removed.update(f.set.Load(), ks)
		f.set.Store(ks)
		f.lastSuccess = now
		f.failing, f.backoff, f.lastErr = false, 0, nil
		f.nextTry = now.Add(src.interval())
		if forKid {
			f.gap = nextGap(f.gap, src.refetchGap(), ks, asked)
		}
	} else {
		f.backoff = nextBackoff(f.backoff, src.interval())
		if _, asked := classify(err); asked > f.backoff {
			f.backoff = asked // the IdP's Retry-After, bounded
		}
		f.nextTry = now.Add(f.backoff)
		if !f.failing {
			f.failing, f.failedSince = true, now
		}
		f.lastErr = err
	}
	retryIn := f.backoff
	if f.run == run {
		f.sched.schedule(f)
	}
	f.mu.Unlock()
	fl.err = err
	close(fl.done)
	src.report(reportArgs{ks: ks, skipped: skipped, err: err, kept: kept, at: now,
		recovered: err == nil && wasFailing, downSince: downSince, retryIn: retryIn})
}

// nextGap doubles the refetch gap after a refetch that found none of the
// kids asked for, and resets it after one that found any.
func nextGap(gap, base time.Duration, ks *jose.KeySet, asked map[string]struct{}) time.Duration {
	for kid := range asked {
		if ks.ByKid[kid] != nil {
			return base
		}
	}
	return min(max(gap, base)*2, max(maxRefetchGap, base))
}

func nextBackoff(prev, interval time.Duration) time.Duration {
	limit := min(maxBackoff, interval)
	if prev == 0 {
		return min(initialBackoff, limit)
	}
	return min(prev*2, limit)
}
