package verify

import (
	"fmt"

	"github.com/tenantgate/tenantgate/module/audit"
)

// issuerState is one configured issuer: its keys and the audience set
// built for it once, when the verifier is made.
type issuerState struct {
	cfg IssuerConfig
	aud map[string]struct{}
	src keySource
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
func (v *Verifier) lookupIssuer(iss string) (*issuerState, *Error) {
	if is := v.issuers[iss]; is != nil {
		return is, nil
	}
	return nil, fail(audit.ReasonUnknownIssuer, fmt.Sprintf("issuer %q is not configured (iss is compared exactly: scheme, case and trailing slash count)", truncate(iss, 128)), nil)
}
