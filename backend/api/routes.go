package api

import (
	"net/http"
	"strings"
)

// Route is one line of the route table: the ServeMux pattern is
// Method + " " + Pattern.
type Route struct {
	Method  string
	Pattern string // Go 1.22 ServeMux path pattern
	Public  bool   // served without an identity assertion
	// Roles the asserted caller needs, any of (defence in depth: the gate's
	// rule should ask for the same). Empty on a non-public route: any
	// caller with a valid assertion.
	Roles  []string
	handle func(*Server, http.ResponseWriter, *http.Request)
}

// Role sets of the route table; the shipped Caddyfiles ask for the same.
var (
	ensembleRead  = []string{"ensemble:read", "ensemble:write"}
	ensembleWrite = []string{"ensemble:write"}
	hedgingRead   = []string{"hedging:read", "hedging:trade", "hedging:admin"}
	hedgingTrade  = []string{"hedging:trade", "hedging:admin"}
	hedgingAdmin  = []string{"hedging:admin"}
)

// routes is THE route table: Handler builds the mux from it (and enforces
// its roles), `backend routes` prints it, and the OpenAPI test checks it.
// Adding a line here is the only way to add an endpoint.
var routes = []Route{
	{"GET", "/healthz", true, nil, (*Server).healthz},
	{"GET", "/api/v1/whoami", false, nil, (*Server).whoami},

	{"GET", "/api/v1/ensemble/{$}", false, ensembleRead, (*Server).listEnsembles},
	{"GET", "/api/v1/ensemble/agent-rankings", false, ensembleRead, (*Server).agentRankings},
	{"POST", "/api/v1/ensemble/create", false, ensembleWrite, (*Server).createEnsemble},
	{"POST", "/api/v1/ensemble/{ensemble_id}/register-agent", false, ensembleWrite, (*Server).registerAgent},
	{"POST", "/api/v1/ensemble/{ensemble_id}/predict", false, ensembleRead, (*Server).predict},
	{"POST", "/api/v1/ensemble/{ensemble_id}/outcomes", false, ensembleWrite, (*Server).recordOutcome},
	{"GET", "/api/v1/ensemble/{ensemble_id}/performance", false, ensembleRead, (*Server).performance},
	{"GET", "/api/v1/ensemble/{ensemble_id}/weights", false, ensembleRead, (*Server).weights},
	{"POST", "/api/v1/ensemble/{ensemble_id}/optimize-weights", false, ensembleWrite, (*Server).optimizeWeights},

	{"GET", "/api/v1/hedging/analysis", false, hedgingRead, (*Server).hedgeAnalysis},
	{"POST", "/api/v1/hedging/execute", false, hedgingTrade, (*Server).hedgeExecute},
	{"POST", "/api/v1/hedging/close", false, hedgingAdmin, (*Server).hedgeClose},
}

// Routes returns a copy of the route table.
func Routes() []Route { return append([]Route(nil), routes...) }

// DisplayPattern writes a ServeMux pattern the way the gate's rules and the
// OpenAPI file spell it: an exact-match "/x/{$}" becomes "/x/", and a
// trailing wildcard "{name...}" becomes "**".
func DisplayPattern(p string) string {
	if strings.HasSuffix(p, "/{$}") {
		return strings.TrimSuffix(p, "{$}")
	}
	if i := strings.LastIndex(p, "/{"); i >= 0 && strings.HasSuffix(p, "...}") {
		return p[:i] + "/**"
	}
	return p
}

// String is the line `backend routes` prints: "METHOD PATTERN public",
// "METHOD PATTERN authenticated" or "METHOD PATTERN roles R...", which
// `caddy tenant-gate coverage --routes` reads.
func (r Route) String() string {
	s := r.Method + " " + DisplayPattern(r.Pattern)
	switch {
	case r.Public:
		s += " public"
	case len(r.Roles) > 0:
		s += " roles " + strings.Join(r.Roles, " ")
	default:
		s += " authenticated"
	}
	return s
}
