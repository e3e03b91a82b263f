package keysource

import (
	"container/heap"
	"context"
	"sync"
	"time"
)

// The process's refresh scheduler. Every key feed with users is due at its
// nextTry (an interval after a success, a backoff after a failure); one
// goroutine per process sleeps until the earliest and starts that feed's
// fetch. A feed costs a queue entry, not a goroutine: 10,000 held tenants
// are 10,000 entries and one timer. A fetch runs on a goroutine of its own
// only while it is in flight, and at most maxScheduledFetches scheduled
// fetches run at once, so a crowd of feeds due together (a process that
// fetched many tenants in the same minute) is worked through at that pace
// instead of opening thousands of connections. Fetches that requests wait
// for (a tenant's first, an unknown kid's) do not queue behind them.

// maxScheduledFetches bounds scheduled refreshes in flight: at a 300 ms
// IdP that is about 50 fetches a second, ten times what 10,000 tenants on
// the default 5-minute interval need.
const maxScheduledFetches = 16

type scheduler struct {
	mu      sync.Mutex
	queue   feedQueue
	started bool
	closed  bool

	wake   chan struct{} // the earliest due time changed
	slots  chan struct{} // scheduled fetches in flight
	ctx    context.Context
	cancel context.CancelFunc
	done   sync.WaitGroup
}

func newScheduler() *scheduler {
	ctx, cancel := context.WithCancel(context.Background())
	return &scheduler{wake: make(chan struct{}, 1), slots: make(chan struct{}, maxScheduledFetches), ctx: ctx, cancel: cancel}
}

// schedule makes f due at its nextTry (adding it, or moving it). Callers
// hold f.mu; the scheduler never takes f.mu while it holds s.mu.
func (s *scheduler) schedule(f *keyFeed) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	f.due = f.nextTry
	if f.slot >= 0 {
		heap.Fix(&s.queue, f.slot)
	} else {
		heap.Push(&s.queue, f)
	}
	if f.slot == 0 {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
	if !s.started {
		s.started = true
		s.done.Add(1)
		go s.run()
	}
}

// unschedule drops f (its last user left). Callers hold f.mu.
func (s *scheduler) unschedule(f *keyFeed) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f.slot >= 0 {
		heap.Remove(&s.queue, f.slot)
	}
}

// close stops the scheduler and waits for it; fetches in flight are their
// feeds' to stop. Idempotent.
func (s *scheduler) close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.done.Wait()
}

func (s *scheduler) run() {
	defer s.done.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		s.mu.Lock()
		var due *keyFeed
		wait := time.Duration(-1)
		if len(s.queue) > 0 {
			if d := time.Until(s.queue[0].due); d > 0 {
				wait = d
			} else {
				due = heap.Pop(&s.queue).(*keyFeed)
			}
		}
		s.mu.Unlock()
		if due != nil {
			select {
			case s.slots <- struct{}{}:
			case <-s.ctx.Done():
				return
			}
			if !due.refresh(func() { <-s.slots }) {
				<-s.slots
			}
			continue
		}
		timer.Stop()
		if wait >= 0 {
			timer.Reset(wait)
		}
		select {
		case <-s.ctx.Done():
			return
		case <-s.wake:
		case <-timer.C:
		}
	}
}

// refresh starts the scheduled fetch of f, unless f lost its users, a
// fetch is in flight (its end schedules f again) or f was moved to a later
// time meanwhile. It reports whether a fetch started; that fetch calls
// done when it ends.
func (f *keyFeed) refresh(done func()) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.run == nil || f.inflight != nil || time.Now().Before(f.nextTry) {
		return false
	}
	return f.startLocked(f.run, false, done) != nil
}

// feedQueue is a min-heap of feeds by due time; each feed knows its slot
// (-1 when not queued). Guarded by scheduler.mu.
type feedQueue []*keyFeed

func (q feedQueue) Len() int           { return len(q) }
func (q feedQueue) Less(i, j int) bool { return q[i].due.Before(q[j].due) }
func (q feedQueue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].slot, q[j].slot = i, j
}
func (q *feedQueue) Push(x any) {
	f := x.(*keyFeed)
	f.slot = len(*q)
	*q = append(*q, f)
}
func (q *feedQueue) Pop() any {
	old := *q
	f := old[len(old)-1]
	old[len(old)-1] = nil
	f.slot = -1
	*q = old[:len(old)-1]
	return f
}
