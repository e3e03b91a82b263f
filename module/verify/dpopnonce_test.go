package verify

import (
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/module/audit"
	"github.com/tenantgate/tenantgate/module/verify/dpop"
)

// TestDPoPNoncesThroughTheVerifier: Config.DPoPNonces makes every DPoP
// request, cached token or not, carry an accepted nonce.
func TestDPoPNoncesThroughTheVerifier(t *testing.T) {
	cfg := baseConfig(t)
	cfg.Now = nil // proofs and nonces carry the real time
	nonces := dpop.NewNonces(dpop.NewNonceSecret(), time.Minute)
	cfg.DPoPNonces = nonces
	cfg.TokenCache = entries(100)
	v := newVerifier(t, cfg)
	k := keys(t)
	cl := newDPoPClient(t)
	bound := mint(t, "ES256", k.ec256, "ec1", nil, claimsFor(issEC, map[string]any{"iat": nil, "exp": 4_000_000_000, "cnf": map[string]any{"jkt": cl.jkt}}))
	send := func(nonce string) *Error {
		c := proofClaims("GET", testHTU, bound, time.Now())
		if nonce != "" {
			c["nonce"] = nonce
		}
		_, e := v.Verify(t0ctx, dpopRequest(bound, cl.proof(t, c, nil)))
		return e
	}
	for range 2 { // the second round is a cache hit
		if e := send(""); e == nil || e.Reason != audit.ReasonDPoPNonceRequired {
			t.Fatalf("no nonce: %v", e)
		}
		if e := send(nonces.Nonce(time.Now())); e != nil {
			t.Fatalf("with the nonce: %v", e)
		}
	}
}

// BenchmarkDPoPNonce is what a required nonce adds to a DPoP request: the
// same bound token and proof key, with and without nonces (compare the two
// results of one run).
func BenchmarkDPoPNonce(b *testing.B) {
	k := keys(b)
	cl := newDPoPClient(b)
	bound := mint(b, "ES256", k.ec256, "ec1", nil, claimsFor(issEC, map[string]any{"iat": nil, "exp": 4_000_000_000, "cnf": map[string]any{"jkt": cl.jkt}}))
	for _, withNonce := range []bool{false, true} {
		cfg := baseConfig(b)
		cfg.Now = nil
		name := "without"
		nonces := dpop.NewNonces(dpop.NewNonceSecret(), time.Hour)
		if withNonce {
			cfg.DPoPNonces, name = nonces, "with"
		}
		v := newVerifier(b, cfg)
		b.Run(name, func(b *testing.B) {
			reqs := make([]*Request, b.N)
			for i := range reqs {
				c := proofClaims("GET", testHTU, bound, time.Now())
				c["nonce"] = nonces.Nonce(time.Now())
				reqs[i] = dpopRequest(bound, cl.proof(b, c, nil))
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
}
