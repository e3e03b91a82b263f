package jose

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// FuzzPreCheck: PreCheck never panics, and anything it accepts is exactly
// three canonical base64url parts that decode and re-encode to themselves,
// with a header that is a JSON object.
func FuzzPreCheck(f *testing.F) {
	for _, s := range []string{
		"eyJhbGciOiJIUzI1NiJ9.e30.c2ln",
		"eyJhbGciOiJub25lIn0.e30.",
		"eyJhbGciOiJIUzI1NiJ9.e30=.c2ln",
		"a.b.c.d.e",
		"{\"payload\":\"e30\"}",
		"..",
		"eyJhbGciOiJIUzI1NiJ9\n.e30.c2ln",
		"eyJhbGciOiJIUzI1NiJ9.e31.c2ln",
	} {
		f.Add(s)
	}
	strict := base64.RawURLEncoding.Strict()
	f.Fuzz(func(t *testing.T, raw string) {
		if PreCheck(raw, 0) != nil {
			return
		}
		parts := strings.Split(raw, ".")
		if len(parts) != 3 {
			t.Fatalf("accepted %d parts", len(parts))
		}
		for i, p := range parts {
			b, err := strict.DecodeString(p)
			if err != nil {
				t.Fatalf("part %d does not decode: %v", i, err)
			}
			if again := base64.RawURLEncoding.EncodeToString(b); again != p {
				t.Fatalf("part %d is not canonical: %q re-encodes to %q", i, p, again)
			}
		}
		// The header is judged by an oracle independent of our parser:
		// encoding/json must read it as one object whose top-level names
		// are unique, and those names must be exactly the members precheck
		// handed on.
		names, err := oracleObjectNames(mustDecode(parts[0]))
		if err != nil {
			t.Fatalf("accepted a header that is not a JSON object with unique members: %v", err)
		}
		p, _ := Split(raw, 0)
		if len(p.HeaderMembers) != len(names) {
			t.Fatalf("Split parsed %d header members, encoding/json %d", len(p.HeaderMembers), len(names))
		}
		for _, n := range names {
			if _, ok := p.HeaderMembers[n]; !ok {
				t.Fatalf("header member %q missing from Split's parse", n)
			}
		}
	})
}

// oracleObjectNames reads data with encoding/json alone: one JSON object
// and nothing after it; it returns the top-level names, refusing duplicates.
func oracleObjectNames(data []byte) ([]string, error) {
	if !json.Valid(data) {
		return nil, errors.New("not valid JSON")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return nil, fmt.Errorf("not an object (starts with %v)", tok)
	}
	var names []string
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		name := tok.(string)
		if seen[name] {
			return nil, fmt.Errorf("duplicate member %q", name)
		}
		seen[name] = true
		names = append(names, name)
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return nil, err
		}
	}
	return names, nil
}

func mustDecode(s string) []byte {
	b, _ := base64.RawURLEncoding.DecodeString(s)
	return b
}
