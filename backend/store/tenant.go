package store

import (
	"errors"
	"fmt"
)

// TenantID names the tenant every store call is scoped to. It is a struct
// with an unexported field rather than a string type on purpose: a named
// string type would accept any untyped string constant ("acme"), so a caller
// could still write a query "for" a tenant that nobody validated. The only
// ways to get a non-zero TenantID are ParseTenantID and MustTenantID.
type TenantID struct{ id string }

// ErrNoTenant is returned by every store method that receives the zero TenantID.
var ErrNoTenant = errors.New("store: no tenant")

// ParseTenantID validates s against the gate's tenant grammar,
// [A-Za-z0-9._-]{1,64}.
func ParseTenantID(s string) (TenantID, error) {
	if len(s) == 0 || len(s) > 64 {
		return TenantID{}, fmt.Errorf("tenant id must have 1 to 64 characters, has %d", len(s))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			return TenantID{}, fmt.Errorf("tenant id may hold only [A-Za-z0-9._-], found %q at %d", c, i)
		}
	}
	return TenantID{id: s}, nil
}

// MustTenantID is ParseTenantID for constants (seed data, tests); it panics
// on an invalid id.
func MustTenantID(s string) TenantID {
	t, err := ParseTenantID(s)
	if err != nil {
		panic(err)
	}
	return t
}

// String returns the tenant id.
func (t TenantID) String() string { return t.id }

// IsZero reports whether t was never validated.
func (t TenantID) IsZero() bool { return t.id == "" }

func (t TenantID) check() error {
	if t.id == "" {
		return ErrNoTenant
	}
	return nil
}
