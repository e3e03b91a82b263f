// Package tick runs background work on a fixed period until its context
// ends: the one loop every sweeper and resync of the project shares, so
// that stopping (ctx done) and ticker release are written once.
package tick

import (
	"context"
	"time"
)

// Every calls fn once per period, the first time one period after the
// call, until ctx is done; it returns then. fn runs on the caller's
// goroutine, so a slow fn delays the next tick rather than overlapping it
// (time.Ticker drops the ticks it missed).
func Every(ctx context.Context, period time.Duration, fn func(context.Context)) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn(ctx)
		}
	}
}
