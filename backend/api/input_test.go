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
	} {
		if isJSONMediaType(ct) != ok {
			t.Errorf("isJSONMediaType(%q) = %v", ct, !ok)
		}
	}
}
