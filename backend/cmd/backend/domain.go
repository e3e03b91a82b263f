package main

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/tenantgate/tenantgate/backend/api"
	"github.com/tenantgate/tenantgate/backend/hedging"
	"github.com/tenantgate/tenantgate/backend/store"
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
