package api

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/tenantgate/tenantgate/backend/ensemble"
	"github.com/tenantgate/tenantgate/backend/store"
)

// Limits of the ensemble API.
const (
	DefaultPageSize = 20
	MaxPageSize     = 100
	// DefaultLookback and MaxLookback bound the window (the newest N
	// predictions with an outcome, per ensemble) of performance,
	// agent-rankings and optimize-weights: 50 is the window optimize-weights
	// has always used, so performance shows what optimizing will use; 1000
	// bounds the rows one aggregate reads.
	DefaultLookback = 50
	MaxLookback     = 1000
	MaxWeight       = 1e6
	// MaxAgents caps the agents of one ensemble (create and register-agent):
	// a vote of more than 100 signals is no longer an ensemble a desk reads,
	// and it bounds every per-ensemble read.
	MaxAgents = 100
)

type configJSON struct {
	Threshold float64 `json:"threshold"`
	MinAgents int     `json:"min_agents"`
}

type agentJSON struct {
	AgentID      string    `json:"agent_id"`
	AgentType    string    `json:"agent_type"`
	Weight       float64   `json:"weight"`
	RegisteredAt time.Time `json:"registered_at"`
}

type ensembleJSON struct {
	EnsembleID string      `json:"ensemble_id"`
	Name       string      `json:"name"`
	Method     string      `json:"method"`
	Agents     []agentJSON `json:"agents"`
	Config     configJSON  `json:"config"`
	CreatedAt  time.Time   `json:"created_at"`
}

func toAgentJSON(a ensemble.Agent) agentJSON {
	return agentJSON{AgentID: a.ID, AgentType: a.Type, Weight: a.Weight, RegisteredAt: a.CreatedAt}
}

func toEnsembleJSON(e ensemble.Ensemble) ensembleJSON {
	out := ensembleJSON{
		EnsembleID: e.ID, Name: e.Name, Method: string(e.Method),
		Config:    configJSON{Threshold: e.Config.Threshold, MinAgents: e.Config.MinAgents},
		CreatedAt: e.CreatedAt, Agents: make([]agentJSON, len(e.Agents)),
	}
	for i, a := range e.Agents {
		out.Agents[i] = toAgentJSON(a)
	}
	return out
}

type agentRequest struct {
	AgentID       string   `json:"agent_id"`
	AgentType     string   `json:"agent_type"`
	InitialWeight *float64 `json:"initial_weight"`
}

type configRequest struct {
	Threshold *float64 `json:"threshold"`
	MinAgents *int     `json:"min_agents"`
}

type createEnsembleRequest struct {
	Name   string         `json:"name"`
	Method string         `json:"method"`
	Agents []agentRequest `json:"agents"`
	Config *configRequest `json:"config"`
}

func validIdent(s string, max int) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-' || c == ':' || c == '/') {
			return false
		}
	}
	return true
}

// MaxNameChars bounds an ensemble name, in characters (Unicode code
// points), as OpenAPI's maxLength counts them.
const MaxNameChars = 100

// validName: 1-100 characters of valid UTF-8 (checked on the raw body),
// without control characters (NUL, newlines, escapes would corrupt logs
// and displays).
func validName(name string) error {
	n := utf8.RuneCountInString(name)
	if n == 0 || n > MaxNameChars {
		return fmt.Errorf("name is required and must have 1 to %d characters, has %d", MaxNameChars, n)
	}
	for i, c := range name {
		if unicode.IsControl(c) {
			return fmt.Errorf("name holds the control character %U at byte %d; use printable characters", c, i)
		}
	}
	return nil
}

// agent validates an agent request; field names the JSON path for messages.
func (a agentRequest) agent(field string, now time.Time) (ensemble.Agent, error) {
	if !validIdent(a.AgentID, 64) || strings.Contains(a.AgentID, "/") {
		return ensemble.Agent{}, fmt.Errorf("%sagent_id must be 1-64 characters of [A-Za-z0-9._:-], got %q", field, a.AgentID)
	}
	if !validIdent(a.AgentType, 64) {
		return ensemble.Agent{}, fmt.Errorf("%sagent_type must be 1-64 characters of [A-Za-z0-9._:/-], got %q", field, a.AgentType)
	}
	w := 1.0
	if a.InitialWeight != nil {
		w = *a.InitialWeight
	}
	if !(w > 0 && w <= MaxWeight) {
		return ensemble.Agent{}, fmt.Errorf("%sinitial_weight must be > 0 and <= %g, got %v", field, float64(MaxWeight), w)
	}
	return ensemble.Agent{ID: a.AgentID, Type: a.AgentType, Weight: w, CreatedAt: now}, nil
}

func (s *Server) createEnsemble(w http.ResponseWriter, r *http.Request) {
	p := mustPrincipal(r)
	body, ok := s.readBody(w, r)
	if !ok {
		return
	}
	var req createEnsembleRequest
	if !decodeJSON(w, r, body, &req, false) {
		return
	}
	now := s.now().UTC()
	e := ensemble.Ensemble{
		ID: store.NewID("ens"), Name: strings.TrimSpace(req.Name), Method: ensemble.Method(req.Method),
		Config:    ensemble.Config{Threshold: ensemble.DefaultThreshold, MinAgents: ensemble.DefaultMinAgents},
		CreatedAt: now, Agents: []ensemble.Agent{},
	}
	if err := validName(e.Name); err != nil {
		writeProblem(w, r, http.StatusBadRequest, "validation", err.Error())
		return
	}
	if !e.Method.Valid() {
		writeProblem(w, r, http.StatusBadRequest, "validation", fmt.Sprintf("method must be one of %v, got %q", ensemble.Methods, req.Method))
		return
	}
	if req.Config != nil {
		if req.Config.Threshold != nil {
			e.Config.Threshold = *req.Config.Threshold
		}
		if req.Config.MinAgents != nil {
			e.Config.MinAgents = *req.Config.MinAgents
		}
	}
	if err := e.Config.Validate(); err != nil {
		writeProblem(w, r, http.StatusBadRequest, "validation", err.Error())
		return
	}
	if len(req.Agents) > MaxAgents {
		writeProblem(w, r, http.StatusBadRequest, "validation", fmt.Sprintf("agents holds %d entries; at most %d agents per ensemble", len(req.Agents), MaxAgents))
		return
	}
	seen := map[string]bool{}
	for i, ar := range req.Agents {
		a, err := ar.agent(fmt.Sprintf("agents[%d].", i), now)
		if err != nil {
			writeProblem(w, r, http.StatusBadRequest, "validation", err.Error())
			return
		}
		if seen[a.ID] {
			writeProblem(w, r, http.StatusConflict, "duplicate-agent", fmt.Sprintf("agents[%d].agent_id %q appears twice; agent ids are unique per ensemble", i, a.ID))
			return
		}
		seen[a.ID] = true
		e.Agents = append(e.Agents, a)
	}
	// An ensemble that needs more agents than it has can never predict
	// (with no agents yet, min_agents may be at most 1: register agents, then raise it).
	if e.Config.MinAgents > max(1, len(e.Agents)) {
		writeProblem(w, r, http.StatusUnprocessableEntity, "validation",
			fmt.Sprintf("config.min_agents is %d but the ensemble has %d agents, so it could never predict; min_agents must be <= the number of agents (at least 1)", e.Config.MinAgents, len(e.Agents)))
		return
	}
	if err := s.store.CreateEnsemble(r.Context(), p.Tenant, e); err != nil {
		s.internalError(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/v1/ensemble/"+e.ID+"/weights")
	writeJSON(w, http.StatusCreated, toEnsembleJSON(e))
}

// loadEnsemble answers 404 for an unknown id and for another tenant's id
// alike: the store only ever looks inside the caller's tenant.
func (s *Server) loadEnsemble(w http.ResponseWriter, r *http.Request, t store.TenantID) (ensemble.Ensemble, bool) {
	id := r.PathValue("ensemble_id")
	e, err := s.store.Ensemble(r.Context(), t, id)
	if errors.Is(err, store.ErrNotFound) {
		s.ensembleNotFound(w, r)
		return e, false
	}
	if err != nil {
		s.internalError(w, r, err)
		return e, false
	}
	return e, true
}

func (s *Server) ensembleNotFound(w http.ResponseWriter, r *http.Request) {
	writeProblem(w, r, http.StatusNotFound, "ensemble-not-found",
		fmt.Sprintf("no ensemble %q in your tenant; list yours with GET /api/v1/ensemble/", r.PathValue("ensemble_id")))
}

func (s *Server) registerAgent(w http.ResponseWriter, r *http.Request) {
	p := mustPrincipal(r)
	body, ok := s.readBody(w, r)
	if !ok {
		return
	}
	var req agentRequest
	if !decodeJSON(w, r, body, &req, false) {
		return
	}
	e, ok := s.loadEnsemble(w, r, p.Tenant)
	if !ok {
		return
	}
	a, err := req.agent("", s.now().UTC())
	if err != nil {
		writeProblem(w, r, http.StatusBadRequest, "validation", err.Error())
		return
	}
	err = s.store.AddAgent(r.Context(), p.Tenant, e.ID, a, MaxAgents)
	switch {
	case errors.Is(err, store.ErrLimit):
		writeProblem(w, r, http.StatusUnprocessableEntity, "too-many-agents",
			fmt.Sprintf("ensemble %s already has %d agents, the most one ensemble may have; create another ensemble", e.ID, MaxAgents))
		return
	case errors.Is(err, store.ErrConflict):
		writeProblem(w, r, http.StatusConflict, "duplicate-agent",
			fmt.Sprintf("agent %q is already registered in ensemble %s; change its weight with optimize-weights or pick another agent_id", a.ID, e.ID))
		return
	case errors.Is(err, store.ErrNotFound):
		writeProblem(w, r, http.StatusNotFound, "ensemble-not-found", fmt.Sprintf("no ensemble %q in your tenant", e.ID))
		return
	case err != nil:
		s.internalError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, struct {
		EnsembleID string `json:"ensemble_id"`
		agentJSON
	}{e.ID, toAgentJSON(a)})
}

// intParam parses an optional integer query parameter in [min, max].
func intParam(r *http.Request, name string, def, min, max int) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || !integerSyntax.MatchString(v) || n < min || n > max {
		return 0, fmt.Errorf("query parameter %s must be an integer in [%d, %d], got %q", name, min, max, v)
	}
	return n, nil
}

func (s *Server) listEnsembles(w http.ResponseWriter, r *http.Request) {
	p := mustPrincipal(r)
	limit, err := intParam(r, "limit", DefaultPageSize, 1, MaxPageSize)
	if err != nil {
		writeProblem(w, r, http.StatusBadRequest, "validation", err.Error())
		return
	}
	items, next, err := s.store.ListEnsembles(r.Context(), p.Tenant, r.URL.Query().Get("cursor"), limit)
	if errors.Is(err, store.ErrBadCursor) {
		writeProblem(w, r, http.StatusBadRequest, "validation", "cursor is not one this API issued; pass next_cursor from the previous page unchanged, or omit it for the first page")
		return
	}
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	out := make([]ensembleJSON, len(items))
	for i, e := range items {
		out[i] = toEnsembleJSON(e)
	}
	writeJSON(w, http.StatusOK, struct {
		Items      []ensembleJSON `json:"items"`
		NextCursor string         `json:"next_cursor,omitempty"`
	}{out, next})
}
