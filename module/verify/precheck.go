package verify

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/tenantgate/tenantgate/module/audit"
)

// DefaultMaxTokenBytes caps the size of a token when Config.MaxTokenBytes is zero.
const DefaultMaxTokenBytes = 8192

// maxJSONDepth bounds nesting in headers and claims; real tokens nest two or
// three levels, so anything deeper is an attack on the parser, not a token.
const maxJSONDepth = 32

// strictB64 decodes canonical unpadded base64url. It still skips CR and LF,
// which is why canonicalB64 checks the alphabet before anything is decoded.
var strictB64 = base64.RawURLEncoding.Strict()

// compactParts is a token split by PreCheck, once: the three encoded parts,
// the signing input (header.payload) and the protected header, decoded and
// parsed into its members. Nothing later splits or parses the header again.
type compactParts struct {
	header, payload, signature string
	signingInput               string
	headerJSON                 []byte
	headerMembers              map[string]json.RawMessage
}

// PreCheck runs before jwx sees a token. It accepts only the compact JWS
// form: at most max bytes (DefaultMaxTokenBytes when max <= 0), exactly three
// parts, each canonical unpadded base64url (alphabet A-Za-z0-9-_, no '=',
// no whitespace, unused trailing bits zero, so re-encoding gives the same
// string), and a protected header that is a JSON object without duplicate
// members. JWE (five parts, or a header with "enc") and the JSON serialization
// are rejected. Every failure is ReasonMalformedToken.
func PreCheck(raw string, max int) *Error {
	_, e := precheck(raw, max)
	return e
}

func precheck(raw string, max int) (compactParts, *Error) {
	if max <= 0 {
		max = DefaultMaxTokenBytes
	}
	var p compactParts
	if len(raw) > max {
		return p, malformed(fmt.Sprintf("token is %d bytes, more than max_token_bytes (%d)", len(raw), max), nil)
	}
	if raw == "" {
		return p, malformed("token is empty", nil)
	}
	if raw[0] == '{' {
		return p, malformed("JWS JSON serialization is not accepted; send the compact form header.payload.signature", nil)
	}
	switch dots := strings.Count(raw, "."); dots {
	case 2:
	case 4:
		return p, malformed("encrypted tokens (JWE) are not accepted; send a signed JWT (JWS)", nil)
	default:
		return p, malformed(fmt.Sprintf("token has %d parts, a JWT has exactly 3 (header.payload.signature)", dots+1), nil)
	}
	i := strings.IndexByte(raw, '.')
	j := i + 1 + strings.IndexByte(raw[i+1:], '.')
	p.header, p.payload, p.signature = raw[:i], raw[i+1:j], raw[j+1:]
	p.signingInput = raw[:j]
	for _, part := range [...]struct{ name, s string }{{"header", p.header}, {"payload", p.payload}, {"signature", p.signature}} {
		if err := canonicalB64(part.s); err != nil {
			return p, malformed(fmt.Sprintf("token %s is not canonical unpadded base64url", part.name), err)
		}
	}
	if p.header == "" {
		return p, malformed("token header is empty", nil)
	}
	hdr, err := strictB64.DecodeString(p.header)
	if err != nil {
		return p, malformed("token header is not canonical unpadded base64url", err)
	}
	members, err := parseObject(hdr)
	if err != nil {
		return p, malformed("token header is not a valid JSON object", err)
	}
	if _, ok := members["enc"]; ok {
		return p, malformed("encrypted tokens (JWE) are not accepted; send a signed JWT (JWS)", nil)
	}
	p.headerJSON, p.headerMembers = hdr, members
	return p, nil
}

func malformed(detail string, err error) *Error {
	return &Error{Reason: audit.ReasonMalformedToken, Detail: detail, Err: err}
}

// canonicalB64 reports whether s is canonical unpadded base64url without
// decoding it: only the URL-safe alphabet, a length that is not 1 mod 4, and
// zero bits in the unused low part of the last character.
func canonicalB64(s string) error {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("byte %d is outside the base64url alphabet", i)
		}
	}
	switch len(s) % 4 {
	case 1:
		return errors.New("impossible base64 length")
	case 2:
		if b64Value(s[len(s)-1])&0x0f != 0 {
			return errors.New("non-zero unused bits in the last character")
		}
	case 3:
		if b64Value(s[len(s)-1])&0x03 != 0 {
			return errors.New("non-zero unused bits in the last character")
		}
	}
	return nil
}

func b64Value(c byte) byte {
	switch {
	case 'A' <= c && c <= 'Z':
		return c - 'A'
	case 'a' <= c && c <= 'z':
		return c - 'a' + 26
	case '0' <= c && c <= '9':
		return c - '0' + 52
	case c == '-':
		return 62
	}
	return 63
}

// checkJSONObject accepts exactly one JSON object (surrounding whitespace is
// fine) in valid UTF-8, with no member name repeated in any object at any
// depth. Duplicate names are how one parser is made to see a different claim
// than another, so they are refused before jwx decodes anything.
func checkJSONObject(b []byte) error {
	_, err := parseObject(b)
	return err
}

// parseObject is checkJSONObject that also returns the object's top-level
// members, raw, from the same pass: a token's header and payload are walked
// once, and every later step reads the members it needs from this map.
//
// encoding/json says whether b is JSON at all (json.Valid, which allocates
// nothing); a walk over the valid bytes then finds the members and the
// repeated names, at every depth. Names are compared as encoding/json
// decodes them (escapes resolved), so "a" and "\u0061" are the same name.
// parseObjectDecoder in fuzz_test.go is the reference it is fuzzed against.
func parseObject(b []byte) (map[string]json.RawMessage, error) {
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
			return fmt.Errorf("duplicate member %q", truncate(n, 64))
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

// truncate shortens attacker-controlled strings before they reach a log line.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
