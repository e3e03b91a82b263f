package verify

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/tenantgate/tenantgate/module/verify/jose"
)

// claimPath says where a configured claim lives in the payload: a plain
// claim name (one top-level member), or an RFC 6901 JSON pointer when the
// configured name starts with "/" (tenant_claim /org/id reads
// {"org":{"id":"acme"}}). It is parsed once, from the config.
type claimPath struct {
	name   string   // as configured, for messages
	tokens []string // reference tokens, unescaped; one for a plain name
}

// parseClaimPath reads a claim name or JSON pointer. A pointer's tokens are
// unescaped as RFC 6901 §4 says: "~1" is "/", "~0" is "~" (in that order);
// any other "~" is an error. "/" alone names the member "" (RFC 6901 §5),
// which is legal but useless, so it is refused, as is the whole document ("").
func parseClaimPath(s string) (claimPath, error) {
	p := claimPath{name: s}
	if !strings.HasPrefix(s, "/") {
		if s == "" {
			return p, errors.New("claim name is empty")
		}
		p.tokens = []string{s}
		return p, nil
	}
	for _, raw := range strings.Split(s[1:], "/") {
		tok, err := unescapePointerToken(raw)
		if err != nil {
			return p, fmt.Errorf("JSON pointer %q: %w", s, err)
		}
		if tok == "" {
			return p, fmt.Errorf("JSON pointer %q has an empty reference token", s)
		}
		p.tokens = append(p.tokens, tok)
	}
	return p, nil
}

func unescapePointerToken(raw string) (string, error) {
	if !strings.Contains(raw, "~") {
		return raw, nil
	}
	var b strings.Builder
	for i := 0; i < len(raw); i++ {
		if raw[i] != '~' {
			b.WriteByte(raw[i])
			continue
		}
		if i+1 == len(raw) || (raw[i+1] != '0' && raw[i+1] != '1') {
			return "", errors.New(`"~" must be followed by 0 or 1 (~0 is "~", ~1 is "/")`)
		}
		if raw[i+1] == '0' {
			b.WriteByte('~')
		} else {
			b.WriteByte('/')
		}
		i++
	}
	return b.String(), nil
}

// lookup returns the raw value the path names, and whether it exists. The
// payload was already checked (one object, no duplicate members at any
// depth) by jose.ParseObject, so nested objects decode unambiguously here. Array
// elements are addressed by their decimal index without leading zeros.
func (p claimPath) lookup(claims map[string]json.RawMessage) (json.RawMessage, bool) {
	raw, ok := claims[p.tokens[0]]
	for _, tok := range p.tokens[1:] {
		if !ok {
			return nil, false
		}
		switch jose.FirstByte(raw) {
		case '{':
			var obj map[string]json.RawMessage
			if json.Unmarshal(raw, &obj) != nil {
				return nil, false
			}
			raw, ok = obj[tok]
		case '[':
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || (len(tok) > 1 && tok[0] == '0') {
				return nil, false
			}
			var arr []json.RawMessage
			if json.Unmarshal(raw, &arr) != nil || i >= len(arr) {
				return nil, false
			}
			raw, ok = arr[i], true
		default:
			return nil, false
		}
	}
	return raw, ok
}

func (p claimPath) String() string { return p.name }
