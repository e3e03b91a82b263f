// Package api is the backend's HTTP surface: one route table (routes.go), the
// trust middleware that admits only gate-signed identity (trust.go), the
// ensemble and hedging handlers, and problem+json errors.
package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/tenantgate/tenantgate/backend/hedging"
	"github.com/tenantgate/tenantgate/backend/store"
	"github.com/tenantgate/tenantgate/module/assertion"
)

// DefaultMaxBodyBytes caps request bodies; larger ones get 413.
const DefaultMaxBodyBytes = 64 << 10

// Config holds the Server's dependencies.
type Config struct {
	Store        store.Store
	Verifier     *assertion.Verifier  // checks X-Tenant-Assertion; required
	Logger       *zap.Logger          // default: no-op
	Now          func() time.Time     // default: time.Now
	Prices       hedging.PriceSource  // default: hedging.DemoPrices
	Limits       *hedging.LimitsTable // risk limits per tenant; default: hedging.DefaultLimits for all
	MaxBodyBytes int64                // default: DefaultMaxBodyBytes
	// How long an Idempotency-Key answers retries. Default: DefaultIdempotencyRetention.
	IdempotencyRetention time.Duration
}

// DefaultIdempotencyRetention is how long a key replays its first answer:
// a day covers any client's retry horizon; after it the key is swept.
const DefaultIdempotencyRetention = 24 * time.Hour

// Server holds what the handlers need; handlers are its methods.
type Server struct {
	store    store.Store
	verifier *assertion.Verifier
	log      *zap.Logger
	now      func() time.Time
	prices   hedging.PriceSource
	limits   hedging.LimitsTable
	maxBody  int64

	idempotencyRetention time.Duration
}

// New checks c and returns a Server.
func New(c Config) (*Server, error) {
	if c.Store == nil {
		return nil, errors.New("api: a store is required")
	}
	if c.Verifier == nil {
		return nil, errors.New("api: an assertion verifier is required")
	}
	s := &Server{store: c.Store, verifier: c.Verifier, log: c.Logger, now: c.Now, prices: c.Prices, maxBody: c.MaxBodyBytes,
		limits: hedging.DefaultLimitsTable(), idempotencyRetention: c.IdempotencyRetention}
	if c.Limits != nil {
		s.limits = *c.Limits
	}
	if s.idempotencyRetention <= 0 {
		s.idempotencyRetention = DefaultIdempotencyRetention
	}
	if s.log == nil {
		s.log = zap.NewNop()
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.prices == nil {
		s.prices = hedging.StaticPrices(hedging.DemoPrices)
	}
	if s.maxBody <= 0 {
		s.maxBody = DefaultMaxBodyBytes
	}
	return s, nil
}

// Handler returns the complete HTTP handler: request logging, problem+json
// for the mux's own 404/405, and every route of the table, behind the trust
// middleware unless the route is public.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	requireAssertion := RequireAssertion(s.verifier, s.now)
	for _, rt := range routes {
		handle := rt.handle
		h := http.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handle(s, w, r) }))
		if !rt.Public {
			h = requireAssertion(s.spendOnce(requireRoles(rt.Roles, strictQuery(h))))
		} else {
			h = strictQuery(h)
		}
		mux.Handle(rt.Method+" "+rt.Pattern, h)
	}
	return s.logRequests(muxProblems(mux))
}

// healthTimeout bounds the store check of /healthz, so a load balancer's
// probe gets an answer even when the database hangs.
const healthTimeout = 2 * time.Second

// healthResponse is all /healthz tells an anonymous caller: whether the
// store answers and which kind it is. The reason goes to the log.
type healthResponse struct {
	Status string `json:"status"` // "ok" or "degraded"
	Store  string `json:"store"`  // "sqlite" or "postgres"
}

// healthz answers 200 {"status":"ok",...} while the store answers and 503
// {"status":"degraded",...} when it does not, so a load balancer takes the
// replica out; the driver's error and the pool figures go to the log at
// WARN with the request id.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), healthTimeout)
	defer cancel()
	h := s.store.Health(ctx)
	if h.Status == "ok" {
		writeJSON(w, http.StatusOK, healthResponse{Status: "ok", Store: h.Driver})
		return
	}
	fields := []zap.Field{zap.String("store", h.Driver), zap.String("error", h.Error)}
	if info := requestInfoFrom(r.Context()); info != nil {
		fields = append(fields, zap.String("request_id", info.id))
		info.reason = "store-unavailable"
	}
	if h.Pool != nil {
		fields = append(fields, zap.Int32("pool_max_conns", h.Pool.MaxConns), zap.Int32("pool_total_conns", h.Pool.TotalConns),
			zap.Int32("pool_idle_conns", h.Pool.IdleConns), zap.Int32("pool_acquired_conns", h.Pool.AcquiredConns))
	}
	s.log.Warn("store unavailable", fields...)
	writeJSON(w, http.StatusServiceUnavailable, healthResponse{Status: "degraded", Store: h.Driver})
}

type whoamiResponse struct {
	TenantID  string   `json:"tenant_id"`
	UserID    string   `json:"user_id"`
	Roles     []string `json:"roles"`
	RequestID string   `json:"request_id"`
}

func (s *Server) whoami(w http.ResponseWriter, r *http.Request) {
	p := mustPrincipal(r)
	roles := p.Roles
	if roles == nil {
		roles = []string{}
	}
	writeJSON(w, http.StatusOK, whoamiResponse{TenantID: p.Tenant.String(), UserID: p.UserID, Roles: roles, RequestID: p.RequestID})
}
