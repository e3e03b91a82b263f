package verify

import (
	"bytes"
	"encoding/json"
	"errors"
)

// unmarshalString is json.Unmarshal(raw, dst) for a *string, with a fast
// path for the common case (a string without escapes) that skips
// reflection. raw comes from a document parseObject accepted (valid JSON,
// valid UTF-8), so the bytes between the quotes are the string itself.
func unmarshalString(raw json.RawMessage, dst *string) error {
	if len(raw) >= 2 && raw[0] == '"' && raw[len(raw)-1] == '"' && bytes.IndexByte(raw[1:len(raw)-1], '\\') < 0 &&
		bytes.IndexByte(raw[1:len(raw)-1], '"') < 0 {
		*dst = string(raw[1 : len(raw)-1])
		return nil
	}
	return json.Unmarshal(raw, dst)
}

var errNotStringArray = errors.New("not an array of strings")

// stringArray reads a JSON array of strings and nulls as json.Unmarshal into
// []*string does (nil for null); any other element, or a raw that is not an
// array, is an error.
func stringArray(raw json.RawMessage) ([]*string, error) {
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
			if err := unmarshalString(w.str(), &s); err != nil {
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
