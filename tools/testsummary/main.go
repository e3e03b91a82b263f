// Command testsummary reads `go test -json` on stdin, prints what a plain
// `go test` would (package lines, and the output of failing tests), and
// appends one line per suite to a summary file: tests passed, skipped and
// failed, Ginkgo specs run and skipped, and every skipped test with its
// reason. scripts/test.sh prints that file at the end of `make test`, so a
// green run also says what it did not run.
//
//	go test -json ./pkg/... | go run ./tools/testsummary -suite unit -out .data/test-summary.txt
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
)

// event is one line of test2json output.
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

type testKey struct{ pkg, test string }

type summary struct {
	outcome  map[testKey]string   // pass, fail or skip
	output   map[testKey][]string // buffered until the test ends
	skips    map[testKey]string   // skip reason
	specs    []string             // Ginkgo "Ran N of M Specs" lines, with the package
	failPkgs []string
}

var (
	ginkgoRan    = regexp.MustCompile(`Ran (\d+) of (\d+) Specs`)
	ginkgoCounts = regexp.MustCompile(`(\d+) Passed \| (\d+) Failed \| (\d+) Pending \| (\d+) Skipped`)
	ansiColour   = regexp.MustCompile("\x1b\\[[0-9;]*m")
)

func main() {
	suite := flag.String("suite", "tests", "name of this suite in the summary")
	out := flag.String("out", "", "file to append the summary line to (default: stdout only)")
	flag.Parse()
	s := &summary{outcome: map[testKey]string{}, output: map[testKey][]string{}, skips: map[testKey]string{}}
	s.read(os.Stdin, os.Stdout)
	text := s.report(*suite)
	fmt.Print("\n" + text)
	if *out != "" {
		f, err := os.OpenFile(*out, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
		if err != nil {
			fmt.Fprintln(os.Stderr, "testsummary:", err)
			os.Exit(1)
		}
		_, _ = f.WriteString(text)
		_ = f.Close()
	}
}

func (s *summary) read(in io.Reader, w io.Writer) {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	var pendingSpecs string
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			// Not test2json (a build error, say): show it as it came.
			fmt.Fprintln(w, sc.Text())
			continue
		}
		k := testKey{e.Package, e.Test}
		plain := ansiColour.ReplaceAllString(e.Output, "")
		if m := ginkgoRan.FindString(plain); m != "" {
			pendingSpecs = m
		}
		if m := ginkgoCounts.FindString(plain); m != "" && pendingSpecs != "" {
			s.specs = append(s.specs, fmt.Sprintf("%s: %s (%s)", e.Package, pendingSpecs, m))
			pendingSpecs = ""
		}
		switch {
		case e.Test == "" && e.Action == "output":
			if o := e.Output; o != "PASS\n" && !strings.HasPrefix(o, "=== ") && !strings.HasPrefix(o, "--- ") {
				fmt.Fprint(w, o)
			}
		case e.Test == "" && e.Action == "fail":
			s.failPkgs = append(s.failPkgs, e.Package)
		case e.Action == "output":
			s.output[k] = append(s.output[k], e.Output)
		case e.Action == "pass" || e.Action == "fail" || e.Action == "skip":
			s.outcome[k] = e.Action
			if e.Action == "fail" {
				fmt.Fprint(w, strings.Join(s.output[k], ""))
			}
			if e.Action == "skip" {
				s.skips[k] = skipReason(s.output[k])
			}
			delete(s.output, k)
		}
	}
}

// skipReason is the message t.Skip printed: the last indented line.
func skipReason(lines []string) string {
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if l != "" && !strings.HasPrefix(l, "--- SKIP") && !strings.HasPrefix(l, "=== ") {
			return l
		}
	}
	return "(no reason given)"
}

// report counts leaf tests only (a test with subtests is counted through
// its subtests), so nothing is counted twice.
func (s *summary) report(suite string) string {
	parent := map[testKey]bool{}
	for k := range s.outcome {
		if i := strings.LastIndex(k.test, "/"); i > 0 {
			parent[testKey{k.pkg, k.test[:i]}] = true
		}
	}
	n := map[string]int{}
	for k, o := range s.outcome {
		if !parent[k] {
			n[o]++
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d tests passed, %d skipped, %d failed", suite, n["pass"], n["skip"], n["fail"])
	if len(s.failPkgs) > 0 {
		fmt.Fprintf(&b, "; failing packages: %s", strings.Join(s.failPkgs, " "))
	}
	b.WriteString("\n")
	for _, sp := range s.specs {
		fmt.Fprintf(&b, "  Ginkgo %s\n", sp)
	}
	keys := make([]testKey, 0, len(s.skips))
	for k := range s.skips {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].pkg != keys[j].pkg {
			return keys[i].pkg < keys[j].pkg
		}
		return keys[i].test < keys[j].test
	})
	for _, k := range keys {
		if !parent[k] {
			fmt.Fprintf(&b, "  skipped %s %s: %s\n", strings.TrimPrefix(k.pkg, "github.com/tenantgate/tenantgate/"), k.test, s.skips[k])
		}
	}
	return b.String()
}
