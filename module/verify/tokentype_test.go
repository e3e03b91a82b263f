package verify

import (
	"strings"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/module/audit"
)

func TestTokenType(t *testing.T) {
	k := keys(t)
	cfg := baseConfig(t)
	cfg.Issuers[1].TokenType = "at+jwt" // issEC
	v := newVerifier(t, cfg)
	for typ, want := range map[string]audit.Reason{
		"at+jwt":             "",
		"application/at+jwt": "",
		"AT+JWT":             "",
		"JWT":                audit.ReasonWrongTokenType,
		"":                   audit.ReasonWrongTokenType,
		"at+jwt ":            audit.ReasonWrongTokenType,
		"application/jwt":    audit.ReasonWrongTokenType,
	} {
		t.Run("typ "+typ, func(t *testing.T) {
			extra := map[string]any{}
			if typ != "" {
				extra["typ"] = typ
			}
			id, e := identityOf(v.Verify(t0ctx, Bearer(mint(t, "ES256", k.ec256, "ec1", extra, claimsFor(issEC, nil)))))
			if want == "" {
				if e != nil {
					t.Fatal(e)
				}
				return
			}
			if e == nil || e.Reason != want {
				t.Fatalf("want %s, got %v", want, e)
			}
			if id == nil || id.Issuer != issEC || id.TokenID != "tok-1" {
				t.Fatalf("a verified token's failure should name issuer and jti, got %+v", id)
			}
		})
	}
	t.Run("other issuers do not check typ", func(t *testing.T) {
		if _, e := identityOf(v.Verify(t0ctx, Bearer(mint(t, "EdDSA", k.ed, "ed1", map[string]any{"typ": "JWT"}, claimsFor(issEd, nil))))); e != nil {
			t.Fatal(e)
		}
	})
	t.Run("signature before typ", func(t *testing.T) {
		_, e := identityOf(v.Verify(t0ctx, Bearer(mint(t, "ES256", k.ec384, "ec1", map[string]any{"typ": "JWT"}, claimsFor(issEC, nil)))))
		if e == nil || e.Reason == audit.ReasonWrongTokenType {
			t.Fatalf("an unsigned token learns about typ: %v", e)
		}
	})
	t.Run("config wants the bare type", func(t *testing.T) {
		c := baseConfig(t)
		c.Issuers[0].TokenType = "application/at+jwt"
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "token_type") {
			t.Fatalf("want a token_type problem, got %v", err)
		}
	})
}

// A failure after the signature verified returns the partial identity:
// the issuer and jti, never a tenant to inject.
func TestFailureAfterSignatureNamesIssuerAndToken(t *testing.T) {
	k := keys(t)
	v := newVerifier(t, baseConfig(t))
	for name, over := range map[string]map[string]any{
		"wrong_audience": {"aud": "someone-else"},
		"token_expired":  {"exp": testNow.Add(-time.Hour).Unix()},
		"missing_claim":  {"exp": nil},
	} {
		t.Run(name, func(t *testing.T) {
			id, e := identityOf(v.Verify(t0ctx, Bearer(mint(t, "EdDSA", k.ed, "ed1", nil, claimsFor(issEd, over)))))
			if e == nil || string(e.Reason) != name {
				t.Fatalf("want %s, got %v", name, e)
			}
			if id == nil || id.Issuer != issEd || id.TokenID != "tok-1" || id.Tenant != "" {
				t.Fatalf("identity %+v", id)
			}
		})
	}
	t.Run("bad signature names nobody", func(t *testing.T) {
		id, e := identityOf(v.Verify(t0ctx, Bearer(mint(t, "ES256", k.ec256, "ed1", nil, claimsFor(issEd, nil)))))
		if e == nil || id != nil {
			t.Fatalf("want a failure without identity, got %+v %v", id, e)
		}
	})
}

func TestExplicitZeroLeeway(t *testing.T) {
	k := keys(t)
	just := claimsFor(issEd, map[string]any{"exp": testNow.Add(-2 * time.Second).Unix()})
	tok := mint(t, "EdDSA", k.ed, "ed1", nil, just)
	if _, e := newVerifier(t, baseConfig(t)).Verify(t0ctx, Bearer(tok)); e != nil {
		t.Fatalf("default leeway 30s: %v", e)
	}
	cfg := baseConfig(t)
	cfg.Leeway = new(Duration)
	if _, e := newVerifier(t, cfg).Verify(t0ctx, Bearer(tok)); e == nil || e.Reason != audit.ReasonTokenExpired {
		t.Fatalf("leeway 0s: want token_expired, got %v", e)
	}
	five := Duration(5 * time.Second)
	cfg.Leeway = &five
	if _, e := newVerifier(t, cfg).Verify(t0ctx, Bearer(tok)); e != nil {
		t.Fatalf("leeway 5s: %v", e)
	}
}
