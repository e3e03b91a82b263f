package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestSummaryCountsLeavesSkipsAndSpecs(t *testing.T) {
	in := strings.Join([]string{
		`{"Action":"output","Package":"p","Test":"TestA","Output":"=== RUN   TestA\n"}`,
		`{"Action":"pass","Package":"p","Test":"TestA"}`,
		`{"Action":"output","Package":"p","Test":"TestB/one","Output":"    b_test.go:9: PostgreSQL did not answer\n"}`,
		`{"Action":"output","Package":"p","Test":"TestB/one","Output":"--- SKIP: TestB/one\n"}`,
		`{"Action":"skip","Package":"p","Test":"TestB/one"}`,
		`{"Action":"pass","Package":"p","Test":"TestB/two"}`,
		`{"Action":"pass","Package":"p","Test":"TestB"}`,
		`{"Action":"output","Package":"p","Test":"TestC","Output":"boom\n"}`,
		`{"Action":"fail","Package":"p","Test":"TestC"}`,
		`{"Action":"output","Package":"q","Test":"TestSuite","Output":"\u001b[1mRan 3 of 5 Specs in 1 seconds\u001b[0m\n"}`,
		`{"Action":"output","Package":"q","Test":"TestSuite","Output":"\u001b[1m3 Passed\u001b[0m | 0 Failed | 0 Pending | 2 Skipped\n"}`,
		`{"Action":"pass","Package":"q","Test":"TestSuite"}`,
		`{"Action":"output","Package":"p","Output":"FAIL\tp\t0.1s\n"}`,
		`{"Action":"fail","Package":"p"}`,
		`not json: a build error`,
	}, "\n")
	s := &summary{outcome: map[testKey]string{}, output: map[testKey][]string{}, skips: map[testKey]string{}}
	var shown bytes.Buffer
	s.read(strings.NewReader(in), &shown)
	for _, want := range []string{"boom", "FAIL\tp", "not json: a build error"} {
		if !strings.Contains(shown.String(), want) {
			t.Errorf("passed-through output lacks %q:\n%s", want, shown.String())
		}
	}
	if strings.Contains(shown.String(), "=== RUN") {
		t.Errorf("passing tests' output was shown:\n%s", shown.String())
	}
	got := s.report("unit")
	for _, want := range []string{
		"unit: 3 tests passed, 1 skipped, 1 failed; failing packages: p",
		"Ginkgo q: Ran 3 of 5 Specs (3 Passed | 0 Failed | 0 Pending | 2 Skipped)",
		"skipped p TestB/one: b_test.go:9: PostgreSQL did not answer",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q:\n%s", want, got)
		}
	}
}
