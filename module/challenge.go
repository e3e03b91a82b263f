package tenantgate

import (
	"net/http"
	"strconv"

	"github.com/tenantgate/tenantgate/module/audit"
)

// challenges sets WWW-Authenticate on a denial. A request that did not use
// the DPoP scheme gets the RFC 6750 Bearer challenge as before; every 401
// also carries a DPoP challenge (RFC 9449 §7.1) naming the proof
// algorithms, so a client learns that DPoP is accepted. Each challenge is
// its own header line, so a client reading only the first value still sees
// the one for the scheme it used.
func (g *Gate) challenges(h http.Header, reason audit.Reason, dpop bool) {
	realm := `realm="` + g.Realm + `"`
	h.Del("WWW-Authenticate")
	switch reason.Status() {
	case http.StatusUnauthorized:
		if !dpop {
			if reason == audit.ReasonMissingToken {
				h.Add("WWW-Authenticate", "Bearer "+realm)
			} else {
				h.Add("WWW-Authenticate", "Bearer "+realm+`, error="invalid_token", error_description=`+strconv.Quote(string(reason)))
			}
		}
		c := "DPoP " + realm + `, algs="` + g.dpopAlgs + `"`
		switch {
		case reason == audit.ReasonBadDPoPProof:
			c += `, error="invalid_dpop_proof", error_description=` + strconv.Quote(string(reason))
		case reason == audit.ReasonDPoPNonceRequired:
			c += `, error="use_dpop_nonce", error_description=` + strconv.Quote(string(reason))
		case reason == audit.ReasonMissingToken:
		case dpop || reason == audit.ReasonBindingMismatch:
			c += `, error="invalid_token", error_description=` + strconv.Quote(string(reason))
		}
		h.Add("WWW-Authenticate", c)
		g.challengeNonce(h, dpop)
	case http.StatusForbidden:
		if reason == audit.ReasonMissingRole {
			scheme := "Bearer "
			if dpop {
				scheme = "DPoP "
			}
			h.Add("WWW-Authenticate", scheme+realm+`, error="insufficient_scope"`)
		}
	}
}
