package limiter

import (
	"context"
	"time"
)

// Result is a store's answer for one request against one limit.
type Result struct {
	// Allowed: the request fits the limit and was counted.
	Allowed bool
	// Remaining is how many more requests could pass at once right now.
	Remaining int
	// RetryAfter, when not allowed, is the wait until one request would pass.
	RetryAfter time.Duration
	// ResetAfter is the wait until the tenant's quota for this limit is full again.
	ResetAfter time.Duration
}

// Store counts requests per tenant and limit. Implementations are safe for
// concurrent use.
type Store interface {
	// Allow counts one request of tenant against p when it fits.
	Allow(ctx context.Context, tenant string, p *Policy) (Result, error)
	// Close releases the store's connections and goroutines.
	Close() error
}
