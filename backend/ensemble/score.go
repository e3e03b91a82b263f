package ensemble

import "math"

// Scoring constants (backend/README.md "Scoring" explains them).
const (
	// NeutralScore is a coin flip's hit rate: the score of an agent without
	// history, and the point every score is shrunk toward.
	NeutralScore = 0.5
	// PriorCalls is the weight of the neutral prior, in calls: scores use a
	// Beta(PriorCalls/2, PriorCalls/2) prior on the hit rate, and mean
	// returns are shrunk as if PriorCalls calls of return 0 had come first.
	// With 10, one lucky call scores 6/11 = 0.545 (not 1.0) and one wrong
	// call 5/11 = 0.455 (not 0); 40 calls at 75 % score 35/50 = 0.70.
	PriorCalls = 10
	// MinSharpeSample is the fewest directional calls a Sharpe-like ratio
	// is computed from; below it the ratio is null. Twenty is the usual
	// floor under which a mean/deviation ratio is noise.
	MinSharpeSample = 20
	// minStdDev: a deviation below it is rounding noise of equal returns,
	// and the ratio would be a meaningless huge number (null instead).
	minStdDev = 1e-9
)

// Stats are the figures derived from a Tally.
type Stats struct {
	Scored      int      // predictions with an outcome in the window
	Directional int      // of those, the ones with a position
	Hits        int      // directional ones that made money
	HitRate     float64  // Hits / Directional, raw; 0 without directional calls
	Score       float64  // hit rate shrunk toward NeutralScore: (Hits + P/2) / (Directional + P)
	MeanReturn  float64  // Σ d·r / Directional, raw
	ShrunkMean  float64  // Σ d·r / (Directional + P)
	StdDev      float64  // population standard deviation of d·r
	Sharpe      *float64 // MeanReturn / StdDev; nil below MinSharpeSample or without dispersion
}

// Stats derives every figure of t. The variance comes from the sums
// (Σx²/n − mean²), clamped at 0 against rounding.
func (t Tally) Stats() Stats {
	s := Stats{Scored: t.Scored, Directional: t.Directional, Hits: t.Hits}
	n := float64(t.Directional)
	s.Score = (float64(t.Hits) + PriorCalls/2.0) / (n + PriorCalls)
	s.ShrunkMean = t.Sum / (n + PriorCalls)
	if t.Directional == 0 {
		return s
	}
	s.HitRate = float64(t.Hits) / n
	s.MeanReturn = t.Sum / n
	variance := t.SumSquares/n - s.MeanReturn*s.MeanReturn
	if variance > 0 {
		s.StdDev = math.Sqrt(variance)
	}
	if s.StdDev < minStdDev {
		s.StdDev = 0
	}
	if t.Directional >= MinSharpeSample && s.StdDev > 0 {
		r := s.MeanReturn / s.StdDev
		s.Sharpe = &r
	}
	return s
}

// WeightFor maps a score to a weight on the scale register-agent uses: a
// neutral agent (score 0.5, or no history) weighs 1.0, the default weight of
// a new agent, so adding agents never shifts the scale of the others; a
// perfect record approaches 2.0 and a hopeless one approaches 0 without
// reaching it (the prior keeps every score above 0).
func WeightFor(score float64) float64 { return score / NeutralScore }

// OptimizeWeights re-weights agents from their tallies over the window the
// caller picked: wᵢ = WeightFor(scoreᵢ). Weights are not normalised:
// combinations divide by Σw themselves, and an unnormalised scale keeps a
// newly registered agent (weight 1.0) exactly as heavy as a neutral one.
func OptimizeWeights(agents []Agent, tallies map[string]Tally) map[string]float64 {
	out := make(map[string]float64, len(agents))
	for _, a := range agents {
		out[a.ID] = WeightFor(tallies[a.ID].Stats().Score)
	}
	return out
}
