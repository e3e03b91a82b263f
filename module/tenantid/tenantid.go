// Package tenantid is the one tenant grammar of tenantgate. The gate's token
// verification (module/verify), its route rules (module/rules) and the
// backend's store (backend/store) all import it, so a tenant the gate passes
// is exactly a tenant the backend accepts. It imports nothing of Caddy.
package tenantid

import "fmt"

// MaxLen is the longest tenant id, in bytes (every allowed byte is ASCII).
const MaxLen = 64

// Grammar describes valid ids for error messages.
const Grammar = `1-64 characters of A-Z a-z 0-9 . _ - (not "." or "..")`

// Valid reports whether s is a tenant id: 1 to 64 characters of
// [A-Za-z0-9._-], and not "." or "..", which are path segments (a tenant
// lands in paths such as /api/v1/tenants/{tenant}/...).
func Valid(s string) bool { return Check(s) == nil }

// Check is Valid with the reason.
func Check(s string) error {
	if len(s) == 0 || len(s) > MaxLen {
		return fmt.Errorf("tenant id must have 1 to %d characters, has %d", MaxLen, len(s))
	}
	if s == "." || s == ".." {
		return fmt.Errorf("tenant id %q is a path segment, not a tenant", s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("tenant id may hold only [A-Za-z0-9._-], found %q at %d", c, i)
		}
	}
	return nil
}
