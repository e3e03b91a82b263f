package integration_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"
	. "github.com/onsi/gomega"
)

// signingKey is a private key with the kid and algorithm it signs with.
type signingKey struct {
	alg jwa.SignatureAlgorithm
	kid string
	key jwk.Key // private
}

func newKey(alg jwa.SignatureAlgorithm, kid string) signingKey {
	var raw any
	var err error
	switch alg {
	case jwa.RS256, jwa.PS256:
		raw, err = rsa.GenerateKey(rand.Reader, 2048)
	case jwa.ES256:
		raw, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jwa.EdDSA:
		_, raw, err = ed25519.GenerateKey(rand.Reader)
	default:
		panic("unsupported alg " + alg.String())
	}
	Expect(err).NotTo(HaveOccurred())
	k, err := jwk.FromRaw(raw)
	Expect(err).NotTo(HaveOccurred())
	Expect(k.Set(jwk.KeyIDKey, kid)).To(Succeed())
	Expect(k.Set(jwk.AlgorithmKey, alg)).To(Succeed())
	return signingKey{alg: alg, kid: kid, key: k}
}

func (s signingKey) public() jwk.Key {
	pub, err := s.key.PublicKey()
	Expect(err).NotTo(HaveOccurred())
	return pub
}

// jwksServer serves a key set over loopback, counts fetches, and can be
// taken down and brought back.
type jwksServer struct {
	srv   *httptest.Server
	mu    sync.Mutex
	keys  []jwk.Key
	down  atomic.Bool
	hits  atomic.Int64
	delay atomic.Int64 // nanoseconds
}

func newJWKSServer(keys ...jwk.Key) *jwksServer {
	j := &jwksServer{keys: keys}
	j.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		j.hits.Add(1)
		if d := j.delay.Load(); d > 0 {
			time.Sleep(time.Duration(d))
		}
		if j.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		j.mu.Lock()
		set := jwk.NewSet()
		for _, k := range j.keys {
			_ = set.AddKey(k)
		}
		j.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(set)
	}))
	return j
}

func (j *jwksServer) url() string { return j.srv.URL + "/jwks.json" }

func (j *jwksServer) add(k jwk.Key) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.keys = append(j.keys, k)
}

// claims is a token's payload; nil values are left out.
type claims map[string]any

func (e *testEnv) baseClaims(tenant string, roles ...string) claims {
	now := time.Now()
	return claims{
		"iss":       issuerMain,
		"aud":       audience,
		"sub":       "user-" + tenant,
		"tenant_id": tenant,
		"roles":     roles,
		"iat":       now.Unix(),
		"nbf":       now.Unix(),
		"exp":       now.Add(10 * time.Minute).Unix(),
		"jti":       fmt.Sprintf("t-%d", now.UnixNano()),
	}
}

// sign makes a compact JWS of c with key, setting kid and alg as the key
// says; extra header fields can be added.
func sign(key signingKey, c claims, extraHeaders map[string]any) string {
	payload, err := json.Marshal(c)
	Expect(err).NotTo(HaveOccurred())
	hdr := jws.NewHeaders()
	Expect(hdr.Set(jws.KeyIDKey, key.kid)).To(Succeed())
	Expect(hdr.Set(jws.TypeKey, "JWT")).To(Succeed())
	for k, v := range extraHeaders {
		Expect(hdr.Set(k, v)).To(Succeed())
	}
	out, err := jws.Sign(payload, jws.WithKey(key.alg, key.key, jws.WithProtectedHeaders(hdr)))
	Expect(err).NotTo(HaveOccurred())
	return string(out)
}

// token is a valid token of the main issuer for tenant with roles.
func (e *testEnv) token(tenant string, roles ...string) string {
	return sign(e.rsaKey, e.baseClaims(tenant, roles...), nil)
}

var _ = jwt.New // keep jwt imported for helpers in other files
