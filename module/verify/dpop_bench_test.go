package verify

import (
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/module/verify/dpop"
)

// BenchmarkDPoPVersusBearer is the cost a DPoP proof adds to a request: the
// same ES256 token verified as a bearer token and as a DPoP-bound one with
// an ES256 proof (a fresh proof per request, made before the timer starts).
// Compare the two results of one run; absolute numbers depend on the machine.
func BenchmarkDPoPVersusBearer(b *testing.B) {
	cfg := baseConfig(b)
	cfg.Now = nil // proofs carry the real time
	v := newVerifier(b, cfg)
	k := keys(b)
	cl := newDPoPClient(b)
	claims := claimsFor(issEC, map[string]any{"iat": nil, "exp": 4_000_000_000})
	bearer := mint(b, "ES256", k.ec256, "ec1", nil, claims)
	claims["cnf"] = map[string]any{"jkt": cl.jkt}
	bound := mint(b, "ES256", k.ec256, "ec1", nil, claims)

	b.Run("bearer", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, e := identityOf(v.Verify(t0ctx, Bearer(bearer))); e != nil {
				b.Fatal(e)
			}
		}
	})
	b.Run("dpop", func(b *testing.B) {
		reqs := make([]*Request, b.N)
		for i := range reqs {
			reqs[i] = dpopRequest(bound, cl.proof(b, proofClaims("GET", testHTU, bound, time.Now()), nil))
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, e := identityOf(v.Verify(t0ctx, reqs[i])); e != nil {
				b.Fatal(e)
			}
		}
	})
}

func BenchmarkPreCheckProof(b *testing.B) {
	cl := newDPoPClient(b)
	p := cl.proof(b, proofClaims("GET", testHTU, "t", testNow), nil)
	b.ReportAllocs()
	for b.Loop() {
		if e := dpop.PreCheckProof(p); e != nil {
			b.Fatal(e)
		}
	}
}
