package ratelimit

import (
	"context"
	"fmt"

	"github.com/caddyserver/caddy/v2"
	"github.com/redis/go-redis/v9"
)

// go-redis logs connection trouble through one process-wide logger,
// fmt-style to stderr by default. Send it to Caddy's log instead, so the
// lines are structured like every other line and reach the same outputs.
func init() {
	redis.SetLogger(redisLogger{})
}

type redisLogger struct{}

func (redisLogger) Printf(_ context.Context, format string, v ...any) {
	caddy.Log().Named("tenant_rate_limit.redis").Warn(fmt.Sprintf(format, v...))
}
