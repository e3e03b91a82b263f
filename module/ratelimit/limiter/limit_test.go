package limiter

import (
	"strings"
	"testing"
	"time"
)

func TestParseRate(t *testing.T) {
	for _, c := range []struct {
		in     string
		n      int
		period time.Duration
	}{
		{"100/s", 100, time.Second}, {"10/m", 10, time.Minute}, {"1/h", 1, time.Hour}, {"5/d", 5, 24 * time.Hour},
	} {
		n, p, err := ParseRate(c.in)
		if err != nil || n != c.n || p != c.period {
			t.Errorf("ParseRate(%q) = %d, %s, %v", c.in, n, p, err)
		}
	}
	for _, bad := range []string{"10/x", "10", "/s", "0/s", "-1/s", "+1/s", "1.5/s", "10/ s", "10/sec", ""} {
		if _, _, err := ParseRate(bad); err == nil || !strings.Contains(err.Error(), "bad rate") {
			t.Errorf("ParseRate(%q) = %v, want a bad rate error", bad, err)
		}
	}
}

func TestParseLimit(t *testing.T) {
	l, err := ParseLimit(strings.Fields("get,POST /api/v1/hedging/** 10/m burst 2"), 7)
	if err != nil {
		t.Fatal(err)
	}
	if l.Rate != "10/m" || l.Burst != 2 || l.Line != 7 || l.Pattern != "/api/v1/hedging/**" {
		t.Fatalf("%+v", l)
	}
	for _, c := range []struct{ line, want string }{
		{"* /**", "needs METHODS PATTERN RATE"},
		{"* /** 10/x", `bad rate "10/x"`},
		{"* /** 10/s burst 0", `burst "0": want an integer of at least 1`},
		{"* /** 10/s burst -3", `burst "-3"`},
		{"* /** 10/s burst many", `burst "many"`},
		{"* /** 10/s burst", "the only option is burst N"},
		{"* /** 10/s bursts 3", "the only option is burst N"},
		{"* api/** 10/s", `bad pattern "api/**": must start with "/"`},
		{"* /a/**/b 10/s", `"**" must be the last segment`},
		{"G@T /a 10/s", `bad method`},
	} {
		_, err := ParseLimit(strings.Fields(c.line), 1)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseLimit(%q) = %v, want an error containing %q", c.line, err, c.want)
		}
	}
	// Every problem of a line at once.
	_, err = ParseLimit(strings.Fields("* nope 10/x burst 0"), 1)
	for _, want := range []string{"bad rate", "burst", "bad pattern"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
}

func TestCompile(t *testing.T) {
	s, err := Compile([]Limit{
		{Methods: []string{"*"}, Pattern: "/**", Rate: "100/s", Burst: 200},
		{Methods: []string{"POST"}, Pattern: "/api/v1/hedging/execute", Rate: "10/m", Burst: 2},
		{Methods: []string{"GET"}, Pattern: "/api/v1/ensemble/{id}/weights", Rate: "5/s"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if p := s.Policies[2]; p.Burst != 5 || p.N != 5 || p.Period != time.Second || p.Index != 2 {
		t.Fatalf("default burst: %+v", p)
	}
	ids := func(ps []*Policy) (out []string) {
		for _, p := range ps {
			out = append(out, p.ID)
		}
		return out
	}
	for _, c := range []struct {
		method, path string
		want         []string
	}{
		{"POST", "/api/v1/hedging/execute", []string{"* /**", "POST /api/v1/hedging/execute"}},
		{"GET", "/api/v1/hedging/execute", []string{"* /**"}},
		{"HEAD", "/api/v1/ensemble/e1/weights", []string{"* /**", "GET /api/v1/ensemble/{id}/weights"}},
		{"GET", "/", []string{"* /**"}},
	} {
		got := ids(s.Match(c.method, c.path, nil))
		if strings.Join(got, "|") != strings.Join(c.want, "|") {
			t.Errorf("%s %s matched %q, want %q", c.method, c.path, got, c.want)
		}
	}
	if got := s.Policies[1].String(); got != "POST /api/v1/hedging/execute 10/m burst 2" {
		t.Errorf("String() = %q", got)
	}

	// Keys: equal for equal lines (replicas share counters), different otherwise.
	again, _ := Compile([]Limit{{Methods: []string{"post"}, Pattern: "/api/v1/hedging/execute", Rate: "10/m", Burst: 2}})
	if again.Policies[0].Key != s.Policies[1].Key {
		t.Error("the same limit got another key")
	}
	other, _ := Compile([]Limit{{Methods: []string{"POST"}, Pattern: "/api/v1/hedging/execute", Rate: "10/m", Burst: 3}})
	if other.Policies[0].Key == s.Policies[1].Key {
		t.Error("a limit with another burst shares the key")
	}
}

func TestCompileReportsEveryProblem(t *testing.T) {
	_, err := Compile([]Limit{
		{Methods: []string{"*"}, Pattern: "/**", Rate: "10/s"},
		{Methods: []string{"*"}, Pattern: "/**", Rate: "10/s", Burst: 10, Line: 4},
		{Methods: []string{"*"}, Pattern: "x", Rate: "10/x", Line: 5},
		{Methods: []string{"*"}, Pattern: "/a", Rate: "1/s", Burst: -1},
	})
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{
		"limit 2 (line 4): duplicate of limit 1",
		`limit 3 (line 5): bad rate "10/x"`,
		`limit 3 (line 5): bad pattern "x"`,
		"limit 4: burst -1",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}
