package tenantgate

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/tenantgate/tenantgate/module/revocation"
	"github.com/tenantgate/tenantgate/module/verify"
)

// The OpenID Connect Back-Channel Logout 1.0 receiver (backchannel_logout_path).
//
// The OP POSTs logout_token=<JWT> as application/x-www-form-urlencoded
// (§2.5). The token is validated as §2.6 says (verify.VerifyLogoutToken:
// the issuer's keys and alg allow-list, iss, aud, iat, exp, sub and/or
// sid, the logout event, no nonce, typ logout+jwt when present), its jti
// must be new (§2.6 step 8: remembered per process and, with a
// shared_store, across replicas), and then the subject's tokens and the
// session's tokens issued up to now are revoked (§2.7). The answer is 200
// with Cache-Control: no-store (§2.8); anything wrong is 400 with an OAuth
// error body ({"error":"invalid_request","error_description":...}) and
// revokes nothing.

// logoutError is the body of a refused logout request (§2.8, RFC 6749 §5.2).
type logoutError struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

// readLogoutForm takes the logout token from a back-channel logout body.
// Other parameters are ignored (§2.5); logout_token must appear once.
func readLogoutForm(contentType string, body []byte) (string, error) {
	if !mediaTypeIs(contentType, "application/x-www-form-urlencoded") {
		return "", errors.New("Content-Type must be application/x-www-form-urlencoded (a form with logout_token)")
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return "", fmt.Errorf("the body is not a valid form: %w", err)
	}
	tokens := form["logout_token"]
	switch {
	case len(tokens) == 0 || tokens[0] == "":
		return "", errors.New("the form has no logout_token")
	case len(tokens) > 1:
		return "", errors.New("the form has logout_token more than once")
	}
	return tokens[0], nil
}

func (g *Gate) serveBackchannelLogout(w http.ResponseWriter, r *http.Request) {
	remote := remoteIP(r)
	refuse := func(status int, issuer, tokenID, detail string) {
		g.auditSink().write("revocation refused", &receiverRecord{event: "revocation_refused", source: revocation.SourceBackchannelLogout,
			issuer: issuer, tokenID: tokenID, remote: remote, refusal: "invalid_request", detail: detail, status: status})
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if status == http.StatusMethodNotAllowed {
			w.Header().Set("Allow", http.MethodPost)
		}
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(logoutError{Error: "invalid_request", Description: detail})
	}
	if r.Method != http.MethodPost {
		refuse(http.StatusMethodNotAllowed, "", "", "a back-channel logout request is a POST")
		return
	}
	body, err := g.receiverBody(w, r)
	if err != nil {
		refuse(http.StatusBadRequest, "", "", err.Error())
		return
	}
	raw, err := readLogoutForm(r.Header.Get("Content-Type"), body)
	if err != nil {
		refuse(http.StatusBadRequest, "", "", err.Error())
		return
	}
	v := g.eventVerifier()
	if v == nil {
		refuse(http.StatusBadRequest, "", "", "this gate cannot verify logout tokens")
		return
	}
	lt, e := v.VerifyLogoutToken(r.Context(), raw, remote)
	if e != nil {
		refuse(http.StatusBadRequest, "", "", "logout token refused ("+string(e.Reason)+"): "+e.Detail)
		return
	}
	now := time.Now()
	before := revokeBefore(now, lt.IssuedAt)
	entries, err := revocation.FromLogout(lt.Issuer, lt.Subject, lt.Sid, now, before)
	if err != nil {
		refuse(http.StatusBadRequest, lt.Issuer, lt.JTI, "logout token names no subject or session that can be revoked: "+err.Error())
		return
	}
	if !g.claimEventJTI(r.Context(), "logout", lt.Issuer, lt.JTI, lt.RememberUntil(verify.LogoutTokenProfile, v.Leeway())) {
		refuse(http.StatusBadRequest, lt.Issuer, lt.JTI, "a logout token with this jti was already received (replay)")
		return
	}
	if err := g.revokeEntries(r.Context(), entries, remote, lt.JTI); err != nil {
		refuse(http.StatusBadRequest, lt.Issuer, lt.JTI, "the logout could not be applied: "+err.Error())
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}
