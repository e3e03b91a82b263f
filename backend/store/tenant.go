package store

import (
	"errors"

	"github.com/tenantgate/tenantgate/module/tenantid"
)

// TenantID names the tenant every store call is scoped to. It is a struct
// with an unexported field rather than a string type on purpose: a named
// string type would accept any untyped string constant ("acme"), so a caller
// could still write a query "for" a tenant that nobody validated. The only
// ways to get a non-zero TenantID are ParseTenantID and MustTenantID.
type TenantID struct{ id string }

// ErrNoTenant is returned by every store method that receives the zero TenantID.
var ErrNoTenant = errors.New("store: no tenant")

// ParseTenantID validates s against the gate's tenant grammar (package
// tenantid: [A-Za-z0-9._-]{1,64}, not "." or "..").
func ParseTenantID(s string) (TenantID, error) {
	if err := tenantid.Check(s); err != nil {
		return TenantID{}, err
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
