package tenantgate

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"go.uber.org/zap"

	"github.com/tenantgate/tenantgate/module/assertion"
	"github.com/tenantgate/tenantgate/module/rules"

	"github.com/tenantgate/tenantgate/module/verify"
)

// BenchmarkServeDPoPVersusBearer is one request through ServeHTTP (audit
// to a Nop logger, metrics on) with an ES256 token sent as Bearer, and the
// same kind of token DPoP-bound with an ES256 proof (made before the timer
// starts, one per request). The ratio of the two is the cost of DPoP.
func BenchmarkServeDPoPVersusBearer(b *testing.B) {
	g, key := benchGate(b)
	mint := func(cnf map[string]any) string {
		bld := jwt.NewBuilder().Issuer(unitIssuer).Audience([]string{"api"}).Subject("alice").
			IssuedAt(time.Now()).Expiration(time.Now().Add(time.Hour)).JwtID("j1").Claim("tenant_id", "acme")
		if cnf != nil {
			bld = bld.Claim("cnf", cnf)
		}
		tok, _ := bld.Build()
		signed, err := jwt.Sign(tok, jwt.WithKey(jwa.ES256, key))
		if err != nil {
			b.Fatal(err)
		}
		return string(signed)
	}
	proofKey, jkt := unitProofKey(b)
	bearer, bound := mint(nil), mint(map[string]any{"jkt": jkt})
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error { return nil })
	run := func(b *testing.B, scheme, tok string, proofs []string) {
		w := &statusWriter{h: http.Header{}}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			r := newTestRequest(context.Background(), http.MethodGet, "http://gate.test/api/whoami", "")
			r.Header.Set("Authorization", scheme+" "+tok)
			if proofs != nil {
				r.Header.Set("DPoP", proofs[i])
			}
			clear(w.h)
			w.status = 0
			_ = g.ServeHTTP(w, r, next)
			if w.status != 0 && w.status != http.StatusOK {
				b.Fatalf("status %d", w.status)
			}
		}
	}
	b.Run("bearer", func(b *testing.B) { run(b, "Bearer", bearer, nil) })
	b.Run("dpop", func(b *testing.B) {
		proofs := make([]string, b.N)
		for i := range proofs {
			proofs[i] = unitProof(b, proofKey, "GET", "http://gate.test/api/whoami", bound)
		}
		run(b, "DPoP", bound, proofs)
	})
}

// benchGate is newUnitGate for benchmarks: an ES256 jwks_file issuer.
func benchGate(b *testing.B) (*Gate, jwk.Key) {
	dir := b.TempDir()
	raw, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	priv, _ := jwk.FromRaw(raw)
	_ = priv.Set(jwk.KeyIDKey, "k1")
	pub, _ := priv.PublicKey()
	set := jwk.NewSet()
	_ = set.AddKey(pub)
	jwks, _ := json.Marshal(set)
	_, apriv, _ := ed25519.GenerateKey(rand.Reader)
	pemBytes, _ := assertion.EncodePrivateKeyPEM(apriv)
	for name, data := range map[string][]byte{"jwks.json": jwks, "assertion.pem": pemBytes} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	g := &Gate{
		Settings:     verify.Settings{Issuers: []Issuer{{Issuer: unitIssuer, JWKSFile: filepath.Join(dir, "jwks.json"), Audiences: []string{"api"}}}},
		AssertionKey: filepath.Join(dir, "assertion.pem"),
		Rules:        []rules.Rule{{Methods: []string{"GET"}, Pattern: "/api/whoami", Authenticated: true}},
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	b.Cleanup(func() { cancel(); _ = g.Cleanup() })
	if err := g.Provision(ctx); err != nil {
		b.Fatal(err)
	}
	g.logger, g.auditLog = zap.NewNop(), zap.NewNop()
	return g, priv
}

// statusWriter is discardWriter that keeps the status, so the benchmark
// fails instead of timing denials.
type statusWriter struct {
	h      http.Header
	status int
}

func (w *statusWriter) Header() http.Header         { return w.h }
func (w *statusWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *statusWriter) WriteHeader(s int)           { w.status = s }
