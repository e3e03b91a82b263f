// Package ensemble combines trading signals from several agents into one
// decision and scores past decisions against realized returns. It is pure
// logic: no I/O, no clock, no storage. The formulas are documented in
// backend/README.md; the tests pin them to hand-computed examples.
package ensemble

import (
	"errors"
	"fmt"
	"time"
)

// Method is a voting method.
type Method string

// The voting methods.
const (
	WeightedAverage    Method = "weighted_average"
	Majority           Method = "majority"
	ConfidenceWeighted Method = "confidence_weighted"
)

// Methods lists the valid voting methods, for error messages.
var Methods = []Method{WeightedAverage, Majority, ConfidenceWeighted}

// Valid reports whether m is a known voting method.
func (m Method) Valid() bool {
	switch m {
	case WeightedAverage, Majority, ConfidenceWeighted:
		return true
	}
	return false
}

// Action is what the ensemble recommends.
type Action string

// The actions.
const (
	Buy  Action = "buy"
	Sell Action = "sell"
	Hold Action = "hold"
)

// Config tunes an ensemble.
type Config struct {
	Threshold float64 // |signal| needed to act; in (0, 1]
	MinAgents int     // distinct agents a prediction needs; >= 1
}

// Defaults for Config.
const (
	DefaultThreshold = 0.1
	DefaultMinAgents = 1
)

// Validate checks the ranges of c.
func (c Config) Validate() error {
	if !(c.Threshold > 0 && c.Threshold <= 1) {
		return fmt.Errorf("config.threshold must be in (0, 1], got %v", c.Threshold)
	}
	if c.MinAgents < 1 || c.MinAgents > 1000 {
		return fmt.Errorf("config.min_agents must be in [1, 1000], got %d", c.MinAgents)
	}
	return nil
}

// Agent is a signal source registered in an ensemble.
type Agent struct {
	ID        string
	Type      string
	Weight    float64
	CreatedAt time.Time
}

// Ensemble is a named set of agents and a voting method.
type Ensemble struct {
	ID        string
	Name      string
	Method    Method
	Config    Config
	Agents    []Agent
	CreatedAt time.Time
}

// Agent returns the agent with id, if registered.
func (e Ensemble) Agent(id string) (Agent, bool) {
	for _, a := range e.Agents {
		if a.ID == id {
			return a, true
		}
	}
	return Agent{}, false
}

// Signal is one agent's opinion about one symbol.
type Signal struct {
	AgentID    string
	Signal     float64 // [-1, 1]: -1 strong sell, +1 strong buy
	Confidence float64 // [0, 1]
}

// Contribution is one agent's part in a combined signal; the contributions of
// a prediction sum to its signal.
type Contribution struct {
	AgentID      string  `json:"agent_id"`
	Signal       float64 `json:"signal"`
	Confidence   float64 `json:"confidence"`
	Weight       float64 `json:"weight"`
	Contribution float64 `json:"contribution"`
}

// Combined is the outcome of a vote.
type Combined struct {
	Signal        float64
	Confidence    float64
	Action        Action
	Contributions []Contribution
}

// Errors from Combine; the API maps them to 422.
var (
	ErrUnknownAgent    = errors.New("unknown agent")
	ErrTooFewAgents    = errors.New("too few agents")
	ErrDuplicateSignal = errors.New("duplicate signal")
	ErrSignalRange     = errors.New("signal out of range")
)

// ActionFor maps a combined signal to an action: buy at or above threshold,
// sell at or below -threshold, hold in between.
func ActionFor(signal, threshold float64) Action {
	switch {
	case signal >= threshold:
		return Buy
	case signal <= -threshold:
		return Sell
	default:
		return Hold
	}
}

// Combine votes the signals with e's method and weights.
func (e Ensemble) Combine(signals []Signal) (Combined, error) {
	seen := make(map[string]bool, len(signals))
	weights := make([]float64, len(signals))
	for i, s := range signals {
		a, ok := e.Agent(s.AgentID)
		if !ok {
			return Combined{}, fmt.Errorf("%w: signals[%d].agent_id %q is not registered in this ensemble; register it first", ErrUnknownAgent, i, s.AgentID)
		}
		if seen[s.AgentID] {
			return Combined{}, fmt.Errorf("%w: signals[%d]: agent %q already sent a signal in this request", ErrDuplicateSignal, i, s.AgentID)
		}
		seen[s.AgentID] = true
		if !(s.Signal >= -1 && s.Signal <= 1) {
			return Combined{}, fmt.Errorf("%w: signals[%d].signal must be in [-1, 1], got %v", ErrSignalRange, i, s.Signal)
		}
		if !(s.Confidence >= 0 && s.Confidence <= 1) {
			return Combined{}, fmt.Errorf("%w: signals[%d].confidence must be in [0, 1], got %v", ErrSignalRange, i, s.Confidence)
		}
		weights[i] = a.Weight
	}
	if len(signals) < e.Config.MinAgents {
		return Combined{}, fmt.Errorf("%w: this ensemble needs signals from at least %d distinct agents, got %d", ErrTooFewAgents, e.Config.MinAgents, len(signals))
	}
	var c Combined
	switch e.Method {
	case WeightedAverage:
		c = weightedAverage(signals, weights)
	case ConfidenceWeighted:
		c = confidenceWeighted(signals, weights)
	case Majority:
		c = majority(signals, weights)
	default:
		return Combined{}, fmt.Errorf("ensemble has unknown method %q", e.Method)
	}
	c.Action = ActionFor(c.Signal, e.Config.Threshold)
	return c, nil
}

// weightedAverage: S = Σ wᵢsᵢ / Σ wᵢ; confidence = Σ wᵢcᵢ / Σ wᵢ.
func weightedAverage(signals []Signal, w []float64) Combined {
	var sumW, sumWC float64
	for i, s := range signals {
		sumW += w[i]
		sumWC += w[i] * s.Confidence
	}
	c := Combined{Contributions: make([]Contribution, len(signals))}
	for i, s := range signals {
		part := 0.0
		if sumW > 0 {
			part = w[i] * s.Signal / sumW
		}
		c.Contributions[i] = Contribution{AgentID: s.AgentID, Signal: s.Signal, Confidence: s.Confidence, Weight: w[i], Contribution: part}
		c.Signal += part
	}
	if sumW > 0 {
		c.Confidence = sumWC / sumW
	}
	return c
}

// confidenceWeighted: S = Σ wᵢcᵢsᵢ / Σ wᵢcᵢ; confidence = Σ wᵢcᵢ / Σ wᵢ.
func confidenceWeighted(signals []Signal, w []float64) Combined {
	var sumW, sumWC float64
	for i, s := range signals {
		sumW += w[i]
		sumWC += w[i] * s.Confidence
	}
	c := Combined{Contributions: make([]Contribution, len(signals))}
	for i, s := range signals {
		part := 0.0
		if sumWC > 0 {
			part = w[i] * s.Confidence * s.Signal / sumWC
		}
		c.Contributions[i] = Contribution{AgentID: s.AgentID, Signal: s.Signal, Confidence: s.Confidence, Weight: w[i], Contribution: part}
		c.Signal += part
	}
	if sumW > 0 {
		c.Confidence = sumWC / sumW
	}
	return c
}

// majority: every agent votes sign(sᵢ) with its weight; S = (W₊ − W₋) / Σ wᵢ;
// confidence = the weighted mean confidence of the winning side (0 on a tie).
func majority(signals []Signal, w []float64) Combined {
	var sumW, wPlus, wMinus, wcPlus, wcMinus float64
	for i, s := range signals {
		sumW += w[i]
		switch sign(s.Signal) {
		case 1:
			wPlus += w[i]
			wcPlus += w[i] * s.Confidence
		case -1:
			wMinus += w[i]
			wcMinus += w[i] * s.Confidence
		}
	}
	c := Combined{Contributions: make([]Contribution, len(signals))}
	for i, s := range signals {
		part := 0.0
		if sumW > 0 {
			part = w[i] * float64(sign(s.Signal)) / sumW
		}
		c.Contributions[i] = Contribution{AgentID: s.AgentID, Signal: s.Signal, Confidence: s.Confidence, Weight: w[i], Contribution: part}
		c.Signal += part
	}
	switch {
	case wPlus > wMinus:
		c.Confidence = wcPlus / wPlus
	case wMinus > wPlus:
		c.Confidence = wcMinus / wMinus
	}
	return c
}

func sign(x float64) int {
	switch {
	case x > 0:
		return 1
	case x < 0:
		return -1
	}
	return 0
}

// Prediction is a recorded vote and, once known, its realized return.
type Prediction struct {
	ID         string
	EnsembleID string
	Symbol     string
	Combined
	CreatedAt      time.Time
	RealizedReturn *float64
	OutcomeAt      *time.Time
}

// Tally is the raw aggregate a store computes in SQL over a window of scored
// predictions; Stats derives every figure from it. For each prediction with
// realized return r in which the subject took part, its direction d is +1,
// -1 or 0 (the ensemble: buy, sell, hold; an agent: the sign of its signal).
type Tally struct {
	Scored      int     // predictions in the window the subject took part in
	Directional int     // of those, the ones with d != 0
	Hits        int     // directional ones with d·r > 0
	Sum         float64 // Σ d·r over the directional ones
	SumSquares  float64 // Σ (d·r)² = Σ r² over the directional ones
}

// Add counts one scored prediction with direction d and realized return r
// (the in-memory twin of the SQL aggregate, for tests and small callers).
func (t *Tally) Add(d int, r float64) {
	t.Scored++
	if d == 0 {
		return
	}
	t.Directional++
	x := float64(d) * r
	if x > 0 {
		t.Hits++
	}
	t.Sum += x
	t.SumSquares += x * x
}
