package verify

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/tenantgate/tenantgate/module/audit"
	"github.com/tenantgate/tenantgate/module/verify/jose"
	"github.com/tenantgate/tenantgate/module/verify/keysource"
)

// issuerState is the issuer that verifies one token: its config, the
// audience set built for it once, and its key source. For a tenant of a
// multi-tenant issuer it is made per lookup from the block's shared parts
// and the tenant's keysource.Tenant.
type issuerState struct {
	cfg *IssuerConfig // the block as configured ({tenant} unreplaced for a template)
	iss string        // the exact iss this state verifies
	aud map[string]struct{}
	src keysource.Source

	// Set for one tenant of a multi-tenant issuer: the tenant its iss
	// names (the request's tenant), its held key set, and the config's
	// block that admits it.
	tenant string
	held   *keysource.Tenant
	tmpl   *keysource.Template
}

// live reports whether the state may still verify tokens: always for a
// plain issuer; for a tenant, while its set is held and it is admitted, so
// a cached token of a tenant taken off tenants_file stops passing at once.
func (is *issuerState) live() bool { return is.held == nil || is.tmpl.Live(is.held) }

func newIssuerState(ic *IssuerConfig) *issuerState {
	is := &issuerState{cfg: ic, iss: ic.Issuer, aud: make(map[string]struct{}, len(ic.Audiences))}
	for _, a := range ic.Audiences {
		is.aud[a] = struct{}{}
	}
	return is
}

// tenantIssuer is a multi-tenant issuer block: its tenants' key sets
// (keysource.Template) and the parts every tenant shares.
type tenantIssuer struct {
	keys *keysource.Template
	base *issuerState
}

// lookup returns the state of the tenant iss names; client is the
// request's client address, whose share of the new-tenant budget a tenant
// not held yet spends.
func (t *tenantIssuer) lookup(ctx context.Context, iss, tenant, client string) (*issuerState, *Error) {
	h, e := t.keys.Lookup(ctx, iss, tenant, client)
	if e != nil {
		return nil, e
	}
	return &issuerState{cfg: t.base.cfg, iss: h.Issuer, aud: t.base.aud, src: h.Source(), tenant: h.Name, held: h, tmpl: t.keys}, nil
}

// keySpec is what the key source of ic needs to know.
func (v *Verifier) keySpec(ic *IssuerConfig) keysource.Spec {
	return keysource.Spec{
		Issuer: ic.Issuer, JWKSURL: ic.JWKSURL, OIDCDiscovery: ic.OIDCDiscovery,
		JWKSFile: ic.JWKSFile, PublicKeyFile: ic.PublicKeyFile, HMACSecret: ic.HMACSecret,
		RefreshInterval: time.Duration(ic.RefreshInterval), Algorithms: v.cfg.Algorithms,
	}
}

// lookupIssuer picks the issuer whose keys may verify a token claiming iss.
// iss is read before the signature is checked, only for this choice.
// Exact issuers come first; then multi-tenant issuers in config order,
// where the tenant in iss selects that tenant's key set and no other (its
// keys are fetched now when it has none yet, so ctx bounds the wait, and
// client, the request's address, spends its share of the new-tenant
// budget).
func (v *Verifier) lookupIssuer(ctx context.Context, iss, client string) (*issuerState, *Error) {
	if is := v.issuers[iss]; is != nil {
		return is, nil
	}
	for _, t := range v.templates {
		if tenant, ok := t.keys.Match(iss); ok {
			return t.lookup(ctx, iss, tenant, client)
		}
	}
	return nil, fail(audit.ReasonUnknownIssuer, fmt.Sprintf("issuer %q is not configured (iss is compared exactly: scheme, case and trailing slash count)", jose.Truncate(iss, 128)), nil)
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
	return fail(audit.ReasonWrongTokenType, fmt.Sprintf("issuer %q accepts only tokens of typ %q (RFC 9068 access tokens); this token %s", is.iss, want, got), nil)
}
