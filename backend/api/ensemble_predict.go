package api

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/tenantgate/tenantgate/backend/ensemble"
	"github.com/tenantgate/tenantgate/backend/store"
)

// Predictions and their outcomes: what agents said, and what happened.

type signalRequest struct {
	AgentID    string   `json:"agent_id"`
	Signal     *float64 `json:"signal"`
	Confidence *float64 `json:"confidence"`
}

type predictRequest struct {
	Symbol  string          `json:"symbol"`
	Signals []signalRequest `json:"signals"`
}

type predictionJSON struct {
	PredictionID   string                  `json:"prediction_id"`
	EnsembleID     string                  `json:"ensemble_id"`
	Symbol         string                  `json:"symbol"`
	Method         string                  `json:"method,omitempty"`
	Signal         float64                 `json:"signal"`
	Action         string                  `json:"action"`
	Confidence     float64                 `json:"confidence"`
	Threshold      float64                 `json:"threshold,omitempty"`
	Contributions  []ensemble.Contribution `json:"contributions"`
	CreatedAt      time.Time               `json:"created_at"`
	RealizedReturn *float64                `json:"realized_return,omitempty"`
	PositionReturn *float64                `json:"position_return,omitempty"`
	OutcomeAt      *time.Time              `json:"outcome_recorded_at,omitempty"`
}

func (s *Server) predict(w http.ResponseWriter, r *http.Request) {
	p := mustPrincipal(r)
	body, ok := s.readBody(w, r)
	if !ok {
		return
	}
	var req predictRequest
	if !decodeJSON(w, r, body, &req, false) {
		return
	}
	e, ok := s.loadEnsemble(w, r, p.Tenant)
	if !ok {
		return
	}
	if !validIdent(req.Symbol, 32) {
		writeProblem(w, r, http.StatusBadRequest, "validation", fmt.Sprintf("symbol must be 1-32 characters of [A-Za-z0-9._:/-], got %q", req.Symbol))
		return
	}
	if len(req.Signals) == 0 || len(req.Signals) > 1000 {
		writeProblem(w, r, http.StatusBadRequest, "validation", "signals must hold 1 to 1000 entries of {agent_id, signal, confidence}")
		return
	}
	signals := make([]ensemble.Signal, len(req.Signals))
	for i, sr := range req.Signals {
		if sr.Signal == nil || sr.Confidence == nil {
			writeProblem(w, r, http.StatusBadRequest, "validation", fmt.Sprintf("signals[%d] needs both signal (in [-1, 1]) and confidence (in [0, 1])", i))
			return
		}
		signals[i] = ensemble.Signal{AgentID: sr.AgentID, Signal: *sr.Signal, Confidence: *sr.Confidence}
	}
	c, err := e.Combine(signals)
	if err != nil {
		status, slug := http.StatusUnprocessableEntity, "invalid-signals"
		if errors.Is(err, ensemble.ErrSignalRange) {
			status, slug = http.StatusBadRequest, "validation"
		}
		writeProblem(w, r, status, slug, err.Error())
		return
	}
	pred := ensemble.Prediction{ID: store.NewID("prd"), EnsembleID: e.ID, Symbol: req.Symbol, Combined: c, CreatedAt: s.now().UTC()}
	if err := s.store.AddPrediction(r.Context(), p.Tenant, pred); err != nil {
		s.internalError(w, r, err)
		return
	}
	out := toPredictionJSON(pred)
	out.Method, out.Threshold = string(e.Method), e.Config.Threshold
	writeJSON(w, http.StatusCreated, out)
}

func toPredictionJSON(p ensemble.Prediction) predictionJSON {
	out := predictionJSON{
		PredictionID: p.ID, EnsembleID: p.EnsembleID, Symbol: p.Symbol,
		Signal: p.Signal, Action: string(p.Action), Confidence: p.Confidence,
		Contributions: p.Contributions, CreatedAt: p.CreatedAt,
		RealizedReturn: p.RealizedReturn, OutcomeAt: p.OutcomeAt,
	}
	if out.Contributions == nil {
		out.Contributions = []ensemble.Contribution{}
	}
	if p.RealizedReturn != nil {
		var pr float64
		switch p.Action {
		case ensemble.Buy:
			pr = *p.RealizedReturn
		case ensemble.Sell:
			pr = -*p.RealizedReturn
		}
		out.PositionReturn = &pr
	}
	return out
}

type outcomeRequest struct {
	PredictionID   string   `json:"prediction_id"`
	RealizedReturn *float64 `json:"realized_return"`
}

func (s *Server) recordOutcome(w http.ResponseWriter, r *http.Request) {
	p := mustPrincipal(r)
	body, ok := s.readBody(w, r)
	if !ok {
		return
	}
	var req outcomeRequest
	if !decodeJSON(w, r, body, &req, false) {
		return
	}
	e, ok := s.loadEnsemble(w, r, p.Tenant)
	if !ok {
		return
	}
	if req.PredictionID == "" {
		writeProblem(w, r, http.StatusBadRequest, "validation", "prediction_id is required (the id POST .../predict returned)")
		return
	}
	if req.RealizedReturn == nil || !(*req.RealizedReturn >= -1 && *req.RealizedReturn <= 100) {
		writeProblem(w, r, http.StatusBadRequest, "validation", "realized_return is required: the symbol's simple return over the horizon, as a fraction (0.02 = +2%), in [-1, 100]")
		return
	}
	pred, err := s.store.RecordOutcome(r.Context(), p.Tenant, e.ID, req.PredictionID, *req.RealizedReturn, s.now().UTC())
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeProblem(w, r, http.StatusNotFound, "prediction-not-found",
			fmt.Sprintf("no prediction %q in ensemble %s of your tenant", req.PredictionID, e.ID))
		return
	case errors.Is(err, store.ErrConflict):
		writeProblem(w, r, http.StatusConflict, "outcome-exists",
			fmt.Sprintf("prediction %s already has a realized return (%v); outcomes are recorded once and never overwritten", req.PredictionID, *pred.RealizedReturn))
		return
	case err != nil:
		s.internalError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, toPredictionJSON(pred))
}
