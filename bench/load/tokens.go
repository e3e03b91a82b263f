package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/tenantgate/tenantgate/module/assertion"
)

const (
	benchIssuer   = "https://idp.bench.local"
	benchAudience = "alphapulse-api"
	cyclingTokens = 64
)

// tokenSource hands out one token per request; false when it ran dry.
type tokenSource interface {
	next() (string, bool)
}

// cyclingSource repeats a fixed set of tokens: after the first round every
// request is a verified-token cache hit.
type cyclingSource struct {
	toks []string
	i    atomic.Uint64
}

func (c *cyclingSource) next() (string, bool) {
	return c.toks[(c.i.Add(1)-1)%uint64(len(c.toks))], true
}

// uniqueSource hands out each token once: every request is a cache miss
// and a full verification.
type uniqueSource struct {
	toks []string
	i    atomic.Uint64
	dry  atomic.Bool
}

func (u *uniqueSource) next() (string, bool) {
	n := u.i.Add(1) - 1
	if n >= uint64(len(u.toks)) {
		u.dry.Store(true)
		return "", false
	}
	return u.toks[n], true
}

// benchKeys are made at run time in a temporary directory: the issuer's
// JWKS file (RSA and Ed25519 keys), the gate's Ed25519 assertion key and
// an HS256 assertion secret.
type benchKeys struct {
	jwksPath, assertionKeyPath string
	rsaPublicPath              string // the issuer's RSA public key, PEM (HAProxy's jwt_verify)
	assertionSecret            string
	cycling                    *cyclingSource
	unique                     *uniqueSource
	dpop                       *dpopSource // DPoP-bound cycling tokens and their proofs
}

func makeKeys(dir string, uniqueCount int) (*benchKeys, error) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	set := jwk.NewSet()
	for _, k := range []struct {
		raw any
		kid string
		alg jwa.SignatureAlgorithm
	}{{&rsaKey.PublicKey, "rsa-1", jwa.RS256}, {edKey.Public(), "ed-1", jwa.EdDSA}} {
		j, err := jwk.FromRaw(k.raw)
		if err != nil {
			return nil, err
		}
		_ = j.Set(jwk.KeyIDKey, k.kid)
		_ = j.Set(jwk.AlgorithmKey, k.alg)
		_ = j.Set(jwk.KeyUsageKey, "sig")
		if err := set.AddKey(j); err != nil {
			return nil, err
		}
	}
	b, err := json.Marshal(set)
	if err != nil {
		return nil, err
	}
	k := &benchKeys{
		jwksPath:         filepath.Join(dir, "jwks.json"),
		assertionKeyPath: filepath.Join(dir, "assertion.pem"),
	}
	if err := os.WriteFile(k.jwksPath, b, 0o600); err != nil {
		return nil, err
	}
	k.rsaPublicPath = filepath.Join(dir, "rsa-public.pem")
	der, err := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(k.rsaPublicPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		return nil, err
	}
	_, assertPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	pemBytes, err := assertion.EncodePrivateKeyPEM(assertPriv)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(k.assertionKeyPath, pemBytes, 0o600); err != nil {
		return nil, err
	}
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	k.assertionSecret = hex.EncodeToString(secret)

	k.cycling = &cyclingSource{toks: make([]string, cyclingTokens)}
	for i := range k.cycling.toks {
		if k.cycling.toks[i], err = mint(jwa.RS256, rsaKey, "rsa-1", fmt.Sprintf("cyc-%d", i)); err != nil {
			return nil, err
		}
	}
	if k.dpop, err = newDPoPSource(rsaKey); err != nil {
		return nil, err
	}
	k.unique = &uniqueSource{toks: make([]string, uniqueCount)}
	if err := mintParallel(k.unique.toks, edKey); err != nil {
		return nil, err
	}
	return k, nil
}

// mintParallel fills toks with distinct EdDSA tokens on every core.
func mintParallel(toks []string, key ed25519.PrivateKey) error {
	var wg sync.WaitGroup
	var firstErr atomic.Value
	workers := runtime.GOMAXPROCS(0)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(toks); i += workers {
				t, err := mint(jwa.EdDSA, key, "ed-1", fmt.Sprintf("uniq-%d", i))
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				toks[i] = t
			}
		}()
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return err
	}
	return nil
}

// mint signs a token as an IdP would: a realistic claim set, an hour to live.
func mint(alg jwa.SignatureAlgorithm, key any, kid, jti string) (string, error) {
	return mintWith(alg, key, kid, jti, nil)
}

// mintWith is mint with extra claims (cnf for DPoP-bound tokens).
func mintWith(alg jwa.SignatureAlgorithm, key any, kid, jti string, extra map[string]any) (string, error) {
	now := time.Now()
	claims := map[string]any{
		"iss": benchIssuer, "aud": benchAudience, "sub": "user-" + jti, "tenant_id": "acme",
		"roles": []string{"ensemble:read", "hedging:read"}, "iat": now.Unix(), "nbf": now.Unix(),
		"exp": now.Add(time.Hour).Unix(), "jti": jti, "scope": "openid profile api",
	}
	for k, v := range extra {
		claims[k] = v
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	hdr := jws.NewHeaders()
	_ = hdr.Set(jws.KeyIDKey, kid)
	_ = hdr.Set(jws.TypeKey, "JWT")
	out, err := jws.Sign(payload, jws.WithKey(alg, key, jws.WithProtectedHeaders(hdr)))
	return string(out), err
}
