package store

import "context"

// Health is what GET /healthz reports about the store.
type Health struct {
	Driver string `json:"driver"`          // "sqlite" or "postgres"
	Status string `json:"status"`          // "ok" or "unavailable"
	Error  string `json:"error,omitempty"` // why it is unavailable
	// Pool describes the PostgreSQL connection pool (absent for SQLite).
	Pool *PoolHealth `json:"pool,omitempty"`
}

// PoolHealth is a snapshot of a connection pool.
type PoolHealth struct {
	MaxConns      int32 `json:"max_conns"`
	TotalConns    int32 `json:"total_conns"`
	IdleConns     int32 `json:"idle_conns"`
	AcquiredConns int32 `json:"acquired_conns"`
}

// HealthChecker is a Store that can say whether it answers. Both stores
// implement it; the API reports it on /healthz.
type HealthChecker interface {
	Health(ctx context.Context) Health
}

// Health pings the database with a trivial query on a reading connection.
func (s *SQLite) Health(ctx context.Context) Health {
	h := Health{Driver: "sqlite", Status: "ok"}
	if err := s.r.PingContext(ctx); err != nil {
		h.Status, h.Error = "unavailable", err.Error()
	}
	return h
}

// Health pings the database through the pool and reports the pool.
func (p *Postgres) Health(ctx context.Context) Health {
	st := p.pool.Stat()
	h := Health{Driver: "postgres", Status: "ok", Pool: &PoolHealth{
		MaxConns: st.MaxConns(), TotalConns: st.TotalConns(), IdleConns: st.IdleConns(), AcquiredConns: st.AcquiredConns(),
	}}
	if err := p.pool.Ping(ctx); err != nil {
		h.Status, h.Error = "unavailable", err.Error()
	}
	return h
}

var (
	_ HealthChecker = (*SQLite)(nil)
	_ HealthChecker = (*Postgres)(nil)
)
