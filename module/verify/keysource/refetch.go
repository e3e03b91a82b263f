package keysource

import (
	"context"
	"errors"
	"time"

	"github.com/tenantgate/tenantgate/module/verify/jose"
)

// The request side of a feed: a token whose kid the set lacks, or a
// request for an issuer that has no keys yet.

// refetchGapLocked is the gap in force now. Callers hold f.mu.
func (f *keyFeed) refetchGapLocked(now time.Time, base time.Duration) time.Duration {
	if f.gap > base && now.Sub(f.lastKidFetch) > max(maxRefetchGap, f.gap) {
		f.gap = base // quiet for a while: a flood is over
	}
	return max(f.gap, base)
}

// unknownKid is the path of a token whose kid the set lacks. It joins a
// fetch in flight, or starts one when none finished within the refetch gap,
// and returns the set to use with 0; or, when no fetch may start yet, the
// current set and how long until one may (the caller answers 503 with that
// Retry-After, never 401: the key may have been published since).
func (f *keyFeed) unknownKid(ctx context.Context, kid string) (*jose.KeySet, time.Duration) {
	joined := false
	for {
		f.mu.Lock()
		if len(f.asked) < 64 {
			f.asked[kid] = struct{}{}
		}
		if _, gone := f.removed[kid]; gone {
			// The IdP dropped this key at the last fetch: the answer is
			// final (401), and asking again would only cost fetches.
			f.mu.Unlock()
			return f.set.Load(), 0
		}
		fl := f.inflight
		if fl == nil {
			now := time.Now()
			gap := f.refetchGapLocked(now, f.baseGapLocked())
			if allowed := f.lastFinish.Add(gap); !f.lastFinish.IsZero() && now.Before(allowed) {
				f.mu.Unlock()
				if ks := f.set.Load(); joined && ks != nil && ks.ByKid[kid] != nil {
					return ks, 0
				}
				return f.set.Load(), allowed.Sub(now)
			}
			fl = f.startLocked(f.run, true)
			joined = false
		} else {
			joined = true
		}
		f.mu.Unlock()
		if fl == nil {
			return f.set.Load(), 0
		}
		select {
		case <-fl.done:
		case <-ctx.Done():
			return f.set.Load(), 0
		}
		if ks := f.set.Load(); ks != nil && ks.ByKid[kid] != nil || !joined {
			// Found, or our own fetch (started after this request came)
			// does not have it: the answer is final.
			return f.set.Load(), 0
		}
		// We joined a fetch that started before this request came: the key
		// may be newer than it. Go round once more: a fetch of our own if
		// the gap allows, else an honest "retry in".
	}
}

// baseGapLocked is the configured refetch gap of the newest user.
func (f *keyFeed) baseGapLocked() time.Duration {
	if len(f.users) == 0 {
		return DefaultRefetchGap
	}
	return f.newest().refetchGap()
}

// unavailable is the path of a request while the feed has no keys: it
// starts a fetch when the gap allows, never waits, and says when to retry.
func (f *keyFeed) unavailable() time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	if f.inflight != nil {
		return time.Second
	}
	if f.lastFinish.IsZero() || now.Sub(f.lastFinish) >= f.baseGapLocked() {
		if f.startLocked(f.run, false) != nil {
			return time.Second
		}
	}
	return max(f.nextTry.Sub(now), time.Second)
}

// Backdate moves the last fetch of r's set d into the past, as if d had
// passed: the next unknown kid may refetch at once. Tests of the refetch
// gap use it instead of waiting seconds.
func (r *Remote) Backdate(d time.Duration) {
	f := r.feed
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastFinish = f.lastFinish.Add(-d)
	f.lastKidFetch = f.lastKidFetch.Add(-d)
}

// Schedule reports when the last fetch of r's set ended and when the
// refresher fetches next.
func (r *Remote) Schedule() (lastFinish, nextTry time.Time) {
	f := r.feed
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastFinish, f.nextTry
}

func errorsIsCanceled(err error) bool { return errors.Is(err, context.Canceled) }
