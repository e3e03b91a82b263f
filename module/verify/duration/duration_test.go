package duration

import (
	"encoding/json"
	"testing"
	"time"
)

func TestParseDurationDays(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"5m":     5 * time.Minute,
		"1d":     24 * time.Hour,
		"1.5d":   36 * time.Hour,
		"1d12h":  36 * time.Hour,
		"2h1d":   26 * time.Hour,
		"-1d":    -24 * time.Hour,
		"250ms":  250 * time.Millisecond,
		"1d1d1m": 48*time.Hour + time.Minute,
	} {
		got, err := Parse(in)
		if err != nil || got != want {
			t.Errorf("Parse(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "d", "soon", "1dd", "5"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}

// A Duration is written as nanoseconds (as caddy.Duration is) and read
// back from that or from a string.
func TestDurationJSON(t *testing.T) {
	out, err := json.Marshal(struct {
		D Duration `json:"d"`
	}{Duration(90 * time.Second)})
	if err != nil || string(out) != `{"d":90000000000}` {
		t.Fatalf("%s %v", out, err)
	}
	for _, in := range []string{`90000000000`, `"90s"`, `"1m30s"`} {
		var d Duration
		if err := json.Unmarshal([]byte(in), &d); err != nil || time.Duration(d) != 90*time.Second {
			t.Errorf("%s: %v %v", in, time.Duration(d), err)
		}
	}
	var d Duration
	if err := json.Unmarshal([]byte(`"soon"`), &d); err == nil {
		t.Error(`"soon" read as a duration`)
	}
}
