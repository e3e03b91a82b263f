// Package duration holds Duration, a time.Duration in the gate's JSON
// config read the way Caddy reads its own, for the config structs of
// verify and verify/dpop, which do not import Caddy. It is a leaf so that
// both can use it.
package duration

import (
	"encoding/json"
	"errors"
	"strconv"
	"time"
)

// Duration is a time.Duration in a JSON config, read the way Caddy reads
// its own (caddy.Duration): a string such as "5m" or "1d" (a day is 24h),
// or a number of nanoseconds. It is written as a number of nanoseconds,
// as caddy.Duration is, so a config adapted from a Caddyfile is byte for
// byte what it was when the module's structs used caddy.Duration. A
// module test (TestVerifyDurationIsCaddyDuration) compares the two.
type Duration time.Duration

// UnmarshalJSON accepts a duration string or a number of nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if len(b) == 0 {
		return errors.New("empty duration")
	}
	var dur time.Duration
	var err error
	if len(b) >= 2 && b[0] == '"' && b[len(b)-1] == '"' {
		dur, err = Parse(string(b[1 : len(b)-1]))
	} else {
		err = json.Unmarshal(b, &dur)
	}
	*d = Duration(dur)
	return err
}

// Parse is time.ParseDuration with one more unit, "d" (24h), as
// Caddy reads durations ("1d12h"): each number before a d is rewritten in
// hours, then the standard parser reads the result.
func Parse(s string) (time.Duration, error) {
	if len(s) > 1024 {
		return 0, errors.New("parsing duration: input string too long")
	}
	start, inNumber := 0, false
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if ch == 'd' {
			days, err := strconv.ParseFloat(s[start:i], 64)
			if err != nil {
				return 0, err
			}
			hours := strconv.FormatFloat(days*24, 'f', -1, 64)
			s = s[:start] + hours + "h" + s[i+1:]
			i = start + len(hours) // the "h" just written
			inNumber = false
			continue
		}
		if !inNumber {
			start = i
		}
		inNumber = (ch >= '0' && ch <= '9') || ch == '.' || ch == '-' || ch == '+'
	}
	return time.ParseDuration(s)
}
