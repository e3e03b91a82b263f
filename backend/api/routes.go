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
	handle  func(*Server, http.ResponseWriter, *http.Request)
}

// routes is THE route table: Handler builds the mux from it, `backend routes`
// prints it, and the OpenAPI test checks it. Adding a line here is the only
// way to add an endpoint.
var routes = []Route{
	{"GET", "/healthz", true, (*Server).healthz},
	{"GET", "/api/v1/whoami", false, (*Server).whoami},

	{"GET", "/api/v1/ensemble/{$}", false, (*Server).listEnsembles},
	{"GET", "/api/v1/ensemble/agent-rankings", false, (*Server).agentRankings},
	{"POST", "/api/v1/ensemble/create", false, (*Server).createEnsemble},
	{"POST", "/api/v1/ensemble/{ensemble_id}/register-agent", false, (*Server).registerAgent},
	{"POST", "/api/v1/ensemble/{ensemble_id}/predict", false, (*Server).predict},
	{"POST", "/api/v1/ensemble/{ensemble_id}/outcomes", false, (*Server).recordOutcome},
	{"GET", "/api/v1/ensemble/{ensemble_id}/performance", false, (*Server).performance},
	{"GET", "/api/v1/ensemble/{ensemble_id}/weights", false, (*Server).weights},
	{"POST", "/api/v1/ensemble/{ensemble_id}/optimize-weights", false, (*Server).optimizeWeights},

	{"GET", "/api/v1/hedging/analysis", false, (*Server).hedgeAnalysis},
	{"POST", "/api/v1/hedging/execute", false, (*Server).hedgeExecute},
	{"POST", "/api/v1/hedging/close", false, (*Server).hedgeClose},
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

// String is the line `backend routes` prints: "METHOD PATTERN[ public]".
func (r Route) String() string {
	s := r.Method + " " + DisplayPattern(r.Pattern)
	if r.Public {
		s += " public"
	}
	return s
}
