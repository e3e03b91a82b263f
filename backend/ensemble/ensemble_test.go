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

// tally builds a Tally from (direction, return) pairs.
func tally(calls ...[2]float64) Tally {
	var t Tally
	for _, c := range calls {
		t.Add(int(c[0]), c[1])
	}
	return t
}

func TestTallyStats(t *testing.T) {
	// Ensemble: buy +0.02, sell +0.01, buy +0.04, hold +0.05. Directional
	// x = +0.02, −0.01, +0.04 (the hold is left out): mean 0.05/3; deviations
	// (1, −8, 7)/300 → variance 114/3/300² → stddev √38/300.
	s := tally([2]float64{1, 0.02}, [2]float64{-1, 0.01}, [2]float64{1, 0.04}, [2]float64{0, 0.05}).Stats()
	if s.Scored != 4 || s.Directional != 3 || s.Hits != 2 {
		t.Fatalf("counts = %+v", s)
	}
	near(t, "hit rate", s.HitRate, 2.0/3)
	near(t, "mean", s.MeanReturn, 0.05/3)
	near(t, "stddev", s.StdDev, math.Sqrt(38)/300)
	// Score: (2 + 5) / (3 + 10) = 7/13; shrunk mean 0.05 / 13.
	near(t, "score", s.Score, 7.0/13)
	near(t, "shrunk mean", s.ShrunkMean, 0.05/13)
	// 3 calls < MinSharpeSample: no ratio.
	if s.Sharpe != nil {
		t.Errorf("sharpe from 3 calls = %v, want nil", *s.Sharpe)
	}
	if (Tally{}).Stats() != (Stats{Score: NeutralScore}) {
		t.Errorf("empty = %+v", Tally{}.Stats())
	}
}

// The example: returns 0.01 and 0.0100001 gave a ratio of about 2e5
// and topped the rankings. Now there is no ratio below 20 calls.
func TestSharpeMinimumSample(t *testing.T) {
	s := tally([2]float64{1, 0.01}, [2]float64{1, 0.0100001}).Stats()
	if s.Sharpe != nil {
		t.Errorf("two calls: sharpe %v, want nil", *s.Sharpe)
	}
	// 20 calls alternating +0.03 and −0.01: mean 0.01, stddev 0.02 → ratio 0.5.
	var calls [][2]float64
	for i := 0; i < 20; i++ {
		r := 0.03
		if i%2 == 1 {
			r = -0.01
		}
		calls = append(calls, [2]float64{1, r})
	}
	s = tally(calls...).Stats()
	if s.Sharpe == nil {
		t.Fatal("20 calls: no sharpe")
	}
	near(t, "sharpe of 20", *s.Sharpe, 0.5)
	// 19 of them: below the minimum again.
	if s := tally(calls[:19]...).Stats(); s.Sharpe != nil {
		t.Errorf("19 calls: sharpe %v", *s.Sharpe)
	}
	// 20 identical returns: no dispersion, no ratio (not +Inf, not 1e12).
	var flat [][2]float64
	for i := 0; i < 25; i++ {
		flat = append(flat, [2]float64{1, 0.01})
	}
	if s := tally(flat...).Stats(); s.Sharpe != nil || s.StdDev != 0 {
		t.Errorf("flat returns: sharpe %v stddev %v", s.Sharpe, s.StdDev)
	}
}

func TestShrinkage(t *testing.T) {
	// One lucky call: raw hit rate 1.0, score (1+5)/(1+10) = 6/11 ≈ 0.545.
	near(t, "one right", tally([2]float64{1, 0.1}).Stats().Score, 6.0/11)
	// One wrong call: raw 0, score 5/11 ≈ 0.455 (weight 10/11, not 0).
	near(t, "one wrong", tally([2]float64{1, -0.1}).Stats().Score, 5.0/11)
	// 40 calls with 30 hits: (30+5)/(40+10) = 0.70, close to the raw 0.75.
	var calls [][2]float64
	for i := 0; i < 40; i++ {
		r := 0.01
		if i < 10 {
			r = -0.01
		}
		calls = append(calls, [2]float64{1, r})
	}
	near(t, "forty", tally(calls...).Stats().Score, 0.70)
}

func TestOptimizeWeights(t *testing.T) {
	agents := []Agent{{ID: "a", Weight: 1}, {ID: "b", Weight: 5}, {ID: "c", Weight: 1}}
	tallies := map[string]Tally{
		// a: 3 hits of 4 → score 8/14 → weight 16/14.
		"a": tally([2]float64{1, 0.02}, [2]float64{-1, -0.01}, [2]float64{1, 0.04}, [2]float64{1, -0.05}),
		// b: 0 hits of 1 → score 5/11 → weight 10/11 (not 0).
		"b": tally([2]float64{1, -0.02}),
		// c: no history → weight 1, the default of a newly registered agent.
	}
	w := OptimizeWeights(agents, tallies)
	near(t, "a", w["a"], 16.0/14)
	near(t, "b", w["b"], 10.0/11)
	near(t, "c", w["c"], 1)
	// Adding an agent does not change the others' weights (no Σ=1 rescaling).
	w2 := OptimizeWeights(append(agents, Agent{ID: "d", Weight: 1}), tallies)
	for _, id := range []string{"a", "b", "c"} {
		near(t, "stable "+id, w2[id], w[id])
	}
	near(t, "new agent", w2["d"], 1)
}
