package ensemble

import (
	"errors"
	"math"
	"testing"
)

const eps = 1e-9

func near(t *testing.T, name string, got, want float64) {
	t.Helper()
	if math.Abs(got-want) > eps {
		t.Errorf("%s = %.12g, want %.12g", name, got, want)
	}
}

// Agents a (w=2), b (w=1), c (w=1) with signals a: +0.5 @0.8, b: −0.2 @0.5,
// c: +0.9 @0.1. The expectations below are worked out by hand in the
// comments; README.md shows the same example.
func threeAgents(m Method) Ensemble {
	return Ensemble{
		ID: "e", Method: m, Config: Config{Threshold: 0.1, MinAgents: 1},
		Agents: []Agent{{ID: "a", Weight: 2}, {ID: "b", Weight: 1}, {ID: "c", Weight: 1}},
	}
}

var threeSignals = []Signal{{"a", 0.5, 0.8}, {"b", -0.2, 0.5}, {"c", 0.9, 0.1}}

func TestCombine(t *testing.T) {
	tests := []struct {
		method        Method
		signal, conf  float64
		contributions []float64
		action        Action
	}{
		// Σw = 4; Σws = 1.0 − 0.2 + 0.9 = 1.7 → 0.425; conf = (1.6+0.5+0.1)/4 = 0.55
		{WeightedAverage, 0.425, 0.55, []float64{0.25, -0.05, 0.225}, Buy},
		// wc = 1.6, 0.5, 0.1 (Σ 2.2); Σwcs = 0.8 − 0.1 + 0.09 = 0.79 → 0.79/2.2; conf = 2.2/4
		{ConfidenceWeighted, 0.79 / 2.2, 0.55, []float64{0.8 / 2.2, -0.1 / 2.2, 0.09 / 2.2}, Buy},
		// W+ = 3, W− = 1 → (3−1)/4 = 0.5; conf = (2·0.8 + 1·0.1)/3
		{Majority, 0.5, 1.7 / 3, []float64{0.5, -0.25, 0.25}, Buy},
	}
	for _, tt := range tests {
		t.Run(string(tt.method), func(t *testing.T) {
			c, err := threeAgents(tt.method).Combine(threeSignals)
			if err != nil {
				t.Fatal(err)
			}
			near(t, "signal", c.Signal, tt.signal)
			near(t, "confidence", c.Confidence, tt.conf)
			if c.Action != tt.action {
				t.Errorf("action = %s, want %s", c.Action, tt.action)
			}
			var sum float64
			for i, want := range tt.contributions {
				near(t, "contribution "+c.Contributions[i].AgentID, c.Contributions[i].Contribution, want)
				sum += c.Contributions[i].Contribution
			}
			near(t, "Σ contributions", sum, c.Signal)
		})
	}
}

func TestCombineEdgeCases(t *testing.T) {
	e := threeAgents(Majority)
	// A tie: a (2) against b+c (2).
	c, err := e.Combine([]Signal{{"a", 0.3, 1}, {"b", -0.1, 1}, {"c", -0.1, 1}})
	if err != nil {
		t.Fatal(err)
	}
	near(t, "tie signal", c.Signal, 0)
	near(t, "tie confidence", c.Confidence, 0)
	if c.Action != Hold {
		t.Errorf("tie action = %s, want hold", c.Action)
	}

	// Zero confidence everywhere: confidence_weighted has no mass and holds.
	c, err = threeAgents(ConfidenceWeighted).Combine([]Signal{{"a", 1, 0}, {"b", 1, 0}})
	if err != nil {
		t.Fatal(err)
	}
	near(t, "zero-confidence signal", c.Signal, 0)
	if c.Action != Hold {
		t.Errorf("zero-confidence action = %s", c.Action)
	}

	// Errors.
	errCases := []struct {
		name    string
		e       Ensemble
		signals []Signal
		want    error
	}{
		{"unknown agent", e, []Signal{{"zz", 0.1, 0.1}}, ErrUnknownAgent},
		{"duplicate", e, []Signal{{"a", 0.1, 0.1}, {"a", 0.2, 0.1}}, ErrDuplicateSignal},
		{"signal range", e, []Signal{{"a", 1.5, 0.1}}, ErrSignalRange},
		{"confidence range", e, []Signal{{"a", 0.5, -0.1}}, ErrSignalRange},
		{"min agents", Ensemble{Method: WeightedAverage, Config: Config{Threshold: 0.1, MinAgents: 2}, Agents: e.Agents}, []Signal{{"a", 0.5, 0.5}}, ErrTooFewAgents},
	}
	for _, tc := range errCases {
		if _, err := tc.e.Combine(tc.signals); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestActionFor(t *testing.T) {
	for _, tc := range []struct {
		s, th float64
		want  Action
	}{
		{0.1, 0.1, Buy}, {0.0999, 0.1, Hold}, {-0.1, 0.1, Sell}, {-0.0999, 0.1, Hold}, {0, 0.1, Hold}, {1, 0.5, Buy}, {-0.6, 0.5, Sell},
	} {
		if got := ActionFor(tc.s, tc.th); got != tc.want {
			t.Errorf("ActionFor(%v, %v) = %s, want %s", tc.s, tc.th, got, tc.want)
		}
	}
}

func ret(x float64) *float64 { return &x }

// Four predictions with outcomes and one without:
//
//	p1 buy  r=+0.02  a:+0.5  b:−0.3
//	p2 sell r=+0.01  a:−0.4  b: 0
//	p3 buy  r=+0.04  a:+0.2  b:+0.6
//	p4 hold r=+0.05  a:+0.05 b:−0.05
//	p5 buy  (no outcome)
func history() []Prediction {
	mk := func(id string, a Action, r *float64, sa, sb float64) Prediction {
		return Prediction{ID: id, Combined: Combined{Action: a, Signal: map[Action]float64{Buy: 0.5, Sell: -0.5, Hold: 0}[a],
			Contributions: []Contribution{{AgentID: "a", Signal: sa}, {AgentID: "b", Signal: sb}}}, RealizedReturn: r}
	}
	return []Prediction{
		mk("p1", Buy, ret(0.02), 0.5, -0.3),
		mk("p2", Sell, ret(0.01), -0.4, 0),
		mk("p3", Buy, ret(0.04), 0.2, 0.6),
		mk("p4", Hold, ret(0.05), 0.05, -0.05),
		mk("p5", Buy, nil, 1, 1),
	}
}

func TestEnsembleStats(t *testing.T) {
	s := EnsembleStats(history())
	// Directional x = +0.02, −0.01, +0.04 (the hold is left out):
	// mean 0.05/3; deviations (1, −8, 7)/300 → variance 114/3/300² → stddev √38/300;
	// ratio (5/300)/(√38/300) = 5/√38.
	if s.Scored != 4 || s.Directional != 3 || s.Hits != 2 {
		t.Fatalf("counts = %+v", s)
	}
	near(t, "hit rate", s.HitRate, 2.0/3)
	near(t, "mean", s.MeanReturn, 0.05/3)
	near(t, "stddev", s.StdDev, math.Sqrt(38)/300)
	near(t, "sharpe", s.Sharpe, 5/math.Sqrt(38))
}

func TestAgentStats(t *testing.T) {
	st := AgentStats(history())
	a, b := st["a"], st["b"]
	// a: x = +0.02, −0.01, +0.04, +0.05 → 3 hits of 4, mean 0.025
	if a.Scored != 4 || a.Directional != 4 || a.Hits != 3 {
		t.Fatalf("a = %+v", a)
	}
	near(t, "a hit rate", a.HitRate, 0.75)
	near(t, "a mean", a.MeanReturn, 0.025)
	// b: x = −0.02, (zero signal: out), +0.04, −0.05 → 1 hit of 3, mean −0.01
	if b.Scored != 4 || b.Directional != 3 || b.Hits != 1 {
		t.Fatalf("b = %+v", b)
	}
	near(t, "b hit rate", b.HitRate, 1.0/3)
	near(t, "b mean", b.MeanReturn, -0.01)
}

func TestStatsDegenerate(t *testing.T) {
	// One observation: stddev 0 → ratio 0. Identical returns: same.
	s := EnsembleStats([]Prediction{{Combined: Combined{Action: Buy}, RealizedReturn: ret(0.03)}})
	near(t, "single sharpe", s.Sharpe, 0)
	near(t, "single mean", s.MeanReturn, 0.03)
	s = EnsembleStats([]Prediction{{Combined: Combined{Action: Buy}, RealizedReturn: ret(0.1)}, {Combined: Combined{Action: Buy}, RealizedReturn: ret(0.1)}})
	near(t, "flat sharpe", s.Sharpe, 0)
	s = EnsembleStats(nil)
	if s != (Stats{}) {
		t.Errorf("empty = %+v", s)
	}
}

func TestOptimizeWeights(t *testing.T) {
	agents := []Agent{{ID: "a", Weight: 1}, {ID: "b", Weight: 5}, {ID: "c", Weight: 1}}
	// Scores: a 0.75, b 1/3, c no data → 0.5; Σ = 19/12 → 9/19, 4/19, 6/19.
	w := OptimizeWeights(agents, history())
	near(t, "a", w["a"], 9.0/19)
	near(t, "b", w["b"], 4.0/19)
	near(t, "c", w["c"], 6.0/19)

	// No data at all: equal weights.
	w = OptimizeWeights(agents, nil)
	for _, id := range []string{"a", "b", "c"} {
		near(t, "equal "+id, w[id], 1.0/3)
	}

	// Every agent always wrong: all scores 0 → equal weights, never negative.
	wrong := []Prediction{{Combined: Combined{Action: Buy, Contributions: []Contribution{{AgentID: "a", Signal: 1}, {AgentID: "b", Signal: 1}}}, RealizedReturn: ret(-0.1)}}
	w = OptimizeWeights(agents[:2], wrong)
	near(t, "all-wrong a", w["a"], 0.5)
	near(t, "all-wrong b", w["b"], 0.5)

	// One right, one wrong: 1 and 0 → the wrong one gets 0, not less.
	mixed := []Prediction{{Combined: Combined{Action: Buy, Contributions: []Contribution{{AgentID: "a", Signal: 1}, {AgentID: "b", Signal: -1}}}, RealizedReturn: ret(0.1)}}
	w = OptimizeWeights(agents[:2], mixed)
	near(t, "mixed a", w["a"], 1)
	near(t, "mixed b", w["b"], 0)
}
