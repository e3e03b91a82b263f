package limiter

import (
	"testing"
	"time"
)

func TestHeaders(t *testing.T) {
	s, err := Compile([]Limit{
		{Methods: []string{"*"}, Pattern: "/**", Rate: "100/s", Burst: 200},
		{Methods: []string{"POST"}, Pattern: "/api/v1/hedging/execute", Rate: "10/m", Burst: 2},
	})
	if err != nil {
		t.Fatal(err)
	}
	checked := []Checked{
		{s.Policies[0], Result{Allowed: true, Remaining: 199, ResetAfter: 10 * time.Millisecond}},
		{s.Policies[1], Result{Allowed: false, RetryAfter: 5500 * time.Millisecond, ResetAfter: 11 * time.Second}},
	}
	if got, want := PolicyHeader(checked), `"* /**";q=200;w=2, "POST /api/v1/hedging/execute";q=2;w=12`; got != want {
		t.Errorf("RateLimit-Policy = %s, want %s", got, want)
	}
	if got, want := RateLimitHeader(checked), `"* /**";r=199;t=1, "POST /api/v1/hedging/execute";r=0;t=6`; got != want {
		t.Errorf("RateLimit = %s, want %s", got, want)
	}
}

func TestSFString(t *testing.T) {
	for in, want := range map[string]string{
		`* /a`:       `"* /a"`,
		`GET /"q"\`:  `"GET /\"q\"\\"`,
		"GET /ü":     `"GET /%C3%BC"`,
		"GET /100%":  `"GET /100%25"`,
		"GET /a\x01": `"GET /a%01"`,
	} {
		if got := sfString(in); got != want {
			t.Errorf("sfString(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestCeilSeconds(t *testing.T) {
	for d, want := range map[time.Duration]int64{0: 0, -time.Second: 0, time.Nanosecond: 1, time.Second: 1, 1001 * time.Millisecond: 2} {
		if got := CeilSeconds(d); got != want {
			t.Errorf("CeilSeconds(%s) = %d, want %d", d, got, want)
		}
	}
}
