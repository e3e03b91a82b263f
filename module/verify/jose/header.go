package jose

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/tenantgate/tenantgate/module/audit"
	"github.com/tenantgate/tenantgate/module/verify/verr"
)

// Header is what we read from a protected header.
type Header struct {
	Alg, Kid, Typ string
}

// CheckHeader refuses headers that name their own keys or ask for features
// we do not implement, and reads alg, kid and typ from the members PreCheck
// already parsed.
func CheckHeader(m map[string]json.RawMessage) (Header, *verr.Error) {
	var h Header
	for _, name := range [...]string{"jku", "x5u", "jwk", "x5c"} {
		if _, ok := m[name]; ok {
			return h, verr.New(audit.ReasonBadHeader, fmt.Sprintf("token header carries %q; keys come only from the issuer's configuration, never from the token", name), nil)
		}
	}
	if _, ok := m["crit"]; ok {
		return h, verr.New(audit.ReasonBadHeader, `token header has "crit"; no critical header extension is supported`, nil)
	}
	if _, ok := m["b64"]; ok {
		return h, verr.New(audit.ReasonBadHeader, `token header has "b64"; unencoded payloads (RFC 7797) are not supported`, nil)
	}
	rawAlg, ok := m["alg"]
	if !ok {
		return h, verr.New(audit.ReasonBadAlgorithm, "token header has no alg", nil)
	}
	if err := UnmarshalString(rawAlg, &h.Alg); err != nil {
		return h, verr.New(audit.ReasonBadAlgorithm, "token header alg is not a string", err)
	}
	if strings.EqualFold(h.Alg, "none") {
		return h, verr.New(audit.ReasonBadAlgorithm, `alg "none" is never accepted; tokens must be signed`, nil)
	}
	if rawKid, ok := m["kid"]; ok {
		if err := UnmarshalString(rawKid, &h.Kid); err != nil {
			return h, verr.New(audit.ReasonBadHeader, "token header kid is not a string", err)
		}
	}
	// typ is only judged where an issuer pins token_type; a typ that is not
	// a string reads as none and fails that check.
	if rawTyp, ok := m["typ"]; ok {
		_ = UnmarshalString(rawTyp, &h.Typ)
	}
	return h, nil
}
