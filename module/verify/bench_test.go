package verify

import "testing"

func BenchmarkVerify(b *testing.B) {
	k := keys(b)
	v := newVerifier(b, baseConfig(b))
	for _, bc := range []struct {
		name, token string
	}{
		{"RS256", mint(b, "RS256", k.rsa, "", nil, claimsFor(issRSA, nil))},
		{"ES256", mint(b, "ES256", k.ec256, "ec1", nil, claimsFor(issEC, nil))},
		{"EdDSA", mint(b, "EdDSA", k.ed, "ed1", nil, claimsFor(issEd, nil))},
		{"HS256", mint(b, "HS256", k.hmac, "", nil, claimsFor(issHS, nil))},
	} {
		b.Run(bc.name, func(b *testing.B) {
			if _, e := v.Verify(t0ctx, Bearer(bc.token)); e != nil {
				b.Fatal(e)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, e := v.Verify(t0ctx, Bearer(bc.token)); e != nil {
					b.Fatal(e)
				}
			}
		})
	}
}

func BenchmarkPreCheck(b *testing.B) {
	k := keys(b)
	tok := mint(b, "ES256", k.ec256, "ec1", nil, claimsFor(issEC, nil))
	b.ReportAllocs()
	for b.Loop() {
		if e := PreCheck(tok, 0); e != nil {
			b.Fatal(e)
		}
	}
}
