// Package ensemble combines trading signals from several agents into one
// decision and scores past decisions against realized returns. It is pure
// logic: no I/O, no clock, no storage. The formulas are documented in
// backend/README.md; the tests pin them to hand-computed examples.
package ensemble

import (
	"errors"
	"fmt"
	"math"
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

// Stats scores a series of decisions against realized returns.
type Stats struct {
	Scored      int     // predictions with an outcome in which the subject took part
	Directional int     // of those, the ones with a position (not hold / not a zero signal)
	Hits        int     // directional ones whose sign matched the return's sign
	HitRate     float64 // Hits / Directional; 0 without directional predictions
	MeanReturn  float64 // mean of the position-signed return over directional ones
	StdDev      float64 // population standard deviation of the same
	Sharpe      float64 // MeanReturn / StdDev; 0 when StdDev is 0
}

type accumulator struct {
	scored, directional, hits int
	xs                        []float64
}

func (a *accumulator) add(direction int, realized float64) {
	a.scored++
	if direction == 0 {
		return
	}
	a.directional++
	x := float64(direction) * realized
	if x > 0 {
		a.hits++
	}
	a.xs = append(a.xs, x)
}

func (a *accumulator) stats() Stats {
	s := Stats{Scored: a.scored, Directional: a.directional, Hits: a.hits}
	if a.directional == 0 {
		return s
	}
	n := float64(a.directional)
	s.HitRate = float64(a.hits) / n
	var sum float64
	for _, x := range a.xs {
		sum += x
	}
	s.MeanReturn = sum / n
	var ss float64
	for _, x := range a.xs {
		d := x - s.MeanReturn
		ss += d * d
	}
	s.StdDev = math.Sqrt(ss / n)
	// Below this the deviation is rounding noise from identical returns, and
	// the ratio would be a meaningless huge number.
	if s.StdDev > 1e-12 {
		s.Sharpe = s.MeanReturn / s.StdDev
	} else {
		s.StdDev = 0
	}
	return s
}

func actionDirection(a Action) int {
	switch a {
	case Buy:
		return 1
	case Sell:
		return -1
	}
	return 0
}

// EnsembleStats scores the ensemble's own actions over the predictions that
// have an outcome: a buy earns +r, a sell −r, a hold takes no position and is
// left out of hit rate, mean and ratio (it still counts in Scored).
func EnsembleStats(preds []Prediction) Stats {
	var acc accumulator
	for _, p := range preds {
		if p.RealizedReturn == nil {
			continue
		}
		acc.add(actionDirection(p.Action), *p.RealizedReturn)
	}
	return acc.stats()
}

// AgentStats scores each agent's own signal over the predictions that have an
// outcome and in which it took part: direction sign(sᵢ), so a positive signal
// earns +r, a negative one −r, and a zero signal is left out like a hold.
func AgentStats(preds []Prediction) map[string]Stats {
	accs := map[string]*accumulator{}
	for _, p := range preds {
		if p.RealizedReturn == nil {
			continue
		}
		for _, c := range p.Contributions {
			a := accs[c.AgentID]
			if a == nil {
				a = &accumulator{}
				accs[c.AgentID] = a
			}
			a.add(sign(c.Signal), *p.RealizedReturn)
		}
	}
	out := make(map[string]Stats, len(accs))
	for id, a := range accs {
		out[id] = a.stats()
	}
	return out
}

// NeutralScore is the score of an agent without directional history in the
// window: a coin flip's hit rate.
const NeutralScore = 0.5

// OptimizeWeights re-weights agents by hit rate over preds (the caller picks
// the lookback window): scoreᵢ = hit rate of agent i, or NeutralScore when it
// has no directional prediction with an outcome in the window; wᵢ = scoreᵢ /
// Σ score. When every score is 0 the weights are equal. Weights are never
// negative and always sum to 1 (for a non-empty agent list).
func OptimizeWeights(agents []Agent, preds []Prediction) map[string]float64 {
	out := make(map[string]float64, len(agents))
	if len(agents) == 0 {
		return out
	}
	stats := AgentStats(preds)
	scores := make([]float64, len(agents))
	var total float64
	for i, a := range agents {
		s, ok := stats[a.ID]
		if ok && s.Directional > 0 {
			scores[i] = s.HitRate
		} else {
			scores[i] = NeutralScore
		}
		total += scores[i]
	}
	for i, a := range agents {
		if total > 0 {
			out[a.ID] = scores[i] / total
		} else {
			out[a.ID] = 1 / float64(len(agents))
		}
	}
	return out
}
