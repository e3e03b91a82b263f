package policytest

import (
	"bytes"
	"encoding/xml"
	"strings"
	"testing"
	"time"
)

func TestJudgeAndReport(t *testing.T) {
	c := Case{Name: "reader cannot close", Method: "POST", Path: "/close", Expect: ExpectDeny, Reason: "missing_role", Status: 403, File: "c.yaml", Line: 4}
	pass := Judge(c, Outcome{Decision: "deny", Reason: "missing_role", Status: 403, Rule: `"rule POST /close roles admin"`}, time.Millisecond)
	if !pass.Passed() {
		t.Fatalf("failures: %v", pass.Failures)
	}
	fail := Judge(c, Outcome{Decision: "allow", Reason: "ok", Status: 200}, time.Millisecond)
	if len(fail.Failures) != 3 {
		t.Fatalf("failures: %v", fail.Failures)
	}
	loose := Judge(Case{Name: "x", Expect: ExpectPublic}, Outcome{Decision: "public", Reason: "public", Status: 204}, 0)
	if !loose.Passed() {
		t.Fatal("reason and status are checked only when given")
	}

	var out bytes.Buffer
	passed, failed := WriteText(&out, []Result{pass, fail, loose})
	if passed != 2 || failed != 1 {
		t.Fatalf("%d passed, %d failed", passed, failed)
	}
	for _, want := range []string{
		"FAIL reader cannot close (c.yaml:4)",
		"expected: deny reason=missing_role status=403",
		"got:      allow reason=ok status=200 rule=(none: no rule matches)",
		"decision allow, want deny",
		"2 passed, 1 failed",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "FAIL x") {
		t.Error("a passing case is reported")
	}
}

func TestWriteJUnit(t *testing.T) {
	a := Case{Name: "a & b", Method: "GET", Path: "/", Expect: ExpectDeny, File: "one.yaml", Line: 2}
	b := Case{Name: "b", Method: "GET", Path: "/", Expect: ExpectAllow, File: "two.yaml", Line: 3}
	results := []Result{
		Judge(a, Outcome{Decision: "deny"}, time.Millisecond),
		Judge(b, Outcome{Decision: "deny", Reason: "missing_role", Status: 403}, 2*time.Millisecond),
	}
	var out bytes.Buffer
	if err := WriteJUnit(&out, results); err != nil {
		t.Fatal(err)
	}
	var doc junitSuites
	if err := xml.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if doc.Tests != 2 || doc.Failures != 1 || len(doc.Suites) != 2 {
		t.Fatalf("%+v", doc)
	}
	if doc.Suites[0].Cases[0].Name != "a & b" || doc.Suites[0].Cases[0].Failure != nil {
		t.Fatalf("suite 0: %+v", doc.Suites[0])
	}
	f := doc.Suites[1].Cases[0].Failure
	if f == nil || !strings.Contains(f.Message, "decision deny, want allow") || !strings.Contains(f.Text, "reason=missing_role") {
		t.Fatalf("failure: %+v", f)
	}
}
