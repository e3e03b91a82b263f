package policytest

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"time"
)

// The JUnit XML shape CI systems read (Jenkins, GitLab, GitHub actions):
// one testsuite per case file, one testcase per case.
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Time     string      `xml:"time,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	File      string        `xml:"file,attr"`
	Line      int           `xml:"line,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitFailure `xml:"failure,omitempty"`
}

type junitFailure struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.6f", d.Seconds()) }

// WriteJUnit writes the results as JUnit XML, suites in the order their
// files first appear.
func WriteJUnit(w io.Writer, results []Result) error {
	var doc junitSuites
	index := map[string]int{}
	var total time.Duration
	for _, r := range results {
		i, ok := index[r.Case.File]
		if !ok {
			i = len(doc.Suites)
			index[r.Case.File] = i
			doc.Suites = append(doc.Suites, junitSuite{Name: r.Case.File})
		}
		s := &doc.Suites[i]
		jc := junitCase{Name: r.Case.Name, Classname: r.Case.File, File: r.Case.File, Line: r.Case.Line, Time: seconds(r.Elapsed)}
		if !r.Passed() {
			jc.Failure = &junitFailure{
				Message: strings.Join(r.Failures, "; "),
				Type:    "decision",
				Text:    fmt.Sprintf("%s %s\nexpected: %s\ngot:      %s\n", r.Case.Method, r.Case.Path, expected(r.Case), r.Got),
			}
			s.Failures++
			doc.Failures++
		}
		s.Tests++
		doc.Tests++
		s.Cases = append(s.Cases, jc)
		total += r.Elapsed
	}
	doc.Time = seconds(total)
	for i := range doc.Suites {
		var t time.Duration
		for _, r := range results {
			if r.Case.File == doc.Suites[i].Name {
				t += r.Elapsed
			}
		}
		doc.Suites[i].Time = seconds(t)
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return fmt.Errorf("junit: %w", err)
	}
	_, err := io.WriteString(w, "\n")
	return err
}
