package verify

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/tenantgate/tenantgate/module/audit"

	"github.com/tenantgate/tenantgate/module/verify/jose"

	"github.com/tenantgate/tenantgate/module/verify/dpop"
)

// Bindings: how a request proved it holds the token, as the audit record,
// the {http.auth.binding} placeholder and the metrics name it.
const (
	BindingDPoP   = "dpop"   // Authorization: DPoP with a proof (RFC 9449)
	BindingMTLS   = "mtls"   // a certificate-bound token (RFC 8705) was checked against the client certificate
	BindingBearer = "bearer" // no proof of possession
)

// Confirmation is a token's cnf claim (RFC 7800) as far as the gate
// enforces it. A token with JKT is DPoP-bound, one with X5TS256
// certificate-bound; such tokens are never accepted as bearer tokens.
type Confirmation struct {
	JKT     string // RFC 7638 SHA-256 thumbprint of the DPoP proof key, base64url
	X5TS256 string // SHA-256 of the client certificate's DER, base64url
	// Unsupported names a confirmation method the gate cannot check (cnf
	// "jwk", "jku", "kid", ...). Such a token is refused: accepting it as a
	// bearer token would drop the binding its issuer asked for.
	Unsupported string
}

// Bound reports whether the token is bound to anything.
func (c Confirmation) Bound() bool { return c.JKT != "" || c.X5TS256 != "" || c.Unsupported != "" }

// parseCnf reads the cnf claim; absent or null means unbound.
func parseCnf(raw json.RawMessage) (Confirmation, error) {
	var c Confirmation
	if raw == nil || jose.IsJSONNull(raw) {
		return c, nil
	}
	members, err := jose.ParseObject(raw)
	if err != nil {
		return c, err
	}
	var other []string
	for name, v := range members {
		var dst *string
		switch name {
		case "jkt":
			dst = &c.JKT
		case "x5t#S256":
			dst = &c.X5TS256
		default:
			other = append(other, name)
			continue
		}
		if err := json.Unmarshal(v, dst); err != nil || *dst == "" {
			return Confirmation{}, fmt.Errorf("cnf %q is not a non-empty string", name)
		}
	}
	if len(other) > 0 {
		sort.Strings(other)
		c.Unsupported = jose.Truncate(strings.Join(other, ","), 64)
	}
	return c, nil
}

// bindingOf names the proof of possession checked for req: dpop when the
// token came with the DPoP scheme, mtls when the token is bound to a
// client certificate, bearer otherwise. id may be nil (the token did not
// verify). Verify puts it in its Result.
func bindingOf(req *Request, id *Identity) string {
	switch {
	case req == nil:
		return ""
	case isDPoPScheme(req.Scheme):
		return BindingDPoP
	case id != nil && id.Cnf.X5TS256 != "":
		return BindingMTLS
	}
	return BindingBearer
}

func isDPoPScheme(s string) bool { return strings.EqualFold(s, "DPoP") }

// checkBinding is the per-request step after the token verified (or came
// from a cache): the issuer's binding requirements, then the DPoP proof
// and the client certificate the token's cnf asks for.
// is is the issuer state that verified the token (for a multi-tenant
// issuer, its tenant's, which carries the block's requirements).
func (v *Verifier) checkBinding(req *Request, is *issuerState, id *Identity) *Error {
	cnf := id.Cnf
	if cnf.Unsupported != "" {
		return fail(audit.ReasonBindingMismatch, fmt.Sprintf("token is bound by a confirmation method the gate cannot check (cnf %s); only cnf.jkt (DPoP) and cnf x5t#S256 (mTLS) are supported", cnf.Unsupported), nil)
	}
	if is != nil {
		if is.cfg.RequiresDPoP() && cnf.JKT == "" {
			return fail(audit.ReasonBindingMismatch, fmt.Sprintf("issuer %q requires DPoP-bound tokens (cnf.jkt); ask the issuer for a DPoP token", id.Issuer), nil)
		}
		if is.cfg.RequiresMTLS() && cnf.X5TS256 == "" {
			return fail(audit.ReasonBindingMismatch, fmt.Sprintf("issuer %q requires certificate-bound tokens (cnf x5t#S256); ask the issuer for one over mutual TLS", id.Issuer), nil)
		}
	}
	proved := isDPoPScheme(req.Scheme)
	switch {
	case cnf.JKT != "" && !proved:
		return fail(audit.ReasonBindingMismatch, "token is DPoP-bound: send it as Authorization: DPoP <token> with a DPoP proof header, never as a bearer token", nil)
	case proved && cnf.JKT == "":
		return fail(audit.ReasonBindingMismatch, "token is not DPoP-bound (no cnf.jkt); send it as Authorization: Bearer <token>", nil)
	case proved:
		proof := dpop.Request{Proofs: req.Header.Values("DPoP"), Method: req.Method, URL: req.URL, Token: req.Token}
		if e := v.dpop.Check(proof, cnf.JKT, v.cfg.Now()); e != nil {
			return e
		}
	}
	if cnf.X5TS256 != "" {
		return checkCertBinding(req, cnf.X5TS256)
	}
	return nil
}

// checkCertBinding compares the client certificate's SHA-256 DER thumbprint
// with cnf x5t#S256 (RFC 8705 §3.1). The certificate is the one a trusted
// proxy forwarded (Request.ClientCert), else the one of this TLS connection.
func checkCertBinding(req *Request, want string) *Error {
	der := req.ClientCert
	if der == nil && req.TLS != nil && len(req.TLS.PeerCertificates) > 0 {
		der = req.TLS.PeerCertificates[0].Raw
	}
	if der == nil {
		return fail(audit.ReasonBindingMismatch, "token is bound to a client certificate (cnf x5t#S256): connect over TLS with that certificate", nil)
	}
	got := CertThumbprint(der)
	if subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		return fail(audit.ReasonBindingMismatch, "the client certificate is not the one the token is bound to (cnf x5t#S256)", errors.New("x5t#S256 mismatch"))
	}
	return nil
}

// CertThumbprint is the x5t#S256 of a DER certificate: base64url, unpadded,
// of its SHA-256.
func CertThumbprint(der []byte) string {
	sum := sha256.Sum256(der)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
