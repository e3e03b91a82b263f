package store

import "context"

// Health is the store's state for GET /healthz. Only Driver and whether
// Status is "ok" reach the caller; Error and Pool go to the operator's log,
// never to an anonymous client (they name users, hosts and databases).
type Health struct {
	Driver string // "sqlite" or "postgres"
	Status string // "ok" or "unavailable"
	Error  string // why it is unavailable
	// Pool describes the PostgreSQL connection pool (nil for SQLite).
	Pool *PoolHealth
}

// PoolHealth is a snapshot of a connection pool.
type PoolHealth struct {
	MaxConns, TotalConns, IdleConns, AcquiredConns int32
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
