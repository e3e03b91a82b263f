package keysource

import (
	"context"
	"errors"
	"time"

	"github.com/tenantgate/tenantgate/module/verify/jose"
)

// The request side of a feed: a token whose kid the set lacks, or a
// request for an issuer that has no keys yet.

// refetchGapLocked is the gap in force now. A flood is over, and the gap
// back to base, when no unknown kid came for a whole base gap (a flood
// paced slower than that costs at most one fetch per base gap anyway), or
// no kid-triggered fetch ran for a long while. Callers hold f.mu.
func (f *keyFeed) refetchGapLocked(now time.Time, base time.Duration) time.Duration {
	if f.gap > base && (now.Sub(f.lastKidFetch) > max(maxRefetchGap, f.gap) || now.Sub(f.lastAsk) > base) {
		f.gap = base
	}
	return max(f.gap, base)
}

// MaxKidWait bounds how long a token whose kid is new waits for the next
// allowed refetch: when that refetch is at most this far away the request
// waits for it (holding a goroutine and a timer, no connection to the IdP)
// instead of answering 503; further away, it answers 503 with Retry-After.
const MaxKidWait = 3 * time.Second

// unknownKid is the path of a token whose kid the set lacks ("" for a
// kid-less token no held key verified). It joins a fetch in flight, starts
// one when none finished within the refetch gap, or waits for the gap to
// pass when that is at most MaxKidWait after the request came; every
// waiting request shares the one fetch, so a flood of made-up kids still
// costs one fetch per gap (and once a flood has grown the gap past
// MaxKidWait, requests answer at once again). It returns the set to use with 0, or, when the
// next refetch is further away, the current set and how long until it may
// run (the caller answers 503 with that Retry-After, never 401: the key may
// have been published since). A kid the IdP dropped is answered from the
// set at once, with no fetch.
func (f *keyFeed) unknownKid(ctx context.Context, kid string) (*jose.KeySet, time.Duration) {
	arrived := time.Now()
	deadline := arrived.Add(MaxKidWait)
	f.mu.Lock()
	f.refetchGapLocked(arrived, f.baseGapLocked()) // judged before this request counts as an ask
	f.lastAsk = arrived
	f.mu.Unlock()
	defer func() {
		// Leaving counts as asking too: requests waiting out the gap
		// are part of the flood, not a pause in it.
		f.mu.Lock()
		f.lastAsk = time.Now()
		f.mu.Unlock()
	}()
	for {
		f.mu.Lock()
		if kid != "" && f.removed.has(kid) {
			// The IdP dropped this key: the answer is final (401), and
			// asking again would only cost fetches.
			f.mu.Unlock()
			return f.set.Load(), 0
		}
		if ks := f.set.Load(); kid != "" && ks != nil && ks.ByKid[kid] != nil {
			f.mu.Unlock()
			return ks, 0 // a fetch since this request came brought it
		}
		if f.inflight == nil && !f.lastStart.Before(arrived) && !f.lastFinish.Before(f.lastStart) {
			// Another waiter's fetch started after this request came and
			// has ended without the kid: the answer is final.
			f.mu.Unlock()
			return f.set.Load(), 0
		}
		if f.asked == nil {
			f.asked = map[string]struct{}{}
		}
		if len(f.asked) < 64 {
			f.asked[kid] = struct{}{}
		}
		fl := f.inflight
		if fl == nil {
			now := time.Now()
			gap := f.refetchGapLocked(now, f.baseGapLocked())
			if allowed := f.lastFinish.Add(gap); !f.lastFinish.IsZero() && now.Before(allowed) {
				f.mu.Unlock()
				if allowed.After(deadline) || gap > MaxKidWait {
					// Too far, or a flood has grown the gap past the
					// bound: waiting would hold requests for nothing.
					return f.set.Load(), allowed.Sub(now)
				}
				if !sleepCtx(ctx, allowed.Sub(now)) {
					return f.set.Load(), max(time.Until(allowed), time.Second)
				}
				continue
			}
			fl = f.startLocked(f.run, true, nil)
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
		if ks := f.set.Load(); ks != nil && ks.ByKid[kid] != nil || !fl.started.Before(arrived) {
			// Found, or a fetch that started after this request came does
			// not have it: the answer is final.
			return f.set.Load(), 0
		}
		// We joined a fetch that started before this request came: the key
		// may be newer than it. Go round once more: a fetch of our own,
		// waited for within the bound, else an honest "retry in".
	}
}

// sleepCtx waits d; false when ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
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
		if f.startLocked(f.run, false, nil) != nil {
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
	f.lastAsk = f.lastAsk.Add(-d)
}

// Schedule reports when the last fetch of r's set ended and when the
// scheduler fetches next.
func (r *Remote) Schedule() (lastFinish, nextTry time.Time) {
	f := r.feed
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastFinish, f.nextTry
}

func errorsIsCanceled(err error) bool { return errors.Is(err, context.Canceled) }
