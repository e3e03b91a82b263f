package rules

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// CheckPath takes the path exactly as the client sent it (the escaped
// request-target before any '?') and returns the decoded path the rules
// match, or an error saying what is not canonical. The gate answers such a
// request 400 bad_path with the error text as detail.
//
// Rejected: a path not starting with "/"; dot segments "." and ".."; empty
// segments ("//"), except that one trailing slash is allowed and significant
// ("/a/" is not "/a"); any encoded "." (DESIGN.md forbids it outright, which
// also covers "%2e%2e" and ".%2e"), "/", "\", ";" or control character
// (%00-%1F, %7F); raw "\", ";" or control characters; invalid
// percent-encoding; and paths that are not UTF-8 once decoded.
//
// Other escapes decode (%41 is "A", %20 is " "), so "/%41" and "/A" reach the
// same rule, just as the upstream will read them. Case is significant:
// "/API/v1" is a different path from "/api/v1".
//
// Because "/" can never be encoded, the decoded path has exactly the
// segments the client sent. CheckPath allocates only when the path holds a
// percent-escape.
func CheckPath(escaped string) (string, error) {
	if !strings.HasPrefix(escaped, "/") {
		return "", errors.New(`path must start with "/"`)
	}
	escapes := false
	for i := 0; i < len(escaped); i++ {
		c := escaped[i]
		switch {
		case c == '%':
			if i+2 >= len(escaped) || !isHex(escaped[i+1]) || !isHex(escaped[i+2]) {
				return "", fmt.Errorf("path has an invalid percent-encoding %q at byte %d", escaped[i:min(i+3, len(escaped))], i)
			}
			if err := checkEscaped(unhex(escaped[i+1])<<4|unhex(escaped[i+2]), escaped[i:i+3]); err != nil {
				return "", err
			}
			escapes = true
			i += 2
		case c == '\\':
			return "", errors.New(`path has a backslash ("\")`)
		case c == ';':
			return "", errors.New(`path has a ";" (matrix parameters are not allowed)`)
		case c < 0x20 || c == 0x7f:
			return "", fmt.Errorf("path has a control character (byte 0x%02X)", c)
		}
	}

	decoded := escaped
	if escapes {
		var b strings.Builder
		b.Grow(len(escaped))
		for i := 0; i < len(escaped); i++ {
			if c := escaped[i]; c == '%' {
				b.WriteByte(unhex(escaped[i+1])<<4 | unhex(escaped[i+2]))
				i += 2
			} else {
				b.WriteByte(c)
			}
		}
		decoded = b.String()
	}
	if !utf8.ValidString(decoded) {
		return "", errors.New("path is not valid UTF-8 after decoding")
	}

	rest := decoded[1:]
	for {
		seg, more, found := strings.Cut(rest, "/")
		switch {
		case seg == "" && found:
			return "", errors.New(`path has an empty segment ("//")`)
		case seg == "." || seg == "..":
			return "", fmt.Errorf("path has a dot segment (%q)", seg)
		}
		if !found {
			return decoded, nil
		}
		rest = more
	}
}

// checkEscaped rejects the bytes that must never arrive percent-encoded.
func checkEscaped(b byte, esc string) error {
	switch {
	case b == '/':
		return fmt.Errorf(`path has an encoded "/" (%s)`, esc)
	case b == '\\':
		return fmt.Errorf(`path has an encoded backslash (%s)`, esc)
	case b == '.':
		return fmt.Errorf(`path has an encoded "." (%s); write dots unencoded`, esc)
	case b == ';':
		return fmt.Errorf(`path has an encoded ";" (%s)`, esc)
	case b == 0:
		return fmt.Errorf(`path has an encoded NUL (%s)`, esc)
	case b < 0x20 || b == 0x7f:
		return fmt.Errorf(`path has an encoded control character (%s)`, esc)
	}
	return nil
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}
