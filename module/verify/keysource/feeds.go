package keysource

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tenantgate/tenantgate/module/verify/jose"
)

// The process's key feeds. A remote key set belongs to the process, not
// to a config: it is keyed by the issuer and the URL its keys come from, and
// every config naming that pair shares it. `caddy reload` provisions the new
// config before it cleans up the old one, so the set (and the refresher that
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
// URL. It is made once per process (the verifier's Store holds it) and
// passed to every remote source through Env; Close stops its refreshers.
type Feeds struct {
	mu     sync.Mutex
	m      map[feedKey]*keyFeed
	closed bool
}

// NewFeeds returns an empty store of key feeds.
func NewFeeds() *Feeds { return &Feeds{m: map[feedKey]*keyFeed{}} }

// Len is the number of key sets held, idle ones included.
func (s *Feeds) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

// Close stops every refresher and waits for it; sources still joined
// keep their last keys but fetch no more. Idempotent.
func (s *Feeds) Close() {
	s.mu.Lock()
	s.closed = true
	var stops []func()
	for _, f := range s.m {
		f.mu.Lock()
		if run := f.run; run != nil {
			f.run = nil
			stops = append(stops, func() { run.cancel(); run.wg.Wait() })
		}
		f.mu.Unlock()
	}
	s.mu.Unlock()
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
// the first user starts its refresher.
func (s *Feeds) acquire(k feedKey, u *Remote) *keyFeed {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.m[k]
	if f == nil {
		f = &keyFeed{key: k, wake: make(chan struct{}, 1), asked: map[string]struct{}{}, removed: &removedKids{}}
		s.m[k] = f
		s.evictIdleLocked()
	}
	f.addUser(u, !s.closed)
	return f
}

// release drops u; the last user stops the refresher (and waits for it).
// The keys stay, for the next config that names the same source.
func (s *Feeds) release(f *keyFeed, u *Remote) {
	s.mu.Lock()
	stop := f.removeUser(u)
	s.mu.Unlock()
	if stop != nil {
		stop()
	}
}

func (s *Feeds) evictIdleLocked() {
	var idle []*keyFeed
	for _, f := range s.m {
		if f.idle() {
			idle = append(idle, f)
		}
	}
	for len(idle) > maxIdleFeeds {
		oldest := 0
		for i, f := range idle {
			if f.idleSince.Before(idle[oldest].idleSince) {
				oldest = i
			}
		}
		delete(s.m, idle[oldest].key)
		idle = append(idle[:oldest], idle[oldest+1:]...)
	}
}

// feedRun is one period during which a feed has users: its refresher and
// fetches run on ctx and are waited for through wg when it ends.
type feedRun struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// flight is one fetch in progress; every caller that needs it waits on done.
type flight struct {
	done    chan struct{}
	err     error
	started time.Time
}

// keyFeed is one remote key set and its lifecycle: a scheduled refresh, a
// rate-limited refetch on an unknown kid, and retries with a capped backoff
// after failures. Its parameters (interval, client, logger, observer) are
// those of its newest user, the config most recently loaded.
type keyFeed struct {
	key feedKey
	set atomic.Pointer[jose.KeySet] // nil until the first good fetch

	mu        sync.Mutex
	users     []*Remote
	run       *feedRun
	idleSince time.Time

	inflight     *flight
	lastFinish   time.Time // when the last fetch (any cause) ended
	lastSuccess  time.Time
	lastKidFetch time.Time // when the last unknown-kid refetch started
	lastAsk      time.Time // when the last token with an unknown kid came
	nextTry      time.Time // when the refresher fetches next
	backoff      time.Duration
	failing      bool      // the last fetch failed
	lastErr      error     // why, while failing
	failedSince  time.Time // first failure of the current run of failures
	gap          time.Duration
	asked        map[string]struct{} // kids asked for since the last fetch started
	removed      *removedKids        // kids the IdP dropped and has not published again: no refetch
	wake         chan struct{}       // tells the refresher nextTry changed
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
		// A reload may shorten the interval: the refresher follows.
		if due := f.lastFinish.Add(u.spec.RefreshInterval); f.set.Load() != nil && due.Before(f.nextTry) {
			f.nextTry = due
			f.poke()
		}
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.run = &feedRun{ctx: ctx, cancel: cancel}
	// Keys kept from an earlier period serve at once; a fetch runs now to
	// bring them up to date.
	f.nextTry = time.Now()
	f.run.wg.Add(1)
	go func(run *feedRun) {
		defer run.wg.Done()
		f.refresher(run)
	}(f.run)
}

// removeUser drops u and returns, for the last user, the function that
// stops the refresher.
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
	run := f.run
	f.run = nil
	f.idleSince = time.Now()
	return func() {
		run.cancel()
		run.wg.Wait()
	}
}

// poke wakes the refresher to look at nextTry again. Callers hold f.mu.
func (f *keyFeed) poke() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// refresher fetches when nextTry comes: every interval after a success (a
// refetch resets it), after a backoff after a failure.
func (f *keyFeed) refresher(run *feedRun) {
	for {
		f.mu.Lock()
		wait := time.Until(f.nextTry)
		f.mu.Unlock()
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-run.ctx.Done():
				t.Stop()
				return
			case <-f.wake:
				t.Stop()
				continue
			case <-t.C:
			}
		}
		if run.ctx.Err() != nil {
			return
		}
		f.mu.Lock()
		fl := f.startLocked(run, false)
		f.mu.Unlock()
		if fl == nil {
			return
		}
		select {
		case <-fl.done:
		case <-run.ctx.Done():
			return
		}
	}
}

// startLocked starts a fetch, or returns the one in flight; nil when the
// feed has no users left. Callers hold f.mu.
func (f *keyFeed) startLocked(run *feedRun, forKid bool) *flight {
	if fl := f.inflight; fl != nil {
		return fl
	}
	if run == nil || run.ctx.Err() != nil || len(f.users) == 0 {
		return nil
	}
	fl := &flight{done: make(chan struct{}), started: time.Now()}
	f.inflight = fl
	if forKid {
		f.lastKidFetch = time.Now()
	}
	asked := f.asked
	f.asked = map[string]struct{}{}
	src := f.newest()
	run.wg.Add(1)
	go func() {
		defer run.wg.Done()
		ks, skipped, err := src.fetchSet(run.ctx)
		f.finish(src, fl, forKid, asked, ks, skipped, err)
	}()
	return fl
}

// finish swaps in a fetched set (the last good one stays on failure),
// schedules the next fetch and reports the outcome.
func (f *keyFeed) finish(src *Remote, fl *flight, forKid bool, asked map[string]struct{}, ks *jose.KeySet, skipped []error, err error) {
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
		f.nextTry = now.Add(src.spec.RefreshInterval)
		if forKid {
			f.gap = nextGap(f.gap, src.refetchGap(), ks, asked)
		}
	} else {
		f.backoff = nextBackoff(f.backoff, src.spec.RefreshInterval)
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
	f.poke()
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
