package tick

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

func TestEveryRunsUntilCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var n atomic.Int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		Every(ctx, 5*time.Millisecond, func(context.Context) {
			if n.Add(1) == 3 {
				cancel()
			}
		})
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Every did not return after its context was cancelled")
	}
	if got := n.Load(); got != 3 {
		t.Fatalf("fn ran %d times after cancel at the third, want 3", got)
	}
}

func TestEveryWaitsOnePeriodFirst(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	var n atomic.Int32
	Every(ctx, time.Hour, func(context.Context) { n.Add(1) })
	if n.Load() != 0 {
		t.Fatal("fn ran before one period passed")
	}
}
