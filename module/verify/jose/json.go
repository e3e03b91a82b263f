package jose

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// The JSON walker: one pass over a header, payload or JWK that finds its
// top-level members and refuses what would let two parsers disagree.

// CheckJSONObject accepts exactly one JSON object (surrounding whitespace is
// fine) in valid UTF-8, with no member name repeated in any object at any
// depth. Duplicate names are how one parser is made to see a different claim
// than another, so they are refused before jwx decodes anything.
func CheckJSONObject(b []byte) error {
	_, err := ParseObject(b)
	return err
}

// ParseObject is CheckJSONObject that also returns the object's top-level
// members, raw, from the same pass: a token's header and payload are walked
// once, and every later step reads the members it needs from this map.
//
// encoding/json says whether b is JSON at all (json.Valid, which allocates
// nothing); a walk over the valid bytes then finds the members and the
// repeated names, at every depth. Names are compared as encoding/json
// decodes them (escapes resolved), so "a" and "\u0061" are the same name.
// parseObjectDecoder in fuzz_test.go is the reference it is fuzzed against.
func ParseObject(b []byte) (map[string]json.RawMessage, error) {
	if !utf8.Valid(b) {
		return nil, errors.New("not valid UTF-8")
	}
	if !json.Valid(b) {
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			return nil, err
		}
		return nil, errors.New("not valid JSON")
	}
	w := objectWalker{b: b}
	w.space()
	if w.i >= len(b) || b[w.i] != '{' {
		return nil, errors.New("not a JSON object")
	}
	members := make(map[string]json.RawMessage, 8) // 8 fits one map group: no table for a header
	if err := w.object(0, members); err != nil {
		return nil, err
	}
	return members, nil
}

// objectWalker steps through JSON that json.Valid accepted.
type objectWalker struct {
	b []byte
	i int
}

func (w *objectWalker) space() {
	for w.i < len(w.b) {
		switch w.b[w.i] {
		case ' ', '\t', '\n', '\r':
			w.i++
		default:
			return
		}
	}
}

// str steps over the string at w.i and returns it with its quotes.
func (w *objectWalker) str() []byte {
	start := w.i
	w.i++ // opening quote
	for w.b[w.i] != '"' {
		if w.b[w.i] == '\\' {
			w.i++ // the escaped character (or the 'u' of \uXXXX)
		}
		w.i++
	}
	w.i++ // closing quote
	return w.b[start:w.i]
}

// name returns a member name as encoding/json decodes it.
func name(quoted []byte) (string, error) {
	if bytes.IndexByte(quoted, '\\') < 0 {
		return string(quoted[1 : len(quoted)-1]), nil
	}
	var s string
	err := json.Unmarshal(quoted, &s)
	return s, err
}

// value steps over one value; depth counts the objects and arrays around it.
func (w *objectWalker) value(depth int) error {
	switch w.b[w.i] {
	case '{', '[':
		if depth >= maxJSONDepth {
			return errors.New("JSON nested too deeply")
		}
		if w.b[w.i] == '{' {
			return w.object(depth, nil)
		}
		w.i++
		w.space()
		if w.b[w.i] == ']' {
			w.i++
			return nil
		}
		for {
			w.space()
			if err := w.value(depth + 1); err != nil {
				return err
			}
			w.space()
			c := w.b[w.i]
			w.i++
			if c == ']' {
				return nil
			}
		}
	case '"':
		w.str()
		return nil
	}
	for w.i < len(w.b) { // number, true, false, null
		switch w.b[w.i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return nil
		}
		w.i++
	}
	return nil
}

// object steps over the object at w.i, refusing repeated names; members,
// when not nil, receives its members raw.
func (w *objectWalker) object(depth int, members map[string]json.RawMessage) error {
	w.i++ // '{'
	w.space()
	if w.b[w.i] == '}' {
		w.i++
		return nil
	}
	var seen []string // nested objects are small: a linear check beats a map
	for {
		w.space()
		n, err := name(w.str())
		if err != nil {
			return err
		}
		dup := false
		if members != nil {
			_, dup = members[n]
		} else {
			for _, s := range seen {
				dup = dup || s == n
			}
			seen = append(seen, n)
		}
		if dup {
			return fmt.Errorf("duplicate member %q", Truncate(n, 64))
		}
		w.space()
		w.i++ // ':'
		w.space()
		start := w.i
		if err := w.value(depth + 1); err != nil {
			return err
		}
		if members != nil {
			members[n] = json.RawMessage(w.b[start:w.i])
		}
		w.space()
		c := w.b[w.i]
		w.i++
		if c == '}' {
			return nil
		}
	}
}

// Truncate shortens attacker-controlled strings before they reach a log line.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// UnmarshalString is json.Unmarshal(raw, dst) for a *string, with a fast
// path for the common case (a string without escapes) that skips
// reflection. raw comes from a document ParseObject accepted (valid JSON,
// valid UTF-8), so the bytes between the quotes are the string itself.
func UnmarshalString(raw json.RawMessage, dst *string) error {
	if len(raw) >= 2 && raw[0] == '"' && raw[len(raw)-1] == '"' && bytes.IndexByte(raw[1:len(raw)-1], '\\') < 0 &&
		bytes.IndexByte(raw[1:len(raw)-1], '"') < 0 {
		*dst = string(raw[1 : len(raw)-1])
		return nil
	}
	return json.Unmarshal(raw, dst)
}

var errNotStringArray = errors.New("not an array of strings")

// StringArray reads a JSON array of strings and nulls as json.Unmarshal into
// []*string does (nil for null); any other element, or a raw that is not an
// array, is an error.
func StringArray(raw json.RawMessage) ([]*string, error) {
	if !json.Valid(raw) {
		var list []*string
		return list, json.Unmarshal(raw, &list)
	}
	w := objectWalker{b: raw}
	w.space()
	if w.i >= len(raw) || raw[w.i] != '[' {
		if w.i < len(raw) && raw[w.i] == 'n' { // null: no list, no error
			return nil, nil
		}
		return nil, errNotStringArray
	}
	w.i++
	w.space()
	list := []*string{}
	if raw[w.i] == ']' {
		return list, nil
	}
	for {
		w.space()
		switch raw[w.i] {
		case '"':
			var s string
			if err := UnmarshalString(w.str(), &s); err != nil {
				return nil, err
			}
			list = append(list, &s)
		case 'n':
			w.i += len("null")
			list = append(list, nil)
		default:
			return nil, errNotStringArray
		}
		w.space()
		c := raw[w.i]
		w.i++
		if c == ']' {
			return list, nil
		}
	}
}

// FirstByte is the first byte of raw after whitespace, 0 when none.
func FirstByte(raw json.RawMessage) byte {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	if len(raw) == 0 {
		return 0
	}
	return raw[0]
}

// IsJSONNumber accepts non-negative JSON numbers only: a NumericDate before
// 1970 is never legitimate, and jwx refuses negative ones anyway.
func IsJSONNumber(raw json.RawMessage) bool {
	c := FirstByte(raw)
	return '0' <= c && c <= '9'
}

// IsJSONString reports whether raw is a JSON string.
func IsJSONString(raw json.RawMessage) bool { return FirstByte(raw) == '"' }

// IsJSONNull reports whether raw is JSON null.
func IsJSONNull(raw json.RawMessage) bool { return FirstByte(raw) == 'n' }
