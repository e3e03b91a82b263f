package tenantgate

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tenantgate/tenantgate/module/audit"
	"github.com/tenantgate/tenantgate/module/revocation"
	"github.com/tenantgate/tenantgate/module/verify"
)

// The Shared Signals push receiver (ssf_receiver_path): RFC 8935 delivery
// of Security Event Tokens (RFC 8417) from one of the gate's issuers.
//
// The transmitter POSTs the SET as application/secevent+jwt (§2). It is
// verified with its issuer's keys and rules (verify.VerifySET: alg
// allow-list, iss one of the gate's issuers, aud one of that issuer's
// audiences, iat, jti, typ secevent+jwt when present), its jti must be new,
// and its CAEP events are applied (revocation.FromSET). The answer is 202
// with an empty body (§2.2), also for a valid SET whose events the gate does
// not act on; a SET that fails is 400 with {"err":...,"description":...}
// (§2.3), err one of the §2.4 codes, and revokes nothing.

// RFC 8935 §2.4 error codes.
const (
	ssfInvalidRequest  = "invalid_request"
	ssfInvalidKey      = "invalid_key"
	ssfInvalidIssuer   = "invalid_issuer"
	ssfInvalidAudience = "invalid_audience"
	ssfAccessDenied    = "access_denied"
)

// ssfError is the body of a refused push (RFC 8935 §2.3).
type ssfError struct {
	Err         string `json:"err,omitempty"`
	Description string `json:"description"`
}

// ssfErrorCode maps a verification failure to its RFC 8935 code: an issuer
// the gate does not know is invalid_issuer, an audience not the issuer's is
// invalid_audience, a signature no key of the issuer verifies (or an
// algorithm the keys or allow-list refuse, none included) is invalid_key,
// and everything else about the SET is invalid_request.
func ssfErrorCode(r audit.Reason) string {
	switch r {
	case audit.ReasonUnknownIssuer:
		return ssfInvalidIssuer
	case audit.ReasonWrongAudience:
		return ssfInvalidAudience
	case audit.ReasonBadSignature, audit.ReasonUnknownKey, audit.ReasonBadAlgorithm:
		return ssfInvalidKey
	}
	return ssfInvalidRequest
}

func (g *Gate) serveSSF(w http.ResponseWriter, r *http.Request) {
	remote := remoteIP(r)
	answer := func(status int, code, issuer, tokenID, detail string) {
		g.auditSink().write("revocation refused", &receiverRecord{event: "revocation_refused", source: revocation.SourceSSF,
			issuer: issuer, tokenID: tokenID, remote: remote, refusal: code, detail: detail, status: status})
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if status == http.StatusMethodNotAllowed {
			w.Header().Set("Allow", http.MethodPost)
		}
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(ssfError{Err: code, Description: detail})
	}
	if r.Method != http.MethodPost {
		answer(http.StatusMethodNotAllowed, ssfInvalidRequest, "", "", "SETs are delivered by POST (RFC 8935)")
		return
	}
	body, err := g.receiverBody(w, r)
	if err != nil {
		answer(http.StatusBadRequest, ssfInvalidRequest, "", "", err.Error())
		return
	}
	if !mediaTypeIs(r.Header.Get("Content-Type"), "application/secevent+jwt") {
		answer(http.StatusBadRequest, ssfInvalidRequest, "", "", "Content-Type must be application/secevent+jwt (RFC 8935 §2)")
		return
	}
	v := g.eventVerifier()
	if v == nil {
		answer(http.StatusServiceUnavailable, "", "", "", "this gate cannot verify SETs")
		return
	}
	set, e := v.VerifySET(r.Context(), strings.TrimSpace(string(body)), remote)
	if e != nil {
		if e.Reason == audit.ReasonKeysUnavailable {
			// Not the SET's fault: a general HTTP error the transmitter
			// retries (RFC 8935 §2.3), not a §2.4 code.
			if e.RetryAfter > 0 {
				w.Header().Set("Retry-After", strconv.Itoa(int((e.RetryAfter+time.Second-1)/time.Second)))
			}
			answer(http.StatusServiceUnavailable, "", "", "", e.Detail)
			return
		}
		answer(http.StatusBadRequest, ssfErrorCode(e.Reason), "", "", "SET refused ("+string(e.Reason)+"): "+e.Detail)
		return
	}
	now := time.Now()
	before := revokeBefore(now, set.IssuedAt)
	res, err := revocation.FromSET(set.Issuer, set.Claims, set.Events, now, before)
	if err != nil {
		code := ssfInvalidRequest
		if errors.Is(err, revocation.ErrForeignSubject) {
			code = ssfAccessDenied
		}
		answer(http.StatusBadRequest, code, set.Issuer, set.JTI, err.Error())
		return
	}
	if !g.claimEventJTI(r.Context(), "set", set.Issuer, set.JTI, set.RememberUntil(verify.SETProfile, v.Leeway())) {
		answer(http.StatusBadRequest, ssfInvalidRequest, set.Issuer, set.JTI, "a SET with this jti was already received (replay)")
		return
	}
	if err := g.revokeEntries(r.Context(), res.Entries, remote, set.JTI); err != nil {
		status := http.StatusInternalServerError
		if errors.Is(err, revocation.ErrFull) {
			status = http.StatusInsufficientStorage
		}
		answer(status, "", set.Issuer, set.JTI, "the SET could not be applied: "+err.Error())
		return
	}
	if len(res.Ignored) > 0 {
		g.auditSink().write("security event ignored", &receiverRecord{event: "security_event_ignored", source: revocation.SourceSSF,
			issuer: set.Issuer, tokenID: set.JTI, remote: remote, status: http.StatusAccepted, eventTypes: res.Ignored})
	}
	w.WriteHeader(http.StatusAccepted)
}
