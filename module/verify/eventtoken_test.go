package verify

import (
	"strings"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/module/audit"
)

// logoutClaims are valid logout token claims of iss, with overrides (nil
// deletes a claim).
func logoutClaims(iss string, overrides map[string]any) map[string]any {
	c := map[string]any{
		"iss":    iss,
		"aud":    aud,
		"sub":    "user-1",
		"sid":    "session-1",
		"iat":    testNow.Unix(),
		"exp":    testNow.Add(2 * time.Minute).Unix(),
		"jti":    "logout-1",
		"events": map[string]any{BackchannelLogoutEvent: map[string]any{}},
	}
	return override(c, overrides)
}

func TestVerifyLogoutTokenAccepts(t *testing.T) {
	k := keys(t)
	v := newVerifier(t, baseConfig(t))
	for _, tc := range []struct {
		name   string
		header map[string]any
		claims map[string]any
		sub    string
		sid    string
	}{
		{"sub and sid, typ logout+jwt", map[string]any{"typ": "logout+jwt"}, logoutClaims(issRSA, nil), "user-1", "session-1"},
		{"typ application/logout+jwt", map[string]any{"typ": "application/Logout+JWT"}, logoutClaims(issRSA, nil), "user-1", "session-1"},
		{"no typ", nil, logoutClaims(issRSA, nil), "user-1", "session-1"},
		{"sub only", nil, logoutClaims(issRSA, map[string]any{"sid": nil}), "user-1", ""},
		{"sid only", nil, logoutClaims(issRSA, map[string]any{"sub": nil}), "", "session-1"},
		{"aud array", nil, logoutClaims(issRSA, map[string]any{"aud": []string{"x", aud}}), "user-1", "session-1"},
		{"unknown claims ignored", nil, logoutClaims(issRSA, map[string]any{"other": 1}), "user-1", "session-1"},
		{"event value with members", nil, logoutClaims(issRSA, map[string]any{"events": map[string]any{BackchannelLogoutEvent: map[string]any{"x": 1}, "urn:other": map[string]any{}}}), "user-1", "session-1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok := mint(t, "RS256", k.rsa, "", tc.header, tc.claims)
			lt, e := v.VerifyLogoutToken(t0ctx, tok, "192.0.2.1")
			if e != nil {
				t.Fatalf("refused: %v", e)
			}
			if lt.Issuer != issRSA || lt.Subject != tc.sub || lt.Sid != tc.sid || lt.JTI != "logout-1" || !lt.IssuedAt.Equal(testNow) {
				t.Fatalf("%+v", lt)
			}
		})
	}
}

func TestVerifyLogoutTokenRefuses(t *testing.T) {
	k := keys(t)
	v := newVerifier(t, baseConfig(t))
	good := func(o map[string]any) string { return mint(t, "RS256", k.rsa, "", nil, logoutClaims(issRSA, o)) }
	for _, tc := range []struct {
		name  string
		tok   string
		why   audit.Reason
		words string
	}{
		{"another key", mint(t, "RS256", k.rsa2, "", nil, logoutClaims(issRSA, nil)), audit.ReasonBadSignature, "signature"},
		{"HMAC issuer key on the RSA issuer", mint(t, "HS256", k.hmac, "", nil, logoutClaims(issRSA, nil)), audit.ReasonBadAlgorithm, ""},
		{"alg none", b64.EncodeToString([]byte(`{"alg":"none"}`)) + "." + b64.EncodeToString([]byte(mustJSON(t, logoutClaims(issRSA, nil)))) + ".", audit.ReasonBadAlgorithm, "none"},
		{"alg not allowed", mint(t, "RS384", k.rsa, "", nil, logoutClaims(issRSA, nil)), audit.ReasonBadAlgorithm, "allowed"},
		{"unknown issuer", good(map[string]any{"iss": "https://nobody.example"}), audit.ReasonUnknownIssuer, ""},
		{"wrong audience", good(map[string]any{"aud": "someone-else"}), audit.ReasonWrongAudience, "aud"},
		{"no audience", good(map[string]any{"aud": nil}), audit.ReasonWrongAudience, "aud"},
		{"expired", good(map[string]any{"exp": testNow.Add(-time.Minute).Unix()}), audit.ReasonTokenExpired, "expired"},
		{"no exp", good(map[string]any{"exp": nil}), audit.ReasonMissingClaim, "exp"},
		{"no iat", good(map[string]any{"iat": nil}), audit.ReasonMissingClaim, "iat"},
		{"iat in the future", good(map[string]any{"iat": testNow.Add(time.Hour).Unix(), "exp": testNow.Add(2 * time.Hour).Unix()}), audit.ReasonTokenNotYet, "future"},
		{"iat too old", good(map[string]any{"iat": testNow.Add(-time.Hour).Unix(), "exp": testNow.Add(time.Hour).Unix()}), audit.ReasonTokenExpired, "too old"},
		{"no jti", good(map[string]any{"jti": nil}), audit.ReasonMissingClaim, "jti"},
		{"empty jti", good(map[string]any{"jti": ""}), audit.ReasonMissingClaim, "jti"},
		{"jti not a string", good(map[string]any{"jti": 7}), audit.ReasonMissingClaim, "jti"},
		{"nonce", good(map[string]any{"nonce": "n-0S6_WzA2Mj"}), audit.ReasonMissingClaim, "nonce"},
		{"no events", good(map[string]any{"events": nil}), audit.ReasonMissingClaim, "events"},
		{"events an array", good(map[string]any{"events": []string{BackchannelLogoutEvent}}), audit.ReasonMissingClaim, "events"},
		{"another event only", good(map[string]any{"events": map[string]any{"urn:other": map[string]any{}}}), audit.ReasonMissingClaim, BackchannelLogoutEvent},
		{"event value not an object", good(map[string]any{"events": map[string]any{BackchannelLogoutEvent: true}}), audit.ReasonMissingClaim, BackchannelLogoutEvent},
		{"neither sub nor sid", good(map[string]any{"sub": nil, "sid": nil}), audit.ReasonMissingClaim, "neither"},
		{"empty sub", good(map[string]any{"sub": "", "sid": nil}), audit.ReasonMissingClaim, "sub"},
		{"sid not a string", good(map[string]any{"sid": 12}), audit.ReasonMissingClaim, "sid"},
		{"typ JWT", mint(t, "RS256", k.rsa, "", map[string]any{"typ": "JWT"}, logoutClaims(issRSA, nil)), audit.ReasonWrongTokenType, "logout+jwt"},
		{"typ of a SET", mint(t, "RS256", k.rsa, "", map[string]any{"typ": "secevent+jwt"}, logoutClaims(issRSA, nil)), audit.ReasonWrongTokenType, "logout+jwt"},
		{"typ not a string", mint(t, "RS256", k.rsa, "", map[string]any{"typ": 1}, logoutClaims(issRSA, nil)), audit.ReasonWrongTokenType, "logout+jwt"},
		{"jku header", mint(t, "RS256", k.rsa, "", map[string]any{"jku": "https://evil.example/jwks"}, logoutClaims(issRSA, nil)), audit.ReasonBadHeader, ""},
		{"JWE", "a.b.c.d.e", audit.ReasonMalformedToken, ""},
		{"empty", "", audit.ReasonMalformedToken, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lt, e := v.VerifyLogoutToken(t0ctx, tc.tok, "192.0.2.1")
			if e == nil {
				t.Fatalf("accepted: %+v", lt)
			}
			if e.Reason != tc.why || !strings.Contains(e.Detail, tc.words) {
				t.Fatalf("got %s %q, want %s mentioning %q", e.Reason, e.Detail, tc.why, tc.words)
			}
		})
	}
}

func TestVerifySET(t *testing.T) {
	k := keys(t)
	v := newVerifier(t, baseConfig(t))
	const revoked = "https://schemas.openid.net/secevent/caep/event-type/session-revoked"
	set := func(o map[string]any) map[string]any {
		c := map[string]any{
			"iss":    issEd,
			"aud":    aud,
			"iat":    testNow.Unix(),
			"jti":    "set-1",
			"sub_id": map[string]any{"format": "iss_sub", "iss": issEd, "sub": "user-1"},
			"events": map[string]any{revoked: map[string]any{"event_timestamp": testNow.Unix()}},
		}
		for k, v := range o {
			if v == nil {
				delete(c, k)
				continue
			}
			c[k] = v
		}
		return c
	}
	st, e := v.VerifySET(t0ctx, mint(t, "EdDSA", k.ed, "ed1", map[string]any{"typ": "secevent+jwt"}, set(nil)), "192.0.2.1")
	if e != nil {
		t.Fatal(e)
	}
	if st.Issuer != issEd || st.JTI != "set-1" || len(st.Events) != 1 || st.Events[revoked] == nil || !st.Expiry.IsZero() {
		t.Fatalf("%+v", st)
	}
	// Remembered for the profile's hour from iat, plus leeway.
	if got := st.RememberUntil(SETProfile, 30*time.Second); !got.Equal(testNow.Add(time.Hour + 31*time.Second)) {
		t.Fatalf("remember until %s", got)
	}
	for _, tc := range []struct {
		name string
		tok  string
		why  audit.Reason
	}{
		{"typ logout+jwt", mint(t, "EdDSA", k.ed, "ed1", map[string]any{"typ": "logout+jwt"}, set(nil)), audit.ReasonWrongTokenType},
		{"no events", mint(t, "EdDSA", k.ed, "ed1", nil, set(map[string]any{"events": nil})), audit.ReasonMissingClaim},
		{"empty events", mint(t, "EdDSA", k.ed, "ed1", nil, set(map[string]any{"events": map[string]any{}})), audit.ReasonMissingClaim},
		{"event payload a string", mint(t, "EdDSA", k.ed, "ed1", nil, set(map[string]any{"events": map[string]any{revoked: "x"}})), audit.ReasonMissingClaim},
		{"expired exp", mint(t, "EdDSA", k.ed, "ed1", nil, set(map[string]any{"exp": testNow.Add(-time.Hour).Unix()})), audit.ReasonTokenExpired},
		{"older than an hour", mint(t, "EdDSA", k.ed, "ed1", nil, set(map[string]any{"iat": testNow.Add(-2 * time.Hour).Unix()})), audit.ReasonTokenExpired},
		{"wrong audience", mint(t, "EdDSA", k.ed, "ed1", nil, set(map[string]any{"aud": "x"})), audit.ReasonWrongAudience},
		{"unknown kid", mint(t, "EdDSA", k.ed, "nope", nil, set(nil)), audit.ReasonUnknownKey},
		{"signed by the RSA issuer's key", mint(t, "RS256", k.rsa, "", nil, set(nil)), audit.ReasonBadAlgorithm},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, e := v.VerifySET(t0ctx, tc.tok, "192.0.2.1"); e == nil || e.Reason != tc.why {
				t.Fatalf("got %v, want %s", e, tc.why)
			}
		})
	}
}

// An access token of the issuer is neither a logout token nor a SET: no
// events (and typ JWT on most), so it cannot be replayed at the receivers.
func TestAccessTokenIsNoEventToken(t *testing.T) {
	k := keys(t)
	v := newVerifier(t, baseConfig(t))
	at := mint(t, "RS256", k.rsa, "", nil, claimsFor(issRSA, nil))
	if _, e := v.VerifyLogoutToken(t0ctx, at, "192.0.2.1"); e == nil {
		t.Fatal("an access token passed as a logout token")
	}
	if _, e := v.VerifySET(t0ctx, at, "192.0.2.1"); e == nil {
		t.Fatal("an access token passed as a SET")
	}
	// And a logout token still verifies as an access token only by the
	// issuer's own rules: the event checks do not weaken Verify.
	if _, e := v.Verify(t0ctx, &Request{Token: mint(t, "RS256", k.rsa, "", nil, claimsFor(issRSA, nil))}); e != nil {
		t.Fatal(e)
	}
}

func TestLogoutTokenRememberedUntilItsExp(t *testing.T) {
	lt := EventToken{IssuedAt: testNow, Expiry: testNow.Add(2 * time.Minute)}
	if got := lt.RememberUntil(LogoutTokenProfile, time.Second); !got.Equal(testNow.Add(2*time.Minute + 2*time.Second)) {
		t.Fatalf("%s", got)
	}
	long := EventToken{IssuedAt: testNow, Expiry: testNow.Add(24 * time.Hour)}
	if got := long.RememberUntil(LogoutTokenProfile, 0); !got.Equal(testNow.Add(10*time.Minute + time.Second)) {
		t.Fatalf("%s", got)
	}
}
