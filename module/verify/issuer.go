package verify

import (
	"context"
	"fmt"

	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/tenantgate/tenantgate/module/audit"
)

// issuerState is one configured issuer: its keys and the claim checks built
// for it once, when the verifier is made.
type issuerState struct {
	cfg  IssuerConfig
	aud  map[string]struct{}
	src  keySource
	opts []jwt.ValidateOption // jwt.Validate options: times, iss, aud

	// Set for one tenant of a multi-tenant issuer: the tenant its iss
	// names (the request's tenant), and the template it came from.
	tenant   string
	template *templateIssuer
}

func (v *Verifier) newIssuerState(ic IssuerConfig) *issuerState {
	is := &issuerState{cfg: ic, aud: make(map[string]struct{}, len(ic.Audiences))}
	for _, a := range ic.Audiences {
		is.aud[a] = struct{}{}
	}
	is.opts = []jwt.ValidateOption{
		jwt.WithClock(v.clock),
		jwt.WithAcceptableSkew(v.cfg.Leeway),
		jwt.WithResetValidators(true),
		jwt.WithRequiredClaim(jwt.ExpirationKey),
		jwt.WithValidator(expirationWithinLeeway),
		jwt.WithValidator(jwt.IsNbfValid()),
		jwt.WithValidator(jwt.IsIssuedAtValid()),
		jwt.WithIssuer(ic.Issuer),
		jwt.WithValidator(is.audienceValidator()),
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
