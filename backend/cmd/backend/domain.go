package main

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/tenantgate/tenantgate/backend/api"
	"github.com/tenantgate/tenantgate/backend/hedging"
	"github.com/tenantgate/tenantgate/backend/store"
	"github.com/tenantgate/tenantgate/internal/tick"
)

// loadDomainConfig reads the price file and the risk limits the flags name.
func loadDomainConfig(cfg *api.Config, o options) error {
	if o.pricesFile != "" {
		fp, err := hedging.NewFilePrices(o.pricesFile)
		if err != nil {
			return fmt.Errorf("--prices: %w", err)
		}
		cfg.Prices = fp
	}
	if o.riskLimitsFile != "" {
		limits, err := hedging.LoadLimitsFile(o.riskLimitsFile)
		if err != nil {
			return fmt.Errorf("--risk-limits: %w", err)
		}
		cfg.Limits = &limits
	}
	return nil
}

// Sweep cadence and batch: expired keys go within an hour of expiring, in
// batches small enough not to hold the write lock for long.
const (
	sweepEvery = time.Hour
	sweepBatch = 1000
)

// sweepIdempotencyKeys deletes expired idempotency records at start and then
// every sweepEvery until ctx ends.
func sweepIdempotencyKeys(ctx context.Context, st store.Store, retention time.Duration, log *zap.Logger) {
	t := time.NewTicker(sweepEvery)
	defer t.Stop()
	for {
		total := 0
		for {
			n, err := st.SweepIdempotencyKeys(ctx, time.Now().Add(-retention), sweepBatch)
			if err != nil {
				if ctx.Err() == nil {
					log.Warn("idempotency sweep", zap.Error(err))
				}
				break
			}
			total += n
			if n < sweepBatch {
				break
			}
		}
		if total > 0 {
			log.Info("idempotency sweep", zap.Int("deleted", total), zap.Duration("retention", retention))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// spentAssertionSweeper is a store that keeps spent assertions in the
// database (PostgreSQL) and so must drop expired ones.
type spentAssertionSweeper interface {
	SweepSpentAssertions(ctx context.Context, limit int) (int, error)
}

// spentSweepEvery: assertions live a minute, so their rows are swept about
// as often; the table holds a couple of minutes of traffic.
const spentSweepEvery = time.Minute

// sweepSpentAssertions deletes expired spent assertions every
// spentSweepEvery until ctx ends (nothing to do on SQLite, whose in-memory
// set drops them itself).
func sweepSpentAssertions(ctx context.Context, st store.Store, log *zap.Logger) {
	sw, ok := st.(spentAssertionSweeper)
	if !ok {
		return
	}
	tick.Every(ctx, spentSweepEvery, func(ctx context.Context) {
		for {
			n, err := sw.SweepSpentAssertions(ctx, sweepBatch)
			if err != nil {
				if ctx.Err() == nil {
					log.Warn("spent assertion sweep", zap.Error(err))
				}
				return
			}
			if n < sweepBatch {
				return
			}
		}
	})
}
