package policytest

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Outcome is what the gate did with a case's request, read from its audit
// record.
type Outcome struct {
	Decision string
	Reason   string
	Status   int
	// Rule is the deciding rule in its canonical form with its line
	// ("" when none matched), for the report only.
	Rule string
}

// Result is one case and what happened to it.
type Result struct {
	Case     Case
	Got      Outcome
	Failures []string // what differs; empty when the case passed
	Elapsed  time.Duration
}

// Passed reports whether the outcome met every expectation of the case.
func (r *Result) Passed() bool { return len(r.Failures) == 0 }

// Judge compares an outcome with the case's expectations: the decision
// always, reason and status when the case gives them.
func Judge(c Case, got Outcome, elapsed time.Duration) Result {
	r := Result{Case: c, Got: got, Elapsed: elapsed}
	if got.Decision != c.Expect {
		r.Failures = append(r.Failures, fmt.Sprintf("decision %s, want %s", got.Decision, c.Expect))
	}
	if c.Reason != "" && got.Reason != c.Reason {
		r.Failures = append(r.Failures, fmt.Sprintf("reason %s, want %s", got.Reason, c.Reason))
	}
	if c.Status != 0 && got.Status != c.Status {
		r.Failures = append(r.Failures, fmt.Sprintf("status %d, want %d", got.Status, c.Status))
	}
	return r
}

// expected is the case's expectation in the report's words.
func expected(c Case) string {
	s := c.Expect
	if c.Reason != "" {
		s += " reason=" + c.Reason
	}
	if c.Status != 0 {
		s += " status=" + strconv.Itoa(c.Status)
	}
	return s
}

func (o Outcome) String() string {
	s := fmt.Sprintf("%s reason=%s status=%d", o.Decision, o.Reason, o.Status)
	if o.Rule != "" {
		return s + " rule=" + o.Rule
	}
	return s + " rule=(none: no rule matches)"
}

// WriteText prints each failure (name, where, expected and got), then
// "N passed, M failed".
func WriteText(w io.Writer, results []Result) (passed, failed int) {
	for i := range results {
		r := &results[i]
		if r.Passed() {
			passed++
			continue
		}
		failed++
		fmt.Fprintf(w, "FAIL %s (%s)\n", r.Case.Name, r.Case.Where())
		fmt.Fprintf(w, "    %s %s\n", r.Case.Method, r.Case.Path)
		fmt.Fprintf(w, "    expected: %s\n", expected(r.Case))
		fmt.Fprintf(w, "    got:      %s\n", r.Got)
		fmt.Fprintf(w, "    (%s)\n", strings.Join(r.Failures, "; "))
	}
	fmt.Fprintf(w, "%d passed, %d failed\n", passed, failed)
	return passed, failed
}
