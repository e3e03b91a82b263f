// Package verr holds Error, the one failure every layer of token
// verification returns (jose, keysource, dpop and verify itself): a reason
// from the closed set in module/audit, a detail safe to show the caller, and
// the cause for logs. It is a leaf so that every layer can return it without
// importing the layer above.
package verr

import (
	"fmt"
	"time"

	"github.com/tenantgate/tenantgate/module/audit"
)

// Error is a verification failure. Detail is safe to show to the caller: it
// never contains the token, a signature or key material.
type Error struct {
	Reason audit.Reason // from module/audit
	Detail string       // what is wrong and what to fix
	Err    error        // underlying cause, for logs
	// RetryAfter, with ReasonKeysUnavailable, is when a retry may succeed
	// (the next fetch of the issuer's keys); 0 when unknown.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Reason, e.Detail, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Reason, e.Detail)
}

func (e *Error) Unwrap() error { return e.Err }

// New is an Error of reason r.
func New(r audit.Reason, detail string, err error) *Error {
	return &Error{Reason: r, Detail: detail, Err: err}
}
