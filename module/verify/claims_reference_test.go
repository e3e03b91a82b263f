package verify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/tenantgate/tenantgate/module/audit"
)

// jwxReference is an oracle for checkClaims that shares none of its code:
// claim types are judged on values decoded by encoding/json, audiences by
// hand against the configured list, and times by jwx's jwt.Validate with
// the options each issuer had before checkClaims stopped building a
// jwt.Token per request. ok is false for a value that is not JSON at all,
// which ParseObject refuses before claims are ever judged.
func jwxReference(audiences []string, claims map[string]json.RawMessage, now time.Time, leeway time.Duration) (r audit.Reason, ok bool) {
	decoded := map[string]any{}
	for name, raw := range claims {
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		var v any
		if err := d.Decode(&v); err != nil || d.More() {
			return "", false
		}
		decoded[name] = v
	}
	for _, name := range []string{"exp", "nbf", "iat"} {
		if v, present := decoded[name]; present {
			// A NumericDate is a JSON number, never negative.
			if n, isNum := v.(json.Number); !isNum || strings.HasPrefix(string(n), "-") {
				return audit.ReasonMissingClaim, true
			}
		}
	}
	for _, name := range []string{"sub", "jti"} {
		if v, present := decoded[name]; present {
			if _, isStr := v.(string); !isStr {
				return audit.ReasonMissingClaim, true
			}
		}
	}
	// aud is one string or an array of strings (RFC 7519 §4.1.3).
	var aud []string
	if v, present := decoded["aud"]; present {
		switch a := v.(type) {
		case string:
			aud = []string{a}
		case []any:
			aud = []string{}
			for _, e := range a {
				s, isStr := e.(string)
				if !isStr {
					return audit.ReasonWrongAudience, true
				}
				aud = append(aud, s)
			}
		default:
			return audit.ReasonWrongAudience, true
		}
	}
	tok := jwt.New()
	for _, name := range []string{"exp", "nbf", "iat"} {
		if raw, present := claims[name]; present {
			if err := tok.Set(name, json.Number(raw)); err != nil {
				return audit.ReasonMalformedToken, true
			}
		}
	}
	expWithin := jwt.ValidatorFunc(func(ctx context.Context, t jwt.Token) jwt.ValidationError {
		if t.Expiration().Unix() <= 0 {
			return jwt.ErrTokenExpired()
		}
		ctx = jwt.SetValidationCtxSkew(ctx, jwt.ValidationCtxSkew(ctx)+time.Second)
		return jwt.IsExpirationValid().Validate(ctx, t)
	})
	// The audience must name a configured one; "" never counts.
	audOK := jwt.ValidatorFunc(func(context.Context, jwt.Token) jwt.ValidationError {
		for _, a := range aud {
			if a != "" && slices.Contains(audiences, a) {
				return nil
			}
		}
		return jwt.ErrInvalidAudience()
	})
	err := jwt.Validate(tok, jwt.WithClock(jwt.ClockFunc(func() time.Time { return now })), jwt.WithAcceptableSkew(leeway),
		jwt.WithResetValidators(true), jwt.WithRequiredClaim("exp"), jwt.WithValidator(expWithin),
		jwt.WithValidator(jwt.IsNbfValid()), jwt.WithValidator(jwt.IsIssuedAtValid()), jwt.WithValidator(audOK))
	switch {
	case err == nil:
		return audit.ReasonOK, true
	case errors.Is(err, jwt.ErrRequiredClaim()):
		return audit.ReasonMissingClaim, true
	case errors.Is(err, jwt.ErrTokenExpired()):
		return audit.ReasonTokenExpired, true
	case errors.Is(err, jwt.ErrTokenNotYetValid()), errors.Is(err, jwt.ErrInvalidIssuedAt()):
		return audit.ReasonTokenNotYet, true
	case errors.Is(err, jwt.ErrInvalidAudience()):
		return audit.ReasonWrongAudience, true
	}
	return audit.ReasonMissingClaim, true
}

// checkClaims and an independent reference (encoding/json for types and
// audiences, jwt.Validate for times) agree on every claim set and clock
// offset.
func TestClaimsMatchJWXReference(t *testing.T) {
	now := testNow
	n := now.Unix()
	times := []string{
		"0", "1", fmt.Sprint(n), fmt.Sprint(n - 1), fmt.Sprint(n + 1), fmt.Sprint(n - 30), fmt.Sprint(n - 31), fmt.Sprint(n + 30),
		fmt.Sprint(n + 31), fmt.Sprint(n) + ".999", fmt.Sprint(n-31) + ".5", fmt.Sprint(n+31) + ".0", "1.7e9", "17E8",
		"99999999999999999999", "9223372036854775807", `"` + fmt.Sprint(n) + `"`, "null", "-5", "1.", "0.5",
	}
	auds := []string{`"alphapulse-api"`, `["x","alphapulse-api"]`, `[]`, `[""]`, `""`, `"other"`, `5`, `null`, `[null]`, `{"a":1}`, ""}
	subs := []string{"", `"user-1"`, `5`, `null`}
	v := newVerifier(t, baseConfig(t))
	is := v.issuers[issRSA]
	leeway := 30 * time.Second
	cases, judged := 0, map[audit.Reason]int{}
	for _, exp := range append(times, "") {
		for _, nbf := range []string{"", fmt.Sprint(n + 31), fmt.Sprint(n + 30), "0", "1.7e9"} {
			for _, iat := range []string{"", fmt.Sprint(n + 31), fmt.Sprint(n)} {
				for _, aud := range auds {
					for _, sub := range subs {
						claims := map[string]json.RawMessage{"iss": json.RawMessage(`"` + issRSA + `"`), "tenant_id": json.RawMessage(`"acme"`)}
						for name, val := range map[string]string{"exp": exp, "nbf": nbf, "iat": iat, "aud": aud, "sub": sub} {
							if val != "" {
								claims[name] = json.RawMessage(val)
							}
						}
						want, ok := jwxReference(is.cfg.Audiences, claims, now, leeway)
						if !ok {
							continue // not JSON: never reaches checkClaims
						}
						_, e := v.checkClaims(is, claims, &verifiedToken{}, &Identity{Issuer: is.iss})
						got := reasonOf(e)
						if got != want {
							t.Errorf("exp=%s nbf=%s iat=%s aud=%s sub=%s: checkClaims %s, reference %s", exp, nbf, iat, aud, sub, got, want)
						}
						judged[want]++
						cases++
					}
				}
			}
		}
	}
	if cases < 1000 {
		t.Fatalf("only %d cases", cases)
	}
	// The oracle must tell every outcome apart, or agreement proves little.
	for _, r := range []audit.Reason{audit.ReasonOK, audit.ReasonMissingClaim, audit.ReasonWrongAudience, audit.ReasonTokenExpired, audit.ReasonTokenNotYet, audit.ReasonMalformedToken} {
		if judged[r] == 0 {
			t.Errorf("no case where the reference says %s", r)
		}
	}
}
