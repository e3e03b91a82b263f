package verify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/tenantgate/tenantgate/module/audit"
)

// jwxReference is how claims were judged before checkClaims stopped
// building a jwt.Token per request: jwt.Validate with the options each
// issuer had. It stays here as the reference checkClaims must agree with.
func jwxReference(is *issuerState, claims map[string]json.RawMessage, now time.Time, leeway time.Duration) audit.Reason {
	for _, name := range []string{"exp", "nbf", "iat"} {
		if raw, ok := claims[name]; ok && !isJSONNumber(raw) {
			return audit.ReasonMissingClaim
		}
	}
	for _, name := range []string{"sub", "jti"} {
		if raw, ok := claims[name]; ok && !isJSONString(raw) {
			return audit.ReasonMissingClaim
		}
	}
	if raw, ok := claims["aud"]; ok {
		if _, ok := audiences(raw); !ok {
			return audit.ReasonWrongAudience
		}
	}
	tok := jwt.New()
	for _, name := range []string{"exp", "nbf", "iat"} {
		if raw, ok := claims[name]; ok {
			if err := tok.Set(name, json.Number(raw)); err != nil {
				return audit.ReasonMalformedToken
			}
		}
	}
	if raw, ok := claims["aud"]; ok {
		aud, _ := audiences(raw)
		if err := tok.Set("aud", aud); err != nil {
			return audit.ReasonMalformedToken
		}
	}
	expWithin := jwt.ValidatorFunc(func(ctx context.Context, t jwt.Token) jwt.ValidationError {
		if t.Expiration().Unix() <= 0 {
			return jwt.ErrTokenExpired()
		}
		ctx = jwt.SetValidationCtxSkew(ctx, jwt.ValidationCtxSkew(ctx)+time.Second)
		return jwt.IsExpirationValid().Validate(ctx, t)
	})
	audOK := jwt.ValidatorFunc(func(_ context.Context, t jwt.Token) jwt.ValidationError {
		if is.audienceAccepted(t.Audience()) {
			return nil
		}
		return jwt.ErrInvalidAudience()
	})
	err := jwt.Validate(tok, jwt.WithClock(jwt.ClockFunc(func() time.Time { return now })), jwt.WithAcceptableSkew(leeway),
		jwt.WithResetValidators(true), jwt.WithRequiredClaim("exp"), jwt.WithValidator(expWithin),
		jwt.WithValidator(jwt.IsNbfValid()), jwt.WithValidator(jwt.IsIssuedAtValid()), jwt.WithValidator(audOK))
	switch {
	case err == nil:
		return audit.ReasonOK
	case errors.Is(err, jwt.ErrRequiredClaim()):
		return audit.ReasonMissingClaim
	case errors.Is(err, jwt.ErrTokenExpired()):
		return audit.ReasonTokenExpired
	case errors.Is(err, jwt.ErrTokenNotYetValid()), errors.Is(err, jwt.ErrInvalidIssuedAt()):
		return audit.ReasonTokenNotYet
	case errors.Is(err, jwt.ErrInvalidAudience()):
		return audit.ReasonWrongAudience
	}
	return audit.ReasonMissingClaim
}

// checkClaims and jwt.Validate agree on every claim set and clock offset.
func TestClaimsMatchJWXReference(t *testing.T) {
	now := testNow
	n := now.Unix()
	times := []string{
		"0", "1", fmt.Sprint(n), fmt.Sprint(n - 1), fmt.Sprint(n + 1), fmt.Sprint(n - 30), fmt.Sprint(n - 31), fmt.Sprint(n + 30),
		fmt.Sprint(n + 31), fmt.Sprint(n) + ".999", fmt.Sprint(n-31) + ".5", fmt.Sprint(n+31) + ".0", "1.7e9", "17E8",
		"99999999999999999999", "9223372036854775807", `"` + fmt.Sprint(n) + `"`, "null", "-5", "1.", "0.5",
	}
	auds := []string{`"alphapulse-api"`, `["x","alphapulse-api"]`, `[]`, `[""]`, `""`, `"other"`, `5`, `null`, `[null]`, `{"a":1}`, ""}
	v := newVerifier(t, baseConfig(t))
	is := v.issuers[issRSA]
	leeway := 30 * time.Second
	cases := 0
	for _, exp := range append(times, "") {
		for _, nbf := range []string{"", fmt.Sprint(n + 31), fmt.Sprint(n + 30), "0", "1.7e9"} {
			for _, iat := range []string{"", fmt.Sprint(n + 31), fmt.Sprint(n)} {
				for _, aud := range auds {
					claims := map[string]json.RawMessage{"iss": json.RawMessage(`"` + issRSA + `"`), "tenant_id": json.RawMessage(`"acme"`)}
					for name, val := range map[string]string{"exp": exp, "nbf": nbf, "iat": iat, "aud": aud} {
						if val != "" {
							claims[name] = json.RawMessage(val)
						}
					}
					want := jwxReference(is, claims, now, leeway)
					_, e := v.checkClaims(is, claims, &verifiedToken{}, &Identity{Issuer: is.cfg.Issuer})
					got := reasonOf(e)
					if got != want {
						t.Errorf("exp=%s nbf=%s iat=%s aud=%s: checkClaims %s, jwt.Validate %s", exp, nbf, iat, aud, got, want)
					}
					cases++
				}
			}
		}
	}
	if cases < 1000 {
		t.Fatalf("only %d cases", cases)
	}
}
