package rules

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// A pattern and a path are both seen as the list of segments after the
// leading "/": "/" is [""], "/a" is ["a"], "/a/" is ["a", ""]. The empty last
// segment is what makes a trailing slash significant, and it lets "**" (zero
// or more segments) cover "/a", "/a/" and "/a/b" alike.

type segKind uint8

const (
	segLiteral segKind = iota // text must equal the path segment
	segParam                  // {text}: any non-empty segment
	segRest                   // **: everything that remains, possibly nothing
)

type segment struct {
	kind segKind
	text string // literal text or parameter name
}

func (s segment) String() string {
	switch s.kind {
	case segParam:
		return "{" + s.text + "}"
	case segRest:
		return "**"
	}
	return s.text
}

// parsePattern splits and checks a rule or route pattern. It reports every
// problem; segments are returned only when there is none.
func parsePattern(p string) ([]segment, []error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("bad pattern %q: %s", p, fmt.Sprintf(format, a...))
	}
	if !strings.HasPrefix(p, "/") {
		return nil, []error{bad(`must start with "/"`)}
	}
	if !utf8.ValidString(p) {
		return nil, []error{bad("not valid UTF-8")}
	}
	var errs []error
	parts := strings.Split(p[1:], "/")
	segs := make([]segment, 0, len(parts))
	params := map[string]bool{}
	emptyReported := false
	for i, s := range parts {
		last := i == len(parts)-1
		switch {
		case s == "":
			if !last && !emptyReported {
				errs = append(errs, bad(`empty segment ("//"); only one trailing slash is allowed`))
				emptyReported = true
			}
			segs = append(segs, segment{kind: segLiteral})
		case s == "**":
			if !last {
				errs = append(errs, bad(`"**" must be the last segment`))
			}
			segs = append(segs, segment{kind: segRest})
		case strings.Contains(s, "**"):
			errs = append(errs, bad(`"**" must be a whole segment, not mixed with text (%q)`, s))
		case strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}"):
			name := s[1 : len(s)-1]
			switch {
			case !isParamName(name):
				errs = append(errs, bad("bad parameter %q: want {name}, name of letters, digits and _ not starting with a digit", s))
			case params[name]:
				errs = append(errs, bad("duplicate parameter name {%s}", name))
			default:
				params[name] = true
				segs = append(segs, segment{kind: segParam, text: name})
			}
		case strings.ContainsAny(s, "{}"):
			errs = append(errs, bad("bad parameter segment %q: {name} must be a whole segment", s))
		case strings.Contains(s, "*"):
			errs = append(errs, bad(`bad segment %q: "*" is only allowed as a final "**" segment`, s))
		case s == "." || s == "..":
			errs = append(errs, bad("dot segment %q: such paths are not canonical and are rejected before matching", s))
		case strings.ContainsAny(s, "?#"):
			errs = append(errs, bad(`segment %q contains "?" or "#": patterns match the path alone, without query or fragment`, s))
		case strings.Contains(s, "%"):
			errs = append(errs, bad(`segment %q contains "%%": patterns match the decoded path, write characters unencoded`, s))
		case strings.ContainsFunc(s, func(r rune) bool { return r == ';' || r == '\\' || r < 0x20 || r == 0x7f }):
			errs = append(errs, bad(`segment %q contains ";", "\" or a control character, which canonical paths never hold`, s))
		default:
			segs = append(segs, segment{kind: segLiteral, text: s})
		}
	}
	if errs != nil {
		return nil, errs
	}
	return segs, nil
}

// isParamName reports whether s is a Go-style identifier (ASCII).
func isParamName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9' {
			continue
		}
		return false
	}
	return true
}

// nthSegment returns the k-th segment (0-based) of a path starting with "/",
// without allocating.
func nthSegment(path string, k int) (string, bool) {
	if path == "" || path[0] != '/' {
		return "", false
	}
	rest := path[1:]
	for ; k > 0; k-- {
		i := strings.IndexByte(rest, '/')
		if i < 0 {
			return "", false
		}
		rest = rest[i+1:]
	}
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		rest = rest[:i]
	}
	return rest, true
}
