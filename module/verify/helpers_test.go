package verify

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
)

var t0ctx = context.Background()

// Keys are generated once per test binary, at run time: no private key is
// ever committed.
type testKeys struct {
	rsa, rsa2 *rsa.PrivateKey
	ec256     *ecdsa.PrivateKey
	ec384     *ecdsa.PrivateKey
	ed        ed25519.PrivateKey
	hmac      []byte
}

var (
	keysOnce sync.Once
	tk       testKeys
)

func keys(t testing.TB) *testKeys {
	t.Helper()
	keysOnce.Do(func() {
		var err error
		must := func(e error) {
			if e != nil && err == nil {
				err = e
			}
		}
		tk.rsa, err = rsa.GenerateKey(rand.Reader, 2048)
		must(err)
		tk.rsa2, err = rsa.GenerateKey(rand.Reader, 2048)
		must(err)
		tk.ec256, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		must(err)
		tk.ec384, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		must(err)
		_, tk.ed, err = ed25519.GenerateKey(rand.Reader)
		must(err)
		tk.hmac = make([]byte, 32)
		_, err = rand.Read(tk.hmac)
		must(err)
		if err != nil {
			panic(err)
		}
	})
	return &tk
}

var b64 = base64.RawURLEncoding

// signRaw signs header.payload given as raw JSON, so tests can craft
// headers and payloads that no well-behaved library would produce.
func signRaw(t testing.TB, alg string, key any, header, payload string) string {
	t.Helper()
	input := b64.EncodeToString([]byte(header)) + "." + b64.EncodeToString([]byte(payload))
	signer, err := jws.NewSigner(jwa.SignatureAlgorithm(alg))
	if err != nil {
		t.Fatal(err)
	}
	sig, err := signer.Sign([]byte(input), key)
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + b64.EncodeToString(sig)
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// mint signs claims with a header made of alg, kid (when not empty) and extra.
func mint(t testing.TB, alg string, key any, kid string, extra map[string]any, claims map[string]any) string {
	t.Helper()
	h := map[string]any{"alg": alg}
	if kid != "" {
		h["kid"] = kid
	}
	for k, v := range extra {
		h[k] = v
	}
	return signRaw(t, alg, key, mustJSON(t, h), mustJSON(t, claims))
}

var testNow = time.Unix(1_700_000_000, 0)

const (
	issRSA = "https://rsa.example"
	issEC  = "https://ec.example"
	issEd  = "https://ed.example"
	issHS  = "https://hs.example"
	aud    = "alphapulse-api"
)

// claimsFor returns valid claims for iss; with overrides applied (nil deletes).
func claimsFor(iss string, overrides map[string]any) map[string]any {
	c := map[string]any{
		"iss":       iss,
		"aud":       aud,
		"sub":       "user-1",
		"tenant_id": "acme",
		"roles":     []string{"ensemble:read", "ensemble:write"},
		"jti":       "tok-1",
		"iat":       testNow.Unix(),
		"exp":       testNow.Add(5 * time.Minute).Unix(),
	}
	return override(c, overrides)
}

func writeFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func pemPublic(t testing.TB, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// publicJWK converts a public key to a JWK with kid and (optional) alg.
func publicJWK(t testing.TB, pub any, kid, alg string) jwk.Key {
	t.Helper()
	k, err := jwk.FromRaw(pub)
	if err != nil {
		t.Fatal(err)
	}
	if kid != "" {
		_ = k.Set(jwk.KeyIDKey, kid)
	}
	if alg != "" {
		_ = k.Set(jwk.AlgorithmKey, alg)
	}
	_ = k.Set(jwk.KeyUsageKey, "sig")
	return k
}

func jwksJSON(t testing.TB, ks ...jwk.Key) []byte {
	t.Helper()
	set := jwk.NewSet()
	for _, k := range ks {
		if err := set.AddKey(k); err != nil {
			t.Fatal(err)
		}
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// baseConfig has four static issuers: RSA (PEM), EC (JWKS file with a P-256
// key pinned to ES256 and a P-384 key), Ed25519 (JWKS file) and HMAC.
func baseConfig(t testing.TB) Config {
	t.Helper()
	k := keys(t)
	dir := t.TempDir()
	return Config{
		Settings: Settings{
			Issuers: []IssuerConfig{
				{Issuer: issRSA, Audiences: []string{aud}, PublicKeyFile: writeFile(t, dir, "rsa.pem", pemPublic(t, &k.rsa.PublicKey))},
				{Issuer: issEC, Audiences: []string{"other", aud}, JWKSFile: writeFile(t, dir, "ec.json", jwksJSON(t,
					publicJWK(t, &k.ec256.PublicKey, "ec1", "ES256"),
					publicJWK(t, &k.ec384.PublicKey, "ec384", "")))},
				{Issuer: issEd, Audiences: []string{aud}, JWKSFile: writeFile(t, dir, "ed.json", jwksJSON(t,
					publicJWK(t, k.ed.Public(), "ed1", "EdDSA")))},
				{Issuer: issHS, Audiences: []string{aud}, HMACSecret: string(k.hmac)},
			},
			Algorithms: []string{"RS256", "PS256", "ES256", "ES384", "EdDSA", "HS256"},
		},
		Now: func() time.Time { return testNow },
	}
}

func newVerifier(t testing.TB, cfg Config) *Verifier {
	t.Helper()
	v, err := New(t0ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	return v
}

// recordingObserver records JWKSRefresh and JWKSInUse calls.
type recordingObserver struct {
	mu    sync.Mutex
	calls []observed
	inUse []observed
}

func (o *recordingObserver) JWKSInUse(issuer string, keys int, last time.Time) {
	o.mu.Lock()
	o.inUse = append(o.inUse, observed{issuer, !last.IsZero(), keys})
	o.mu.Unlock()
}

func (o *recordingObserver) inUseSnapshot() []observed {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]observed(nil), o.inUse...)
}

type observed struct {
	issuer string
	ok     bool
	keys   int
}

func (o *recordingObserver) JWKSRefresh(issuer string, ok bool, keys int, _ time.Time) {
	o.mu.Lock()
	o.calls = append(o.calls, observed{issuer, ok, keys})
	o.mu.Unlock()
}

func (o *recordingObserver) snapshot() []observed {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]observed(nil), o.calls...)
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s", within, what)
}

// settled waits until count has not changed for 100 ms (at most 5 s) and
// returns it: a fetch sent just before its source stopped may reach the
// test server late on a loaded machine, and a fixed sleep guessed how late.
func settled(t testing.TB, count func() int32) int32 {
	t.Helper()
	n, since := count(), time.Now()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if m := count(); m != n {
			n, since = m, time.Now()
		} else if time.Since(since) >= 100*time.Millisecond {
			return n
		}
	}
	t.Fatalf("still counting after 5 s: %d", n)
	return n
}

// identityOf is the identity of a Verify result, for tests that judge
// only who the bearer is.
func identityOf(r Result, e *Error) (*Identity, *Error) { return r.Identity, e }

// entries is a TokenCache value.
func entries(n int) *int { return &n }

// override sets each of overrides in c, deleting the keys whose value is
// nil, and returns c: a test claim set is a base plus what a case changes.
func override(c, overrides map[string]any) map[string]any {
	for k, v := range overrides {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	return c
}

// heldKeys is a verifier of one remote issuer (srv's JWKS, refreshed
// hourly, so only refetches fetch) once its first keys are in; refetch,
// when not 0, is the gap between refetches for unknown kids.
func heldKeys(t *testing.T, srv *jwksServer, refetch time.Duration) *Verifier {
	t.Helper()
	cfg := remoteConfig(srv.URL, IssuerConfig{JWKSURL: srv.URL + "/jwks", RefreshInterval: Duration(time.Hour)}, nil)
	if refetch != 0 {
		cfg.RefetchInterval = refetch
	}
	v := newVerifier(t, cfg)
	eventually(t, 3*time.Second, "first keys", func() bool { return v.KeyStatus()[srv.URL] == 1 })
	return v
}
