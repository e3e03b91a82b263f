package rules

import "strings"

// SlashTwin returns the path that differs from path only by a trailing
// slash, when a rule admits method on it and no rule admits path itself:
// the hint for a no_route denial ("did you mean /api/v1/ensemble/?").
// Rules match paths exactly, so /api/v1/ensemble and /api/v1/ensemble/
// are different routes, and callers trip over it.
func (t *Table) SlashTwin(method, path string) (string, bool) {
	if t == nil || path == "" || path == "/" {
		return "", false
	}
	alt := path + "/"
	if strings.HasSuffix(path, "/") {
		alt = strings.TrimSuffix(path, "/")
	}
	if _, ok := t.Match(method, alt); ok {
		return alt, true
	}
	return "", false
}
