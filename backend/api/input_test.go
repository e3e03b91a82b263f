package api

import (
	"strings"
	"testing"
)

func TestCheckJSONText(t *testing.T) {
	for _, ok := range []string{
		`{"a":"x"}`,
		`{"a":"\\u0000"}`,       // an escaped backslash, then the text u0000
		`{"a":"\ud83d\ude00"}`,  // a surrogate pair: one emoji
		`{"a":"\n\t\"\/"}`,      // other escapes
		`[{"a":1},{"a":2}]`,     // the same key in two objects
		`{"a":{"a":{"a":[1]}}}`, // the same key at three depths
		`{"a":[{"b":1},{"b":2}],"b":3}`,
		`{"a":`, // broken JSON: left to the decoder
		`"\u00"`,
	} {
		if err := checkJSONText([]byte(ok)); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for body, want := range map[string]string{
		`{"a":"\u0000"}`:              "NUL",
		`{"a":"x\\\u0000"}`:           "NUL",
		`{"a":"\ud83d"}`:              "lone",
		`{"a":"\ud83d\u0041"}`:        "lone",
		`{"a":"\ude00"}`:              "lone",
		`{"a":1,"a":2}`:               `"a" twice in the top-level object`,
		`{"o":{"k":1,"k":2}}`:         `"k" twice in a nested object`,
		`[{"k":1,"k":2}]`:             `"k" twice`,
		`{"a":[1,{"x":1}],"a":true}`:  `"a" twice`,
		"{\"a\":\"\xc3\x28\"}":        "UTF-8",
		`{"a":{"b":{}},"c":1,"c":[]}`: `"c" twice`,
	} {
		if err := checkJSONText([]byte(body)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", body, err, want)
		}
	}
	for ct, ok := range map[string]bool{
		"application/json": true, "application/json; charset=utf-8": true, "application/problem+json": true,
		"APPLICATION/JSON": true, "text/json": false, "application/jsonx": false, "": false, "text/plain": false, "application/+json;": true,
		"application/x-www-form-urlencoded": false, "bad/; =": false,
		"application/json; charset=UTF-8": true, "application/json; charset=utf-16": false, "application/json; charset=latin1": false,
		"application/json; charset=": false,
	} {
		if err := jsonMediaType(ct); (err == nil) != ok {
			t.Errorf("jsonMediaType(%q) = %v", ct, err)
		}
	}
}

func TestParseDecimal(t *testing.T) {
	for s, want := range map[string]float64{"0": 0, "-0.5": -0.5, "1e3": 1000, "0.0e-400": 0, "2.5E-3": 0.0025, "1e-300": 1e-300} {
		if got, err := parseDecimal(s); err != nil || got != want {
			t.Errorf("parseDecimal(%q) = %v, %v", s, got, err)
		}
	}
	for s, why := range map[string]string{
		"0x1p-2": "not a decimal", "1e400": "too large", "-1e400": "too large", "1e-400": "too small", "1e-320": "too small",
		"Inf": "not a decimal", "NaN": "not a decimal", "+1": "not a decimal", "01": "not a decimal", "1_000": "not a decimal", "": "not a decimal",
	} {
		if _, err := parseDecimal(s); err == nil || !strings.Contains(err.Error(), why) {
			t.Errorf("parseDecimal(%q) = %v, want %q", s, err, why)
		}
	}
	for _, body := range []string{`{"a":1e400}`, `{"a":[1e-400]}`, `{"a":{"b":-1e-330}}`} {
		if err := checkJSONText([]byte(body)); err == nil || !strings.Contains(err.Error(), "out of range") {
			t.Errorf("%s: %v", body, err)
		}
	}
}
