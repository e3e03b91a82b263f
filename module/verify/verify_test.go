package verify

import (
	"crypto/x509"
	"encoding/asn1"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/module/audit"

	"github.com/tenantgate/tenantgate/module/verify/jose"
)

type verifyCase struct {
	name  string
	token string
	want  audit.Reason // "" means success
	check func(t *testing.T, id *Identity)
}

func runVerifyCases(t *testing.T, v *Verifier, cases []verifyCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id, e := identityOf(v.Verify(t0ctx, Bearer(tc.token)))
			if tc.want == "" {
				if e != nil {
					t.Fatalf("want success, got %v", e)
				}
				if id == nil {
					t.Fatal("success without identity")
				}
			} else {
				if e == nil {
					t.Fatalf("want %s, got success", tc.want)
				}
				if e.Reason != tc.want {
					t.Fatalf("want %s, got %v", tc.want, e)
				}
				if e.Detail == "" {
					t.Fatal("error without detail")
				}
				if len(tc.token) > 20 && strings.Contains(e.Detail, tc.token) {
					t.Fatal("detail contains the token")
				}
				if parts := strings.Split(tc.token, "."); len(parts) == 3 && len(parts[2]) > 16 && strings.Contains(e.Error(), parts[2]) {
					t.Fatal("error contains the signature")
				}
			}
			if tc.check != nil {
				tc.check(t, id)
			}
		})
	}
}

func TestVerifyAlgorithmsAndKeys(t *testing.T) {
	k := keys(t)
	v := newVerifier(t, baseConfig(t))
	rsaPEM := pemPublic(t, &k.rsa.PublicKey)
	rsaDER, _ := x509.MarshalPKIXPublicKey(&k.rsa.PublicKey)
	ecPEM := pemPublic(t, &k.ec256.PublicKey)
	ecDER, _ := x509.MarshalPKIXPublicKey(&k.ec256.PublicKey)

	valid := func(t *testing.T, id *Identity) {
		if id.Tenant != "acme" || id.Subject != "user-1" || id.TokenID != "tok-1" {
			t.Fatalf("identity %+v", id)
		}
		if len(id.Roles) != 2 || id.Roles[0] != "ensemble:read" {
			t.Fatalf("roles %v", id.Roles)
		}
		if !id.Expiry.Equal(testNow.Add(5 * time.Minute)) {
			t.Fatalf("expiry %v", id.Expiry)
		}
	}
	ecToken := mint(t, "ES256", k.ec256, "ec1", nil, claimsFor(issEC, nil))
	ecParts := strings.Split(ecToken, ".")
	sig, _ := b64.DecodeString(ecParts[2])
	derSig, _ := asn1.Marshal(struct{ R, S *big.Int }{new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])})

	runVerifyCases(t, v, []verifyCase{
		{"RS256", mint(t, "RS256", k.rsa, "", nil, claimsFor(issRSA, nil)), "", valid},
		{"RS256 with a kid, PEM key has none", mint(t, "RS256", k.rsa, "rotated-2024", nil, claimsFor(issRSA, nil)), "", valid},
		{"PS256", mint(t, "PS256", k.rsa, "", nil, claimsFor(issRSA, nil)), "", valid},
		{"ES256", ecToken, "", valid},
		{"ES256 without kid", mint(t, "ES256", k.ec256, "", nil, claimsFor(issEC, nil)), "", valid},
		{"ES384", mint(t, "ES384", k.ec384, "ec384", nil, claimsFor(issEC, nil)), "", valid},
		{"EdDSA", mint(t, "EdDSA", k.ed, "ed1", nil, claimsFor(issEd, nil)), "", valid},
		{"HS256", mint(t, "HS256", k.hmac, "", nil, claimsFor(issHS, nil)), "", valid},

		{"RS384 not allow-listed", mint(t, "RS384", k.rsa, "", nil, claimsFor(issRSA, nil)), audit.ReasonBadAlgorithm, nil},
		{"RS256 signed by another key", mint(t, "RS256", k.rsa2, "", nil, claimsFor(issRSA, nil)), audit.ReasonBadSignature, nil},
		{"RS256 token under the EC issuer", mint(t, "RS256", k.rsa, "", nil, claimsFor(issEC, nil)), audit.ReasonBadAlgorithm, nil},
		{"ES256 token under the HMAC issuer", mint(t, "ES256", k.ec256, "", nil, claimsFor(issHS, nil)), audit.ReasonBadAlgorithm, nil},
		{"HS256 with the RSA public key PEM as secret", mint(t, "HS256", rsaPEM, "", nil, claimsFor(issRSA, nil)), audit.ReasonBadAlgorithm, nil},
		{"HS256 with the RSA public key DER as secret", mint(t, "HS256", rsaDER, "", nil, claimsFor(issRSA, nil)), audit.ReasonBadAlgorithm, nil},
		{"HS256 with the EC public key PEM as secret", mint(t, "HS256", ecPEM, "ec1", nil, claimsFor(issEC, nil)), audit.ReasonBadAlgorithm, nil},
		{"HS256 with the EC public key DER as secret", mint(t, "HS256", ecDER, "", nil, claimsFor(issEC, nil)), audit.ReasonBadAlgorithm, nil},
		{"HMAC secret cannot sign for the RSA issuer", mint(t, "HS256", k.hmac, "", nil, claimsFor(issRSA, nil)), audit.ReasonBadAlgorithm, nil},
		{"token alg ES384 but JWK pins ES256", mint(t, "ES384", k.ec384, "ec1", nil, claimsFor(issEC, nil)), audit.ReasonBadAlgorithm, nil},
		{"ES256 on the P-384 key", mint(t, "ES256", k.ec256, "ec384", nil, claimsFor(issEC, nil)), audit.ReasonBadAlgorithm, nil},
		{"ECDSA signature of all zeros", ecParts[0] + "." + ecParts[1] + "." + b64.EncodeToString(make([]byte, 64)), audit.ReasonBadSignature, nil},
		{"ECDSA DER-encoded signature", ecParts[0] + "." + ecParts[1] + "." + b64.EncodeToString(derSig), audit.ReasonBadSignature, nil},
		{"modified payload", ecParts[0] + "." + b64.EncodeToString([]byte(mustJSON(t, claimsFor(issEC, map[string]any{"tenant_id": "globex"})))) + "." + ecParts[2], audit.ReasonBadSignature, nil},
		{"empty signature", ecParts[0] + "." + ecParts[1] + ".", audit.ReasonBadSignature, nil},
	})
}

func TestVerifyNoneAndHeaders(t *testing.T) {
	k := keys(t)
	v := newVerifier(t, baseConfig(t))
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write(jwksJSON(t, publicJWK(t, &k.rsa2.PublicKey, "evil", "RS256")))
	}))
	defer srv.Close()
	attackerJWK := map[string]any{"kty": "RSA", "n": b64.EncodeToString(k.rsa2.N.Bytes()), "e": "AQAB", "kid": "evil"}
	claims := mustJSON(t, claimsFor(issRSA, nil))
	unsigned := func(alg string) string {
		return b64.EncodeToString([]byte(`{"alg":"`+alg+`"}`)) + "." + b64.EncodeToString([]byte(claims)) + "."
	}
	cases := []verifyCase{
		{"alg none", unsigned("none"), audit.ReasonBadAlgorithm, nil},
		{"alg None", unsigned("None"), audit.ReasonBadAlgorithm, nil},
		{"alg NONE", unsigned("NONE"), audit.ReasonBadAlgorithm, nil},
		{"alg nOnE", unsigned("nOnE"), audit.ReasonBadAlgorithm, nil},
		{"alg none with a signature", unsigned("none") + "c2ln", audit.ReasonBadAlgorithm, nil},
		{"no alg", signRaw(t, "RS256", k.rsa, `{"typ":"JWT"}`, claims), audit.ReasonBadAlgorithm, nil},
		{"alg not a string", signRaw(t, "RS256", k.rsa, `{"alg":["RS256"]}`, claims), audit.ReasonBadAlgorithm, nil},
		{"jku header", mint(t, "RS256", k.rsa2, "evil", map[string]any{"jku": srv.URL + "/jwks"}, claimsFor(issRSA, nil)), audit.ReasonBadHeader, nil},
		{"x5u header", mint(t, "RS256", k.rsa2, "evil", map[string]any{"x5u": srv.URL + "/cert"}, claimsFor(issRSA, nil)), audit.ReasonBadHeader, nil},
		{"jwk header", mint(t, "RS256", k.rsa2, "evil", map[string]any{"jwk": attackerJWK}, claimsFor(issRSA, nil)), audit.ReasonBadHeader, nil},
		{"x5c header", mint(t, "RS256", k.rsa2, "", map[string]any{"x5c": []string{"MIIB"}}, claimsFor(issRSA, nil)), audit.ReasonBadHeader, nil},
		{"unknown crit", mint(t, "RS256", k.rsa, "", map[string]any{"crit": []string{"exp"}, "exp": 1}, claimsFor(issRSA, nil)), audit.ReasonBadHeader, nil},
		{"crit b64", mint(t, "RS256", k.rsa, "", map[string]any{"crit": []string{"b64"}, "b64": false}, claimsFor(issRSA, nil)), audit.ReasonBadHeader, nil},
		{"empty crit", mint(t, "RS256", k.rsa, "", map[string]any{"crit": []string{}}, claimsFor(issRSA, nil)), audit.ReasonBadHeader, nil},
		{"b64 without crit", mint(t, "RS256", k.rsa, "", map[string]any{"b64": true}, claimsFor(issRSA, nil)), audit.ReasonBadHeader, nil},
		{"kid not a string", signRaw(t, "RS256", k.rsa, `{"alg":"RS256","kid":7}`, claims), audit.ReasonBadHeader, nil},
		{"duplicate alg in header", signRaw(t, "RS256", k.rsa, `{"alg":"RS256","alg":"RS256"}`, claims), audit.ReasonMalformedToken, nil},
		{"duplicate tenant in payload", signRaw(t, "RS256", k.rsa, `{"alg":"RS256"}`, strings.Replace(claims, `"tenant_id":"acme"`, `"tenant_id":"acme","tenant_id":"globex"`, 1)), audit.ReasonMalformedToken, nil},
		{"duplicate nested member", signRaw(t, "RS256", k.rsa, `{"alg":"RS256"}`, strings.Replace(claims, `"sub"`, `"x":{"a":1,"a":2},"sub"`, 1)), audit.ReasonMalformedToken, nil},
		{"escaped duplicate member", signRaw(t, "RS256", k.rsa, `{"alg":"RS256"}`, strings.Replace(claims, `"sub"`, `"tenant\u005fid":"globex","sub"`, 1)), audit.ReasonMalformedToken, nil},
		{"typ and cty are ignored", mint(t, "RS256", k.rsa, "", map[string]any{"typ": "at+jwt", "cty": "json"}, claimsFor(issRSA, nil)), "", nil},
	}
	runVerifyCases(t, v, cases)
	if n := hits.Load(); n != 0 {
		t.Fatalf("the token's jku/x5u caused %d HTTP fetches", n)
	}
}

func TestVerifyClaims(t *testing.T) {
	k := keys(t)
	v := newVerifier(t, baseConfig(t))
	leeway := DefaultLeeway
	now := testNow.Unix()
	rs := func(over map[string]any) string { return mint(t, "RS256", k.rsa, "", nil, claimsFor(issRSA, over)) }
	rsRaw := func(payload string) string { return signRaw(t, "RS256", k.rsa, `{"alg":"RS256"}`, payload) }
	lw := int64(leeway / time.Second)
	noTenant := func(t *testing.T, id *Identity) {
		if id == nil || id.Subject != "user-1" || id.Issuer != issRSA || id.TokenID != "tok-1" || id.Tenant != "" {
			t.Fatalf("want identity without tenant, got %+v", id)
		}
	}
	runVerifyCases(t, v, []verifyCase{
		{"expired beyond leeway", rs(map[string]any{"exp": now - lw - 1, "iat": now - 600}), audit.ReasonTokenExpired, nil},
		{"expired exactly at leeway", rs(map[string]any{"exp": now - lw, "iat": now - 600}), "", nil},
		{"exp zero", rs(map[string]any{"exp": 0}), audit.ReasonTokenExpired, nil},
		{"exp negative", rs(map[string]any{"exp": -5}), audit.ReasonMissingClaim, nil},
		{"exp fractional", rs(map[string]any{"exp": float64(now) + 60.5}), "", nil},
		{"nbf beyond leeway", rs(map[string]any{"nbf": now + lw + 1}), audit.ReasonTokenNotYet, nil},
		{"nbf exactly at leeway", rs(map[string]any{"nbf": now + lw}), "", nil},
		{"iat beyond leeway", rs(map[string]any{"iat": now + lw + 1}), audit.ReasonTokenNotYet, nil},
		{"iat exactly at leeway", rs(map[string]any{"iat": now + lw}), "", nil},
		{"no exp", rs(map[string]any{"exp": nil}), audit.ReasonMissingClaim, nil},
		{"exp as string", rs(map[string]any{"exp": "1700000300"}), audit.ReasonMissingClaim, nil},
		{"exp null", rsRaw(strings.Replace(mustJSON(t, claimsFor(issRSA, nil)), `"exp":1700000300`, `"exp":null`, 1)), audit.ReasonMissingClaim, nil},
		{"nbf as string", rs(map[string]any{"nbf": "0"}), audit.ReasonMissingClaim, nil},
		{"sub as number", rs(map[string]any{"sub": 12}), audit.ReasonMissingClaim, nil},
		{"jti as object", rs(map[string]any{"jti": map[string]any{}}), audit.ReasonMissingClaim, nil},

		{"iss with trailing slash", rs(map[string]any{"iss": issRSA + "/"}), audit.ReasonUnknownIssuer, nil},
		{"iss other case", rs(map[string]any{"iss": "https://RSA.example"}), audit.ReasonUnknownIssuer, nil},
		{"iss missing", rs(map[string]any{"iss": nil}), audit.ReasonUnknownIssuer, nil},
		{"iss number", rs(map[string]any{"iss": 1}), audit.ReasonUnknownIssuer, nil},
		{"iss array", rs(map[string]any{"iss": []string{issRSA}}), audit.ReasonUnknownIssuer, nil},

		{"aud string", rs(map[string]any{"aud": aud}), "", nil},
		{"aud array", rs(map[string]any{"aud": []string{"x", aud}}), "", nil},
		{"aud second configured audience", mint(t, "ES256", k.ec256, "ec1", nil, claimsFor(issEC, map[string]any{"aud": "other"})), "", nil},
		{"aud of another issuer is not enough", rs(map[string]any{"aud": "other"}), audit.ReasonWrongAudience, nil},
		{"aud empty array", rs(map[string]any{"aud": []string{}}), audit.ReasonWrongAudience, nil},
		{"aud empty string in array", rs(map[string]any{"aud": []string{""}}), audit.ReasonWrongAudience, nil},
		{"aud empty string", rs(map[string]any{"aud": ""}), audit.ReasonWrongAudience, nil},
		{"aud missing", rs(map[string]any{"aud": nil}), audit.ReasonWrongAudience, nil},
		{"aud number", rs(map[string]any{"aud": 3}), audit.ReasonWrongAudience, nil},
		{"aud array with number", rs(map[string]any{"aud": []any{aud, 3}}), audit.ReasonWrongAudience, nil},
		{"aud case differs", rs(map[string]any{"aud": strings.ToUpper(aud)}), audit.ReasonWrongAudience, nil},

		{"tenant 64 chars", rs(map[string]any{"tenant_id": strings.Repeat("a", 64)}), "", func(t *testing.T, id *Identity) {
			if id.Tenant != strings.Repeat("a", 64) {
				t.Fatal(id.Tenant)
			}
		}},
		{"tenant with . _ -", rs(map[string]any{"tenant_id": "a.b_c-D9"}), "", nil},
		{"tenant missing", rs(map[string]any{"tenant_id": nil}), audit.ReasonNoTenant, noTenant},
		{"tenant number", rs(map[string]any{"tenant_id": 42}), audit.ReasonNoTenant, noTenant},
		{"tenant array", rs(map[string]any{"tenant_id": []string{"acme"}}), audit.ReasonNoTenant, noTenant},
		{"tenant object", rs(map[string]any{"tenant_id": map[string]any{"id": "acme"}}), audit.ReasonNoTenant, noTenant},
		{"tenant empty", rs(map[string]any{"tenant_id": ""}), audit.ReasonNoTenant, noTenant},
		{"tenant 65 chars", rs(map[string]any{"tenant_id": strings.Repeat("a", 65)}), audit.ReasonNoTenant, noTenant},
		{"tenant ../x", rs(map[string]any{"tenant_id": "../x"}), audit.ReasonNoTenant, noTenant},
		{"tenant a/b", rs(map[string]any{"tenant_id": "a/b"}), audit.ReasonNoTenant, noTenant},
		{"tenant dot", rs(map[string]any{"tenant_id": "."}), audit.ReasonNoTenant, noTenant},
		{"tenant dot dot", rs(map[string]any{"tenant_id": ".."}), audit.ReasonNoTenant, noTenant},
		{"tenant with space", rs(map[string]any{"tenant_id": "ac me"}), audit.ReasonNoTenant, noTenant},
		{"tenant with NUL", rs(map[string]any{"tenant_id": "acme\x00"}), audit.ReasonNoTenant, noTenant},
		{"tenant null", rs(map[string]any{"tenant_id": nil, "x": 1}), audit.ReasonNoTenant, noTenant},

		{"roles space-separated", rs(map[string]any{"roles": "a b  c"}), "", func(t *testing.T, id *Identity) {
			if strings.Join(id.Roles, ",") != "a,b,c" {
				t.Fatal(id.Roles)
			}
		}},
		{"roles missing", rs(map[string]any{"roles": nil}), "", func(t *testing.T, id *Identity) {
			if len(id.Roles) != 0 {
				t.Fatal(id.Roles)
			}
		}},
		{"roles number", rs(map[string]any{"roles": 1}), audit.ReasonMissingClaim, nil},
		{"roles array with number", rs(map[string]any{"roles": []any{"a", 1}}), audit.ReasonMissingClaim, nil},
		{"roles object", rs(map[string]any{"roles": map[string]any{"a": true}}), audit.ReasonMissingClaim, nil},
		{"sub missing is fine", rs(map[string]any{"sub": nil}), "", func(t *testing.T, id *Identity) {
			if id.Subject != "" {
				t.Fatal(id.Subject)
			}
		}},
		{"payload not an object", rsRaw(`["iss"]`), audit.ReasonMalformedToken, nil},
		{"payload not JSON", rsRaw(`hello`), audit.ReasonMalformedToken, nil},
		{"payload with trailing data", rsRaw(mustJSON(t, claimsFor(issRSA, nil)) + `{}`), audit.ReasonMalformedToken, nil},
		{"payload invalid UTF-8", rsRaw(strings.Replace(mustJSON(t, claimsFor(issRSA, nil)), "user-1", "user-\xff", 1)), audit.ReasonMalformedToken, nil},
	})
}

func TestVerifyCustomClaimNames(t *testing.T) {
	k := keys(t)
	cfg := baseConfig(t)
	cfg.TenantClaim, cfg.UserClaim, cfg.RolesClaim = "org", "email", "scope"
	v := newVerifier(t, cfg)
	tok := mint(t, "RS256", k.rsa, "", nil, claimsFor(issRSA, map[string]any{"org": "globex", "email": "a@b.c", "scope": "read write"}))
	id, e := identityOf(v.Verify(t0ctx, Bearer(tok)))
	if e != nil {
		t.Fatal(e)
	}
	if id.Tenant != "globex" || id.Subject != "a@b.c" || strings.Join(id.Roles, " ") != "read write" {
		t.Fatalf("%+v", id)
	}
}

func TestVerifyKidInjection(t *testing.T) {
	k := keys(t)
	cfg := baseConfig(t)
	cfg.MaxTokenBytes = 64 << 10
	v := newVerifier(t, cfg)
	for name, kid := range map[string]string{
		"path traversal": "../../etc/passwd",
		"sql":            "' OR 1=1--",
		"10 kB":          strings.Repeat("k", 10<<10),
		"NUL":            "ec1\x00",
		"url":            "http://127.0.0.1:1/jwks",
	} {
		t.Run(name, func(t *testing.T) {
			_, e := identityOf(v.Verify(t0ctx, Bearer(mint(t, "ES256", k.ec256, kid, nil, claimsFor(issEC, nil)))))
			if e == nil || e.Reason != audit.ReasonUnknownKey {
				t.Fatalf("want unknown_key, got %v", e)
			}
			if strings.Contains(e.Detail, kid) {
				t.Fatal("detail echoes the kid")
			}
		})
	}
	t.Run("empty kid means no kid", func(t *testing.T) {
		if _, e := identityOf(v.Verify(t0ctx, Bearer(mint(t, "ES256", k.ec256, "", map[string]any{"kid": ""}, claimsFor(issEC, nil))))); e != nil {
			t.Fatal(e)
		}
	})
	t.Run("10 kB kid over the default size", func(t *testing.T) {
		v := newVerifier(t, baseConfig(t))
		_, e := identityOf(v.Verify(t0ctx, Bearer(mint(t, "ES256", k.ec256, strings.Repeat("k", 10<<10), nil, claimsFor(issEC, nil)))))
		if e == nil || e.Reason != audit.ReasonMalformedToken || !strings.Contains(e.Detail, "max_token_bytes") {
			t.Fatalf("want malformed_token naming max_token_bytes, got %v", e)
		}
	})
}

func TestPreCheck(t *testing.T) {
	k := keys(t)
	good := mint(t, "ES256", k.ec256, "ec1", nil, claimsFor(issEC, nil))
	p := strings.Split(good, ".")
	// flipLow sets an unused low bit of the last character.
	flipLow := func(s string) string {
		last := s[len(s)-1]
		idx := strings.IndexByte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", last)
		return s[:len(s)-1] + string("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[idx|1])
	}
	hdr := func(json string) string { return b64.EncodeToString([]byte(json)) }
	cases := []struct {
		name, tok string
		ok        bool
	}{
		{"valid", good, true},
		{"empty", "", false},
		{"padded header", p[0] + "=." + p[1] + "." + p[2], false},
		{"padded signature", p[0] + "." + p[1] + "." + p[2] + "==", false},
		{"plus", p[0] + "." + p[1] + "." + strings.NewReplacer("-", "+", "_", "+").Replace(p[2]) + "+", false},
		{"slash", p[0] + "." + p[1] + "./" + p[2][1:], false},
		{"space inside", p[0] + ". " + p[1] + "." + p[2], false},
		{"leading space", " " + good, false},
		{"trailing newline", good + "\n", false},
		{"CR LF inside", p[0] + "." + p[1][:4] + "\r\n" + p[1][4:] + "." + p[2], false},
		{"tab", p[0] + "\t." + p[1] + "." + p[2], false},
		{"non-zero trailing bits", p[0] + "." + p[1] + "." + flipLow(p[2]), false},
		{"impossible length", p[0] + "." + p[1] + "." + p[2] + "AAA", false},
		{"2 parts", p[0] + "." + p[1], false},
		{"4 parts", good + ".", false},
		{"1 part", p[0], false},
		{"JWE 5 parts", p[0] + "." + p[1] + "." + p[2] + "." + p[1] + "." + p[2], false},
		{"JWE enc header", hdr(`{"alg":"RSA-OAEP","enc":"A256GCM"}`) + "." + p[1] + "." + p[2], false},
		{"JSON serialization", `{"payload":"` + p[1] + `","signatures":[{"protected":"` + p[0] + `","signature":"` + p[2] + `"}]}`, false},
		{"thousands of dots", strings.Repeat(".", 5000), false},
		{"dots only three parts", "..", false},
		{"empty header", "." + p[1] + "." + p[2], false},
		{"header not JSON", hdr("hello") + "." + p[1] + "." + p[2], false},
		{"header array", hdr(`["alg"]`) + "." + p[1] + "." + p[2], false},
		{"header duplicate", hdr(`{"alg":"ES256","alg":"none"}`) + "." + p[1] + "." + p[2], false},
		{"header trailing data", hdr(`{"alg":"ES256"}x`) + "." + p[1] + "." + p[2], false},
		{"header whitespace is JSON whitespace", hdr(" {\n\"alg\" : \"ES256\" }\t") + "." + p[1] + "." + p[2], true},
		{"header deeply nested", hdr(`{"x":`+strings.Repeat("[", 100)+strings.Repeat("]", 100)+`}`) + "." + p[1] + "." + p[2], false},
		{"oversized", good + strings.Repeat("A", 9000), false},
		{"unicode", p[0] + "." + p[1] + "é." + p[2], false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := jose.PreCheck(tc.tok, 0)
			if tc.ok != (e == nil) {
				t.Fatalf("ok=%v, got %v", tc.ok, e)
			}
			if e != nil && e.Reason != audit.ReasonMalformedToken {
				t.Fatalf("reason %s", e.Reason)
			}
		})
	}
	if e := jose.PreCheck(good, len(good)); e != nil {
		t.Fatalf("exactly max bytes: %v", e)
	}
	if e := jose.PreCheck(good, len(good)-1); e == nil || !strings.Contains(e.Detail, "max_token_bytes") {
		t.Fatalf("max-1: %v", e)
	}
}
