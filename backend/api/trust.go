package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/tenantgate/tenantgate/backend/store"
	"github.com/tenantgate/tenantgate/module/assertion"
)

// Principal is the identity the gate asserted for the current request. It is
// the only identity the backend knows: X-Tenant-ID, X-User-ID and
// X-User-Roles are never read.
type Principal struct {
	Tenant    store.TenantID
	UserID    string
	Roles     []string
	RequestID string // the assertion's jti, which the gate also sends as X-Request-ID
	// Expires is the assertion's exp: its jti is remembered until then
	// (plus leeway), so the assertion is accepted once.
	Expires time.Time
}

type principalKey struct{}

// PrincipalFrom returns the principal RequireAssertion put in ctx.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// WithPrincipal returns ctx carrying p. Only RequireAssertion (and tests of
// handlers in isolation) should call it.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// mustPrincipal is for handlers mounted behind RequireAssertion, where a
// missing principal is a wiring bug, not a client error.
func mustPrincipal(r *http.Request) Principal {
	p, ok := PrincipalFrom(r.Context())
	if !ok {
		panic("api: handler mounted without RequireAssertion")
	}
	return p
}

// RequireAssertion returns middleware that admits a request only with a valid
// X-Tenant-Assertion: signed with the gate's key, right iss and aud, within
// exp/iat, and issued for this request's method and path (r.URL.Path, no
// query). Anything else is 401 problem+json, whatever other headers say. On
// success the Principal is in the request context (PrincipalFrom).
func RequireAssertion(v *assertion.Verifier, now func() time.Time) func(http.Handler) http.Handler {
	if now == nil {
		now = time.Now
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			raw := r.Header.Get(assertion.Header)
			if raw == "" {
				writeProblem(w, r, http.StatusUnauthorized, "missing-assertion",
					"this endpoint needs the X-Tenant-Assertion header that tenantgate adds; call it through the gate with a valid bearer token")
				return
			}
			if len(r.Header.Values(assertion.Header)) > 1 {
				writeProblem(w, r, http.StatusUnauthorized, "invalid-assertion",
					"the request carries more than one X-Tenant-Assertion header; send exactly one, through the gate")
				return
			}
			c, err := v.Verify(raw, r.Method, r.URL.Path, now())
			if err != nil {
				setLogReason(r, err.Error())
				detail := "the X-Tenant-Assertion header is not valid (bad signature, issuer, audience or expiry); call the backend through the gate"
				if errors.Is(err, assertion.ErrMismatch) {
					detail = "the X-Tenant-Assertion header was issued for another method or path; every request needs its own assertion from the gate"
				}
				writeProblem(w, r, http.StatusUnauthorized, "invalid-assertion", detail)
				return
			}
			if c.ID == "" || len(c.ID) > store.MaxJTILength {
				setLogReason(r, fmt.Sprintf("jti of %d bytes", len(c.ID)))
				writeProblem(w, r, http.StatusUnauthorized, "invalid-assertion",
					fmt.Sprintf("the X-Tenant-Assertion header needs a jti of 1 to %d characters, which makes it usable once; call the backend through the gate", store.MaxJTILength))
				return
			}
			tenant, err := store.ParseTenantID(c.Tenant)
			if err != nil {
				setLogReason(r, err.Error())
				writeProblem(w, r, http.StatusUnauthorized, "invalid-assertion",
					"the X-Tenant-Assertion header names a malformed tenant (tenants match [A-Za-z0-9._-]{1,64}); check the gate's tenant_claim")
				return
			}
			p := Principal{Tenant: tenant, UserID: c.Subject, Roles: c.Roles, RequestID: c.ID, Expires: c.Expiry.Add(v.Leeway)}
			if info := requestInfoFrom(r.Context()); info != nil {
				info.id = p.RequestID
				w.Header().Set("X-Request-ID", p.RequestID)
				info.tenant, info.user = tenant.String(), p.UserID
			}
			next.ServeHTTP(w, r.WithContext(WithPrincipal(r.Context(), p)))
		})
	}
}

// requireRoles admits a caller whose asserted roles include any of roles
// (none: every asserted caller); otherwise 403 missing_role. It runs after
// RequireAssertion, so the roles are the ones the gate signed, never a header.
func requireRoles(roles []string, next http.Handler) http.Handler {
	if len(roles) == 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := mustPrincipal(r)
		for _, have := range p.Roles {
			if slices.Contains(roles, have) {
				next.ServeHTTP(w, r)
				return
			}
		}
		writeProblem(w, r, http.StatusForbidden, "missing_role",
			fmt.Sprintf("%s %s needs one of the roles %s; the gate asserted %s. Ask for a token with one of them (the gate's rule for this route should require them too)",
				r.Method, r.URL.Path, strings.Join(roles, ", "), describeRoles(p.Roles)))
	})
}

func describeRoles(roles []string) string {
	if len(roles) == 0 {
		return "no roles"
	}
	return strings.Join(roles, ", ")
}
