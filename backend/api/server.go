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
			h = requireAssertion(s.spendOnce(requireRoles(rt.Roles, h)))
		}
		mux.Handle(rt.Method+" "+rt.Pattern, h)
	}
	return s.logRequests(muxProblems(mux))
}

// healthTimeout bounds the store check of /healthz, so a load balancer's
// probe gets an answer even when the database hangs.
const healthTimeout = 2 * time.Second

type healthResponse struct {
	Status string        `json:"status"`
	Store  *store.Health `json:"store,omitempty"`
}

// healthz reports the process and, when the store can say, the store: 200
// while the store answers, 503 problem+json when it does not.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	hc, ok := s.store.(store.HealthChecker)
	if !ok {
		writeJSON(w, http.StatusOK, healthResponse{Status: "ok"})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), healthTimeout)
	defer cancel()
	h := hc.Health(ctx)
	if h.Status != "ok" {
		s.log.Warn("store unavailable", zap.String("driver", h.Driver), zap.String("error", h.Error))
		writeProblem(w, r, http.StatusServiceUnavailable, "store-unavailable",
			"the "+h.Driver+" store does not answer ("+h.Error+"); check --db and that the database is up")
		return
	}
	writeJSON(w, http.StatusOK, healthResponse{Status: "ok", Store: &h})
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
