package jose

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"unicode/utf8"
)

// parseObjectDecoder is the first parseObject, on encoding/json's Decoder
// token stream: slow (it allocates per token) but plainly right, so it is
// the reference the walker is fuzzed against.
func parseObjectDecoder(b []byte) (map[string]json.RawMessage, error) {
	if !utf8.Valid(b) {
		return nil, errors.New("not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("not a JSON object")
	}
	members := make(map[string]json.RawMessage, 12)
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, err
		}
		name, ok := t.(string)
		if !ok {
			return nil, errors.New("object member name is not a string")
		}
		if _, dup := members[name]; dup {
			return nil, fmt.Errorf("duplicate member %q", Truncate(name, 64))
		}
		start := dec.InputOffset()
		v, err := dec.Token()
		if err != nil {
			return nil, err
		}
		if err := walkValue(dec, v, 1); err != nil {
			return nil, err
		}
		// The span from the end of the name to the end of the value holds
		// the ':' and any whitespace before the value itself.
		members[name] = json.RawMessage(bytes.TrimLeft(b[start:dec.InputOffset()], " \t\r\n:"))
	}
	if _, err := dec.Token(); err != nil { // '}'
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON object")
	}
	return members, nil
}

func walkValue(dec *json.Decoder, tok json.Token, depth int) error {
	d, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	if depth >= maxJSONDepth {
		return errors.New("JSON nested too deeply")
	}
	switch d {
	case '{':
		return walkObject(dec, depth+1)
	case '[':
		for dec.More() {
			t, err := dec.Token()
			if err != nil {
				return err
			}
			if err := walkValue(dec, t, depth+1); err != nil {
				return err
			}
		}
		_, err := dec.Token() // ']'
		return err
	}
	return fmt.Errorf("unexpected %v", d)
}

func walkObject(dec *json.Decoder, depth int) error {
	seen := make(map[string]struct{}, 8)
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		name, ok := t.(string)
		if !ok {
			return errors.New("object member name is not a string")
		}
		if _, dup := seen[name]; dup {
			return fmt.Errorf("duplicate member %q", Truncate(name, 64))
		}
		seen[name] = struct{}{}
		v, err := dec.Token()
		if err != nil {
			return err
		}
		if err := walkValue(dec, v, depth); err != nil {
			return err
		}
	}
	_, err := dec.Token() // '}'
	return err
}

// FuzzParseObject: the walker and the Decoder-based reference agree on
// every input: both refuse it, or both accept it with the same members.
func FuzzParseObject(f *testing.F) {
	for _, s := range parseObjectSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		compareParseObject(t, []byte(s))
	})
}

var parseObjectSeeds = []string{
	`{}`, ` { } `, `{"a":1}`, `{"a":1,"a":2}`, `{"a":1,"\u0061":2}`, `{"a":{"b":1,"b":2}}`, `{"a":[{"b":1,"b":2}]}`,
	`{"a":[1,2,{"c":[]}],"b":"x\"y","c":true,"d":null,"e":-1.5e3}`, `[1]`, `"x"`, `{"a":1}x`, `{"a":1}{}`,
	`{"a" : "b" , "c" :[ ] }`, `{"\ud800":1,"\udbff":2}`, `{"a":"\\"}`, `{"a":"\\\"","b":1}`, `{"":1,"":2}`,
	"{\"a\":\"\xff\"}", `{"a":1,}`, `{"a"}`, `{a:1}`, `{"a":01}`, ` `, ``, `{"x":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`,
	`{"x":` + strings.Repeat("[", 31) + strings.Repeat("]", 31) + `}`, `{"x":` + strings.Repeat("[", 32) + strings.Repeat("]", 32) + `}`,
	`{"x":` + strings.Repeat(`{"y":`, 31) + "1" + strings.Repeat("}", 31) + `}`,
	`{"x":` + strings.Repeat(`{"y":`, 32) + "1" + strings.Repeat("}", 32) + `}`,
	`{"iss":"https://idp","aud":["a","b"],"exp":1700000000,"roles":"a b","tenant_id":"acme"}`,
}

func compareParseObject(t *testing.T, b []byte) {
	t.Helper()
	got, gerr := ParseObject(b)
	want, werr := parseObjectDecoder(b)
	if (gerr == nil) != (werr == nil) {
		t.Fatalf("%q: walker error %v, decoder error %v", b, gerr, werr)
	}
	if gerr != nil {
		return
	}
	if len(got) != len(want) {
		t.Fatalf("%q: walker %d members, decoder %d", b, len(got), len(want))
	}
	for k, v := range want {
		if !bytes.Equal(got[k], v) {
			t.Fatalf("%q: member %q walker %q, decoder %q", b, k, got[k], v)
		}
	}
}

func TestParseObjectMatchesDecoder(t *testing.T) {
	for _, s := range parseObjectSeeds {
		compareParseObject(t, []byte(s))
	}
}

// unmarshalString and stringArray read what json.Unmarshal reads.
func TestJSONStringFastPaths(t *testing.T) {
	for _, raw := range []string{`"a"`, `""`, `"a\"b"`, `"\u0061"`, `"é"`, `"\ud800"`, `null`, `1`, `["x"]`, `"a\\"`} {
		var got, want string
		gerr, werr := UnmarshalString(json.RawMessage(raw), &got), json.Unmarshal([]byte(raw), &want)
		if (gerr == nil) != (werr == nil) || got != want {
			t.Errorf("%s: %q %v, json %q %v", raw, got, gerr, want, werr)
		}
	}
	for _, raw := range []string{`[]`, `["a","b"]`, `[ "a" , null ]`, `[null]`, `null`, `"a"`, `[1]`, `["a",["b"]]`, `{}`, `["\u0061"]`, `[`} {
		got, gerr := StringArray(json.RawMessage(raw))
		var want []*string
		werr := json.Unmarshal([]byte(raw), &want)
		if (gerr == nil) != (werr == nil) {
			t.Errorf("%s: error %v, json %v", raw, gerr, werr)
			continue
		}
		if gerr == nil && fmt.Sprint(deref(got)) != fmt.Sprint(deref(want)) {
			t.Errorf("%s: %v, json %v", raw, deref(got), deref(want))
		}
	}
}

func deref(l []*string) []string {
	out := make([]string, 0, len(l))
	for _, s := range l {
		if s == nil {
			out = append(out, "<nil>")
		} else {
			out = append(out, *s)
		}
	}
	return out
}
