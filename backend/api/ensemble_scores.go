package api

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"sort"

	"github.com/tenantgate/tenantgate/backend/ensemble"
	"github.com/tenantgate/tenantgate/backend/store"
)

// Scores: performance, weights, their optimisation and agent rankings,
// all over the bounded lookback window.

type statsJSON struct {
	Scored           int      `json:"scored"`
	Directional      int      `json:"directional"`
	Hits             int      `json:"hits"`
	HitRate          float64  `json:"hit_rate"`
	Score            float64  `json:"score"`
	MeanReturn       float64  `json:"mean_return"`
	ShrunkMeanReturn float64  `json:"shrunk_mean_return"`
	StdDev           float64  `json:"stddev"`
	Sharpe           *float64 `json:"sharpe"`
}

func toStatsJSON(t ensemble.Tally) statsJSON {
	s := t.Stats()
	return statsJSON{Scored: s.Scored, Directional: s.Directional, Hits: s.Hits, HitRate: s.HitRate, Score: s.Score,
		MeanReturn: s.MeanReturn, ShrunkMeanReturn: s.ShrunkMean, StdDev: s.StdDev, Sharpe: s.Sharpe}
}

type agentStatsJSON struct {
	AgentID   string  `json:"agent_id"`
	AgentType string  `json:"agent_type"`
	Weight    float64 `json:"weight"`
	statsJSON
}

func (s *Server) performance(w http.ResponseWriter, r *http.Request) {
	p := mustPrincipal(r)
	lookback, err := intParam(r, "lookback", DefaultLookback, 1, MaxLookback)
	if err != nil {
		writeProblem(w, r, http.StatusBadRequest, "validation", err.Error())
		return
	}
	win, err := s.store.Performance(r.Context(), p.Tenant, r.PathValue("ensemble_id"), lookback)
	if errors.Is(err, store.ErrNotFound) {
		s.ensembleNotFound(w, r)
		return
	}
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	agents := make([]agentStatsJSON, len(win.Agents))
	for i, a := range win.Agents {
		agents[i] = agentStatsJSON{AgentID: a.ID, AgentType: a.Type, Weight: a.Weight, statsJSON: toStatsJSON(a.Tally)}
	}
	writeJSON(w, http.StatusOK, struct {
		EnsembleID      string           `json:"ensemble_id"`
		Lookback        int              `json:"lookback"`
		PredictionsUsed int              `json:"predictions_used"`
		Ensemble        statsJSON        `json:"ensemble"`
		Agents          []agentStatsJSON `json:"agents"`
	}{r.PathValue("ensemble_id"), lookback, win.Predictions, toStatsJSON(win.Ensemble), agents})
}

type weightJSON struct {
	AgentID          string  `json:"agent_id"`
	AgentType        string  `json:"agent_type"`
	Weight           float64 `json:"weight"`
	NormalizedWeight float64 `json:"normalized_weight"`
}

func (s *Server) weights(w http.ResponseWriter, r *http.Request) {
	p := mustPrincipal(r)
	e, ok := s.loadEnsemble(w, r, p.Tenant)
	if !ok {
		return
	}
	var total float64
	for _, a := range e.Agents {
		total += a.Weight
	}
	out := make([]weightJSON, len(e.Agents))
	for i, a := range e.Agents {
		out[i] = weightJSON{AgentID: a.ID, AgentType: a.Type, Weight: a.Weight}
		if total > 0 {
			out[i].NormalizedWeight = a.Weight / total
		}
	}
	writeJSON(w, http.StatusOK, struct {
		EnsembleID string       `json:"ensemble_id"`
		Method     string       `json:"method"`
		Weights    []weightJSON `json:"weights"`
	}{e.ID, string(e.Method), out})
}

type optimizeRequest struct {
	Lookback *int `json:"lookback"`
}

type weightChangeJSON struct {
	AgentID     string  `json:"agent_id"`
	OldWeight   float64 `json:"old_weight"`
	NewWeight   float64 `json:"new_weight"`
	Score       float64 `json:"score"`
	Directional int     `json:"directional"`
	HitRate     float64 `json:"hit_rate"`
}

func (s *Server) optimizeWeights(w http.ResponseWriter, r *http.Request) {
	p := mustPrincipal(r)
	body, ok := s.readBody(w, r)
	if !ok {
		return
	}
	var req optimizeRequest
	if !decodeJSON(w, r, body, &req, true) {
		return
	}
	e, ok := s.loadEnsemble(w, r, p.Tenant)
	if !ok {
		return
	}
	lookback := DefaultLookback
	if req.Lookback != nil {
		lookback = *req.Lookback
	}
	if lookback < 1 || lookback > MaxLookback {
		writeProblem(w, r, http.StatusBadRequest, "validation", fmt.Sprintf("lookback must be in [1, %d] (the last N predictions with outcomes), got %d", MaxLookback, lookback))
		return
	}
	win, err := s.store.Performance(r.Context(), p.Tenant, e.ID, lookback)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	tallies := make(map[string]ensemble.Tally, len(win.Agents))
	for _, a := range win.Agents {
		tallies[a.ID] = a.Tally
	}
	newWeights := ensemble.OptimizeWeights(e.Agents, tallies)
	if len(newWeights) > 0 {
		if err := s.store.SetWeights(r.Context(), p.Tenant, e.ID, newWeights); err != nil {
			s.internalError(w, r, err)
			return
		}
	}
	changes := make([]weightChangeJSON, len(e.Agents))
	for i, a := range e.Agents {
		st := tallies[a.ID].Stats()
		changes[i] = weightChangeJSON{AgentID: a.ID, OldWeight: a.Weight, NewWeight: newWeights[a.ID], Score: st.Score, Directional: st.Directional, HitRate: st.HitRate}
	}
	writeJSON(w, http.StatusOK, struct {
		EnsembleID      string             `json:"ensemble_id"`
		Lookback        int                `json:"lookback"`
		PredictionsUsed int                `json:"predictions_used"`
		Weights         []weightChangeJSON `json:"weights"`
	}{e.ID, lookback, win.Predictions, changes})
}

type rankingJSON struct {
	Rank       int     `json:"rank"`
	EnsembleID string  `json:"ensemble_id"`
	AgentID    string  `json:"agent_id"`
	AgentType  string  `json:"agent_type"`
	Weight     float64 `json:"weight"`
	statsJSON
}

// agentRankings ranks every agent of every ensemble of the tenant, each over
// its own ensemble's window: an agent_id that appears in two ensembles is two
// agents (two rows), since their signals and weights are unrelated.
func (s *Server) agentRankings(w http.ResponseWriter, r *http.Request) {
	p := mustPrincipal(r)
	limit, err := intParam(r, "limit", DefaultPageSize, 1, MaxPageSize)
	if err != nil {
		writeProblem(w, r, http.StatusBadRequest, "validation", err.Error())
		return
	}
	lookback, err := intParam(r, "lookback", DefaultLookback, 1, MaxLookback)
	if err != nil {
		writeProblem(w, r, http.StatusBadRequest, "validation", err.Error())
		return
	}
	rows, err := s.store.Rankings(r.Context(), p.Tenant, lookback)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	out := make([]rankingJSON, len(rows))
	for i, a := range rows {
		out[i] = rankingJSON{EnsembleID: a.EnsembleID, AgentID: a.ID, AgentType: a.Type, Weight: a.Weight, statsJSON: toStatsJSON(a.Tally)}
	}
	sort.SliceStable(out, func(i, j int) bool { return rankedBefore(out[i], out[j]) })
	if len(out) > limit {
		out = out[:limit]
	}
	for i := range out {
		out[i].Rank = i + 1
	}
	writeJSON(w, http.StatusOK, struct {
		Lookback int           `json:"lookback"`
		Agents   []rankingJSON `json:"agents"`
	}{lookback, out})
}

// rankedBefore orders by the shrunk score (a long good record beats one
// lucky call), then shrunk mean return, then the Sharpe-like ratio (agents
// without one last), then the number of directional calls; ties keep the
// store's (ensemble_id, agent_id) order.
func rankedBefore(a, b rankingJSON) bool {
	for _, c := range [][2]float64{{a.Score, b.Score}, {a.ShrunkMeanReturn, b.ShrunkMeanReturn}, {sharpeKey(a.Sharpe), sharpeKey(b.Sharpe)}, {float64(a.Directional), float64(b.Directional)}} {
		if math.Abs(c[0]-c[1]) > 1e-12 {
			return c[0] > c[1]
		}
	}
	return false
}

func sharpeKey(s *float64) float64 {
	if s == nil {
		return math.Inf(-1)
	}
	return *s
}
