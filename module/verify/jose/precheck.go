package jose

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/tenantgate/tenantgate/module/audit"
	"github.com/tenantgate/tenantgate/module/verify/verr"
)

// DefaultMaxTokenBytes caps the size of a token when Config.MaxTokenBytes is zero.
const DefaultMaxTokenBytes = 8192

// maxJSONDepth bounds nesting in headers and claims; real tokens nest two or
// three levels, so anything deeper is an attack on the parser, not a token.
const maxJSONDepth = 32

// StrictB64 decodes canonical unpadded base64url. It still skips CR and LF,
// which is why Split checks the alphabet before anything is decoded.
var StrictB64 = base64.RawURLEncoding.Strict()

// Parts is a token split by Split, once: the three encoded parts, the
// signing input (header.payload) and the protected header, decoded and
// parsed into its members. Nothing later splits or parses the header again.
type Parts struct {
	RawHeader, Payload, Signature string
	SigningInput                  string
	HeaderJSON                    []byte
	HeaderMembers                 map[string]json.RawMessage
}

// PreCheck runs before jwx sees a token. It accepts only the compact JWS
// form: at most max bytes (DefaultMaxTokenBytes when max <= 0), exactly three
// parts, each canonical unpadded base64url (alphabet A-Za-z0-9-_, no '=',
// no whitespace, unused trailing bits zero, so re-encoding gives the same
// string), and a protected header that is a JSON object without duplicate
// members. JWE (five parts, or a header with "enc") and the JSON serialization
// are rejected. Every failure is ReasonMalformedToken.
func PreCheck(raw string, max int) *verr.Error {
	_, e := Split(raw, max)
	return e
}

// Split is PreCheck that also returns the parts it accepted.
func Split(raw string, max int) (Parts, *verr.Error) {
	if max <= 0 {
		max = DefaultMaxTokenBytes
	}
	var p Parts
	if len(raw) > max {
		return p, Malformed(fmt.Sprintf("token is %d bytes, more than max_token_bytes (%d)", len(raw), max), nil)
	}
	if raw == "" {
		return p, Malformed("token is empty", nil)
	}
	if raw[0] == '{' {
		return p, Malformed("JWS JSON serialization is not accepted; send the compact form header.Payload.Signature", nil)
	}
	switch dots := strings.Count(raw, "."); dots {
	case 2:
	case 4:
		return p, Malformed("encrypted tokens (JWE) are not accepted; send a signed JWT (JWS)", nil)
	default:
		return p, Malformed(fmt.Sprintf("token has %d parts, a JWT has exactly 3 (header.Payload.Signature)", dots+1), nil)
	}
	i := strings.IndexByte(raw, '.')
	j := i + 1 + strings.IndexByte(raw[i+1:], '.')
	p.RawHeader, p.Payload, p.Signature = raw[:i], raw[i+1:j], raw[j+1:]
	p.SigningInput = raw[:j]
	for _, part := range [...]struct{ name, s string }{{"header", p.RawHeader}, {"payload", p.Payload}, {"signature", p.Signature}} {
		if err := canonicalB64(part.s); err != nil {
			return p, Malformed(fmt.Sprintf("token %s is not canonical unpadded base64url", part.name), err)
		}
	}
	if p.RawHeader == "" {
		return p, Malformed("token header is empty", nil)
	}
	hdr, err := StrictB64.DecodeString(p.RawHeader)
	if err != nil {
		return p, Malformed("token header is not canonical unpadded base64url", err)
	}
	members, err := ParseObject(hdr)
	if err != nil {
		return p, Malformed("token header is not a valid JSON object", err)
	}
	if _, ok := members["enc"]; ok {
		return p, Malformed("encrypted tokens (JWE) are not accepted; send a signed JWT (JWS)", nil)
	}
	p.HeaderJSON, p.HeaderMembers = hdr, members
	return p, nil
}

// Malformed is a ReasonMalformedToken failure.
func Malformed(detail string, err error) *verr.Error {
	return &verr.Error{Reason: audit.ReasonMalformedToken, Detail: detail, Err: err}
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
