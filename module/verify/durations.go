package verify

import "github.com/tenantgate/tenantgate/module/verify/duration"

// Duration is a duration in the JSON config (refresh_interval, leeway,
// dpop_max_age): "5m", "1d" or nanoseconds, as Caddy reads its own
// (package verify/duration, a leaf that verify/dpop uses too).
type Duration = duration.Duration
