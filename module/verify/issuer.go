package verify

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/tenantgate/tenantgate/module/audit"
)

// issuerState is one configured issuer: its keys and the audience set
// built for it once, when the verifier is made.
type issuerState struct {
	cfg IssuerConfig
	aud map[string]struct{}
	src keySource

	// Set for one tenant of a multi-tenant issuer: the tenant its iss
	// names (the request's tenant), and the template it came from.
	tenant   string
	template *templateIssuer
	retired  atomic.Bool // the tenant's set was evicted or the tenant removed
}

// live reports whether the state may still verify tokens: always for a
// plain issuer; for a tenant, while its set is held and it is admitted, so
// a cached token of a tenant taken off tenants_file stops passing at once.
func (is *issuerState) live() bool {
	if is.template == nil {
		return true
	}
	return !is.retired.Load() && is.template.tenants.admits(is.tenant)
}

func (v *Verifier) newIssuerState(ic IssuerConfig) *issuerState {
	is := &issuerState{cfg: ic, aud: make(map[string]struct{}, len(ic.Audiences))}
	for _, a := range ic.Audiences {
		is.aud[a] = struct{}{}
	}
	return is
}

// lookupIssuer picks the issuer whose keys may verify a token claiming iss.
// iss is read before the signature is checked, only for this choice.
// Exact issuers come first; then multi-tenant issuers in config order,
// where the tenant in iss selects that tenant's key set and no other (its
// keys are fetched now when it has none yet, so ctx bounds the wait).
func (v *Verifier) lookupIssuer(ctx context.Context, iss string) (*issuerState, *Error) {
	if is := v.issuers[iss]; is != nil {
		return is, nil
	}
	for _, t := range v.templates {
		if tenant, ok := t.match(iss); ok {
			return t.lookup(ctx, iss, tenant)
		}
	}
	return nil, fail(audit.ReasonUnknownIssuer, fmt.Sprintf("issuer %q is not configured (iss is compared exactly: scheme, case and trailing slash count)", truncate(iss, 128)), nil)
}

// checkTokenType enforces token_type: the JOSE header typ must be the
// configured type, bare or as application/<type> (RFC 9068 §2.1; media
// types compare case-insensitively), so that an ID token whose aud happens
// to be the API's cannot pass as an access token.
func (is *issuerState) checkTokenType(typ string) *Error {
	want := is.cfg.TokenType
	if want == "" {
		return nil
	}
	if strings.EqualFold(typ, want) || strings.EqualFold(typ, "application/"+want) {
		return nil
	}
	got := "has no typ"
	if typ != "" {
		got = "has another typ (an ID token is typ JWT)"
	}
	return fail(audit.ReasonWrongTokenType, fmt.Sprintf("issuer %q accepts only tokens of typ %q (RFC 9068 access tokens); this token %s", is.cfg.Issuer, want, got), nil)
}
